"""`mxlab sandbox` as a child process, as a script or a test uses it: started, waited for, its `export`
lines taken as the environment of the plain commands, stopped with Ctrl-C (the tests and scripts/bench)."""
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from mxlab.offline import REPO_ROOT, leftovers


class SandboxNotReady(RuntimeError):
    """The sandbox exited, or did not say `sandbox ready`, in time."""


def parse_exports(lines):
    """{NAME: value} from `export NAME=VALUE` lines (shell-quoted values); ValueError for anything else."""
    found = {}
    for line in lines:
        words = shlex.split(line)
        if len(words) != 2 or words[0] != "export" or "=" not in words[1]:
            raise ValueError("expected only `export NAME=VALUE` lines before 'sandbox ready', got %r" % line)
        key, _, value = words[1].partition("=")
        found[key] = value
    return found


class SandboxProcess:
    """`mxlab sandbox ARGS` as a child; stdout/stderr to files (a full pipe would stall it)."""

    def __init__(self, folder, *args):
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.out_file, self.err_file = folder / "sandbox.out", folder / "sandbox.err"
        env = dict(os.environ, COLUMNS="200")
        for key in [k for k in env if k.startswith(("AWS_", "MXLAB_"))]:
            del env[key]
        with open(self.out_file, "w") as out, open(self.err_file, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "mxlab", "sandbox"] + [str(a) for a in args],
                                         cwd=str(REPO_ROOT), env=env, stdout=out, stderr=err)
        self.variables = {}

    def wait_ready(self, timeout=900):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.out_file.read_text().splitlines()
            if "sandbox ready" in lines:
                self.variables = parse_exports(lines[:lines.index("sandbox ready")])
                return self
            if self.proc.poll() is not None:
                raise SandboxNotReady("sandbox exited %s before it was ready:\n%s"
                                      % (self.proc.returncode, self.err_file.read_text()[-3000:]))
            time.sleep(0.5)
        raise SandboxNotReady("sandbox not ready in %d s:\n%s" % (timeout, self.err_file.read_text()[-3000:]))

    def env(self):
        """This process's environment with the sandbox's exports, as after `eval`."""
        env = dict(os.environ, COLUMNS="200")
        for key in [k for k in env if k.startswith(("AWS_", "MXLAB_"))]:
            del env[key]
        env.update(self.variables)
        return env

    def mxlab(self, *args, timeout=600, cwd=None):
        """Run a plain `mxlab ARGS` with the sandbox's variables: CompletedProcess (text)."""
        return subprocess.run([sys.executable, "-m", "mxlab"] + [str(a) for a in args], env=self.env(),
                              cwd=str(cwd or REPO_ROOT), capture_output=True, text=True, timeout=timeout)

    def client(self, service, admin=False):
        """A boto3 client as the exported keys (the organiser's with --enforce-iam), or as the
        sandbox's administrator (admin=True: what an organiser may not do, e.g. change its policy)."""
        import boto3
        v = self.variables
        key, secret, token = v["AWS_ACCESS_KEY_ID"], v["AWS_SECRET_ACCESS_KEY"], v.get("AWS_SESSION_TOKEN")
        if admin and "MXLAB_SANDBOX_ADMIN_ACCESS_KEY_ID" in v:
            key, secret = v["MXLAB_SANDBOX_ADMIN_ACCESS_KEY_ID"], v["MXLAB_SANDBOX_ADMIN_SECRET_ACCESS_KEY"]
            token = None
        return boto3.client(service, endpoint_url=v["AWS_ENDPOINT_URL"], region_name=v["AWS_DEFAULT_REGION"],
                            aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token)

    def outputs(self):
        home = Path(self.variables["MXLAB_HOME"])
        stack = self.variables.get("MXLAB_STACK", "MxnetLab")
        merged = {}
        for outputs in json.loads((home / stack / "outputs.json").read_text()).values():
            merged.update(outputs)
        return merged

    def records(self):
        """The leftover records this sandbox wrote: [(record dict)]."""
        found = []
        for path in leftovers.records_dir().glob("*.json"):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if data.get("owner") == self.proc.pid:
                found.append(data)
        return found

    def stop(self, sig=signal.SIGINT, timeout=120):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
