"""Fixtures for the AWS side: the emulator and in-process lab stacks."""
import os

# jsii prints a Node end-of-life banner on every import of aws_cdk otherwise.
from cdk.cli import QUIET_ENV

for _key, _value in QUIET_ENV.items():
    if _key.startswith("JSII_"):
        os.environ.setdefault(_key, _value)

import pytest  # noqa: E402

from tests.aws_emulator import AwsEmulator  # noqa: E402


@pytest.fixture
def aws_emulator():
    """A started AwsEmulator (moto on 127.0.0.1, extended); stopped and reset after.

    Backends are process-global: use one emulator at a time per process.
    """
    emulator = AwsEmulator().start()
    try:
        yield emulator
    finally:
        emulator.stop()


class LabStacks:
    """Builds LabStack in-process (no CLI), once per distinct context."""

    def __init__(self):
        self._cache = {}

    def stack(self, **context):
        key = tuple(sorted(context.items()))
        if key not in self._cache:
            from aws_cdk import App

            from cdk.config import from_context
            from cdk.lab_stack import LabStack

            app = App(context=context)
            config = from_context(app.node.try_get_context)
            self._cache[key] = LabStack(app, config.stack_name, config=config)
        return self._cache[key]

    def template(self, **context):
        from aws_cdk.assertions import Template
        return Template.from_stack(self.stack(**context))


@pytest.fixture(scope="session")
def lab_stacks():
    return LabStacks()
