"""Shared pytest wiring: each fixture module starts one kind of real part."""

pytest_plugins = [
    "tests.fixtures_zoo",
    "tests.fixtures_http",
    "tests.checkpoints",
]
