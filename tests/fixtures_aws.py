"""Fixtures for the AWS side: the emulator and in-process lab stacks."""
import os

# jsii prints a Node end-of-life banner on every import of aws_cdk otherwise.
from cdk.cli import QUIET_ENV

for _key, _value in QUIET_ENV.items():
    if _key.startswith("JSII_"):
        os.environ.setdefault(_key, _value)

import pytest  # noqa: E402

from mxlab.offline.emulator import AwsEmulator  # noqa: E402


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


def own_home(monkeypatch, home):
    """HOME=home for the CDK CLI's own caches (~/.cdk), as a fresh machine's; jsii's package cache (aws-cdk-lib
    unpacked, 10-20 s a synth otherwise) stays the user's, as the offline lab keeps it (cdk/cli.py)."""
    from cdk import cli as cdk_cli
    monkeypatch.setenv(cdk_cli.PACKAGE_CACHE_VARIABLE, str(cdk_cli.package_cache_root()))
    monkeypatch.setenv("HOME", str(home))


@pytest.fixture(scope="module")
def module_emulator():
    """One started AwsEmulator for a whole test module (a deploy into it costs a minute); stopped after."""
    with AwsEmulator() as emulator:
        yield emulator


def cdk_runner(emulator, context, out, stack=None, extra=()):
    """`run(command, outputs_file=None)`: `npx cdk <command> [extra]` against the emulator, failing the test
    on a non-zero exit. `out` is the caller's own cdk.out (the CLI locks that folder, and other runs may
    share the checkout)."""
    def run(command, outputs_file=None):
        result = emulator.run_cdk(command, context, outputs_file=outputs_file, stack=stack,
                                  extra=list(extra) + ["--output", str(out)])
        assert result.returncode == 0, result.stdout + result.stderr
        return result
    return run


class LabStacks:
    """Builds the lab's stacks in-process (no CLI), once per distinct context."""

    def __init__(self):
        self._cache = {}

    def stacks(self, **context):
        """Every stack of the lab, first one first (build_lab, as app.py does)."""
        key = tuple(sorted(context.items()))
        if key not in self._cache:
            from aws_cdk import App

            from cdk.config import from_context
            from cdk.lab_stack import build_lab

            app = App(context=context)
            config = from_context(app.node.try_get_context)
            self._cache[key] = build_lab(app, config)
        return self._cache[key]

    def stack(self, **context):
        """The first stack (network + attendees 1-20)."""
        return self.stacks(**context)[0]

    def template(self, shard=0, **context):
        from aws_cdk.assertions import Template
        return Template.from_stack(self.stacks(**context)[shard])


@pytest.fixture(scope="session")
def lab_stacks():
    return LabStacks()


@pytest.fixture
def cdk_runs(monkeypatch, tmp_path):
    """`cdk` not run: the argv mxlab would run, recorded (MXLAB_HOME is tmp_path/home)."""
    from mxlab.lab import deploy

    monkeypatch.setenv("MXLAB_HOME", str(tmp_path / "home"))
    ran = []
    monkeypatch.setattr(deploy, "_run", lambda argv, region, stack: ran.append(argv) or 0)
    return ran
