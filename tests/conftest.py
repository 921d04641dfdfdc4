"""Shared pytest wiring: each fixture module starts one kind of real part."""
import pytest

pytest_plugins = [
    "tests.fixtures_aws",
    "tests.fixtures_sshd",
    "tests.fixtures_zoo",
    "tests.fixtures_http",
    "tests.fixtures_browser",
    "tests.fixtures_sandbox",
    "tests.fixtures_lab",
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


@pytest.fixture(autouse=True)
def mxlab_logger_as_it_was():
    """A test that calls `mxlab.cli.main` in this process leaves the `mxlab` logger writing to that test's
    captured stderr (closed once the test ends), level WARNING and not propagating; a later test's warning then
    goes nowhere a caplog sees. Each test starts from the logger as it was."""
    import logging

    logger = logging.getLogger("mxlab")
    state = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = state[0], state[1], state[2]
