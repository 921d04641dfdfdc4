"""Shared pytest wiring: each fixture module starts one kind of real part."""
import pytest

pytest_plugins = [
    "tests.fixtures_aws",
    "tests.fixtures_sshd",
    "tests.fixtures_zoo",
    "tests.fixtures_http",
    "tests.fixtures_browser",
    "tests.fixtures_sandbox",
    "tests.checkpoints",
]


@pytest.fixture(scope="session", autouse=True)
def sweep_leftovers_of_killed_runs():
    """A killed test run (or sandbox, or demo) left sshds, agents and folders: its records say which."""
    from mxlab.offline import leftovers

    leftovers.sweep(say=print)


@pytest.fixture(autouse=True)
def own_mxlab_home(tmp_path_factory, monkeypatch):
    """No test reads or writes the real ~/.mxlab (an organiser's labs, keys and pinned host keys may be there,
    and what an earlier demo or sandbox left must not change a test's result): each test gets an empty
    MXLAB_HOME of its own, which a test or fixture that needs a particular one replaces (mxlab_home, the
    lab's variables)."""
    monkeypatch.setenv("MXLAB_HOME", str(tmp_path_factory.mktemp("mxlab-home")))
