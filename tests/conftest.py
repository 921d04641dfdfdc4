"""Shared pytest wiring: each fixture module starts one kind of real part."""

pytest_plugins = [
    "tests.fixtures_aws",
    "tests.fixtures_sshd",
    "tests.fixtures_zoo",
    "tests.fixtures_http",
    "tests.fixtures_browser",
    "tests.checkpoints",
]
