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
