"""The offline lab in the test process (mxlab/offline/lab.py: the real CDK app deployed into the emulator, a real
sshd per instance, the local zoo over HTTP), so that a test can read the zoo's request log and reach into a
host's home; and the plain `mxlab` commands pointed at it as child processes, as an organiser types them."""
import json
import os
import subprocess
import sys

import pytest

from mxlab.offline import REPO_ROOT


@pytest.fixture(scope="module")
def lab(request, tmp_path_factory):
    """One OfflineLab for the test module, of the module's LAB_ATTENDEES attendees (a deploy costs minutes)."""
    from mxlab.offline import sandbox
    from mxlab.offline.lab import OfflineLab

    sandbox.quiet_emulator()
    with OfflineLab(attendees=request.module.LAB_ATTENDEES, say=lambda text: None,
                    log_dir=tmp_path_factory.mktemp("lab-log")) as lab:
        yield lab


def lab_env(lab, extra=None, drop=()):
    """This process's environment with the lab's variables instead of any AWS_/MXLAB_ (or `drop`) ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MXLAB_") + tuple(drop))}
    env.update(lab.variables(), COLUMNS="250")
    env.update(extra or {})
    return env


def mxlab(lab, *args, timeout=900, env=None):
    """`mxlab ARGS` run to its end against the lab: CompletedProcess (text)."""
    return subprocess.run([sys.executable, "-m", "mxlab"] + [str(a) for a in args], env=lab_env(lab, env),
                          cwd=str(REPO_ROOT), capture_output=True, text=True, timeout=timeout)


def mxlab_started(lab, *args, log, env=None):
    """`mxlab ARGS` running in the background, its stdout and stderr to `log`."""
    handle = open(str(log), "w")
    return subprocess.Popen([sys.executable, "-m", "mxlab"] + [str(a) for a in args], env=lab_env(lab, env),
                            cwd=str(REPO_ROOT), stdout=handle, stderr=subprocess.STDOUT, text=True)


def readiness_file(lab):
    """The hosts `mxlab prepare` recorded as ready for the lab (its readiness file)."""
    from mxlab.workshop import prepare

    return json.loads((lab.mxlab_home / lab.stack / prepare.READINESS_FILE).read_text())["hosts"]
