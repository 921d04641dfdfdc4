"""The Python environment the agent runs in on the host: the AMI's conda env, or a venv we make.

The choice is remembered in ~/.mxlab-agent/env.sh (a snippet sourced before every agent run),
so the next run skips detection and installation.
"""
import logging
import posixpath
import re
import shlex

from mxlab.errors import RemoteCommandError, UsageError
from mxlab.install import REMOTE_ROOT

log = logging.getLogger(__name__)

ENV_FILE = "env.sh"
PREFERRED = ("mxnet_p36", "mxnet_p27")
# mxnet 1.9.1 CUDA builds on PyPI, newest first: pick the newest the driver supports.
CUDA_BUILDS = ((11, 2, "mxnet-cu112"), (11, 0, "mxnet-cu110"), (10, 2, "mxnet-cu102"), (10, 1, "mxnet-cu101"))

_DETECT = r"""
for d in "$HOME/anaconda3" "$HOME/miniconda3" "$HOME/anaconda" /opt/conda; do
  if [ -f "$d/bin/activate" ]; then
    echo "ROOT $d"
    for e in "$d"/envs/*/; do [ -d "$e" ] && echo "ENV $d $(basename "$e")"; done
  fi
done
if command -v nvidia-smi >/dev/null 2>&1; then
  echo "GPU $(nvidia-smi 2>/dev/null | grep -o 'CUDA Version: *[0-9.]*' | head -1 | grep -o '[0-9.]*$')"
fi
command -v python3 >/dev/null 2>&1 && echo "PYTHON3 $(command -v python3)"
true
"""


def parse_detect(out):
    envs, gpu, python3 = [], None, None
    for line in out.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "ENV":
            root, _, name = rest.rpartition(" ")
            envs.append((root, name))
        elif kind == "GPU":
            gpu = rest.strip() or "unknown"
        elif kind == "PYTHON3":
            python3 = rest.strip()
    return envs, gpu, python3


def choose_conda(envs, requested=None):
    """Candidate (root, name) pairs in order of preference; [] means use the venv fallback."""
    if requested:
        hits = [e for e in envs if e[1] == requested]
        if not hits:
            raise UsageError("--env %s: no such conda env on the host (found: %s; or --env venv)"
                             % (requested, ", ".join(n for _, n in envs) or "none"))
        return hits
    ranked = [e for p in PREFERRED for e in envs if e[1] == p]
    ranked += sorted((e for e in envs if e[1].startswith("mxnet") and e not in ranked),
                     key=lambda e: e[1], reverse=True)
    return ranked


def mxnet_requirement(gpu):
    """The pip requirement for mxnet: the CUDA build matching `nvidia-smi`'s CUDA version, or CPU."""
    if not gpu:
        return "mxnet==1.9.1"
    m = re.match(r"(\d+)\.(\d+)", gpu)
    if m:
        have = (int(m.group(1)), int(m.group(2)))
        for major, minor, name in CUDA_BUILDS:
            if (major, minor) <= have:
                return name + "==1.9.1"
    log.warning("GPU with CUDA %s: no mxnet 1.9.1 CUDA build fits, using the CPU build", gpu)
    return "mxnet==1.9.1"


class RemoteEnv:
    """Resolves and remembers the environment on one host; `prefix` is what to source before `python`."""

    def __init__(self, session, say=None):
        self.session = session
        self.say = say or (lambda msg: log.info("%s", msg))
        self.root = posixpath.join(session.home(), REMOTE_ROOT)
        self.env_file = posixpath.join(self.root, ENV_FILE)

    @property
    def prefix(self):
        return ". %s" % shlex.quote(self.env_file)

    def remembered(self):
        try:
            with self.session.sftp().open(self.env_file) as fh:
                first = fh.readline()
                first = first.decode("utf-8") if isinstance(first, bytes) else first
        except FileNotFoundError:
            return None
        m = re.match(r"# mxlab environment: (\S+)", first)
        return m.group(1) if m else None

    def _works(self, snippet):
        rc, out, err = self.session.exec("%s && python -c 'import mxnet, numpy, cv2; print(mxnet.__version__)'"
                                         % snippet, timeout=300)
        return rc == 0, (out + err).strip()

    def _remember(self, name, snippet):
        with self.session.sftp().open(self.env_file + ".tmp", "w") as fh:
            fh.write("# mxlab environment: %s\n%s\n" % (name, snippet))
        self.session.sftp().posix_rename(self.env_file + ".tmp", self.env_file)

    def ensure(self, requested=None):
        """Return the environment's name (conda:<env> or venv), setting it up on first use."""
        label = self.session.target.label
        known = self.remembered()
        if known and (requested is None or known in (requested, "conda:" + requested)):
            log.info("%s: using remembered environment %s", label, known)
            return known
        rc, out, err = self.session.exec(_DETECT)
        envs, gpu, python3 = parse_detect(out)
        if requested != "venv":
            for root, name in choose_conda(envs, requested):
                snippet = ". %s %s" % (shlex.quote(root + "/bin/activate"), shlex.quote(name))
                ok, detail = self._works(snippet)
                if ok:
                    self.say("%s: conda env %s (mxnet %s) at %s" % (label, name, detail.splitlines()[-1], root))
                    self._remember("conda:" + name, snippet)
                    return "conda:" + name
                if requested:
                    raise RemoteCommandError("%s: conda env %s cannot import mxnet/numpy/cv2: %s"
                                             % (label, name, detail[-400:]))
                self.say("%s: conda env %s has no working mxnet, trying the next" % (label, name))
        return self._make_venv(python3, gpu)

    def _make_venv(self, python3, gpu):
        label = self.session.target.label
        if not python3:
            raise RemoteCommandError("%s: no MXNet conda env and no python3 to make a venv with" % label)
        venv = posixpath.join(self.root, "venv")
        agent_reqs = posixpath.join(self.root, "agent", "requirements.txt")
        reqs = posixpath.join(self.root, "requirements-host.txt")
        mxnet = mxnet_requirement(gpu)
        self.say("%s: no MXNet conda env: making a venv with %s at %s%s"
                 % (label, python3, venv, " (GPU, CUDA %s)" % gpu if gpu else ""))
        steps = [
            ("create the venv", "%s -m venv %s" % (shlex.quote(python3), shlex.quote(venv))),
            ("write the requirements", "sed -E 's/^mxnet(-cu[0-9]+)?==.*/%s/' %s > %s"
             % (mxnet, shlex.quote(agent_reqs), shlex.quote(reqs))),
            ("pip install the agent's requirements",
             "%s/bin/python -m pip install --disable-pip-version-check -q -r %s 2>&1"
             % (shlex.quote(venv), shlex.quote(reqs))),
        ]
        for what, cmd in steps:
            self.say("%s: $ %s" % (label, cmd))
            rc, out, err = self.session.exec(cmd, timeout=1800)
            if rc != 0:
                raise RemoteCommandError("%s: venv fallback: %s failed (exit %d): %s"
                                         % (label, what, rc, (out + err).strip()[-800:]))
        snippet = ". %s" % shlex.quote(venv + "/bin/activate")
        ok, detail = self._works(snippet)
        if not ok:
            raise RemoteCommandError("%s: the new venv cannot import mxnet: %s" % (label, detail[-400:]))
        self._remember("venv", snippet)
        self.say("%s: venv ready (mxnet %s); remembered in %s" % (label, detail.splitlines()[-1], self.env_file))
        return "venv"
