"""The Python environment the agent runs in on the host: the AMI's conda env, or a venv we make.

The choice is remembered in ~/.mxlab-agent/env.sh (a snippet sourced before every agent run),
so the next run skips detection and installation.

On a GPU host the venv gets MXNet's CUDA build; for mxnet-cu112 also the CUDA 11 runtime from PyPI
(agent/requirements-gpu.txt, see gpu_runtime.py) with its folders on LD_LIBRARY_PATH, and a real GPU
op must pass. If it does not, the venv falls back to the CPU build and says so in every run's summary.
"""
import logging
import posixpath
import re
import shlex

from mxlab.remote import gpu_runtime
from agent.contract import AGENT_DIR, ENV_FILE, REMOTE_ROOT
from mxlab.errors import RemoteCommandError, UsageError

log = logging.getLogger(__name__)

PREFERRED = ("mxnet_p36", "mxnet_p27")
# mxnet 1.9.1 CUDA builds on PyPI, newest first: pick the newest the driver supports.
CUDA_BUILDS = ((11, 2, "mxnet-cu112"), (11, 0, "mxnet-cu110"), (10, 2, "mxnet-cu102"), (10, 1, "mxnet-cu101"))
CPU_MXNET = "mxnet==%s" % gpu_runtime.MXNET_VERSION
# MXNet 1.9.1 and numpy 1.23.5 install on CPython 3.6-3.11 only: where the host's python3 is newer (Ubuntu 24.04
# AMIs: 3.12), the venv gets a CPython 3.11 that uv installs (agent/requirements-python.txt) under ~/.mxlab-agent.
NEWEST_VENV_PYTHON = (3, 11)
MANAGED_PYTHON = "3.11"
UV_VENV = "uv"  # ~/.mxlab-agent/uv: a venv of the host's python3 holding uv
MANAGED_PYTHONS = "python"  # ~/.mxlab-agent/python: uv's Python installations (UV_PYTHON_INSTALL_DIR)
_VERSION = "import sys; print('%d.%d' % sys.version_info[:2])"
# In the venv once MXNet imports there: a venv without it is a set-up that was killed or failed half-way.
VENV_READY = ".mxlab-ready"
# Debian/Ubuntu's python3 without python3.X-venv: `python3 -m venv` prints this (across a line break)
# and exits 1.
ENSUREPIP_MISSING = "ensurepip is not available"
# apt-get waits for cloud-init's/unattended-upgrades' dpkg lock on a fresh instance instead of failing.
# env_file_command's line before env.sh's text.
ENV_SHOWN = "MXLAB-ENV-FILE"
_APT = "sudo -n env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=300"

_DETECT = r"""
for d in "$HOME/anaconda3" "$HOME/miniconda3" "$HOME/anaconda" /opt/conda; do
  if [ -f "$d/bin/activate" ]; then
    echo "ROOT $d"
    for e in "$d"/envs/*/; do [ -d "$e" ] && echo "ENV $d $(basename "$e")"; done
  fi
done
# A CPU instance of a GPU AMI has nvidia-smi too, failing there: only a working one means a GPU.
if command -v nvidia-smi >/dev/null 2>&1 && smi="$(nvidia-smi 2>/dev/null)"; then
  echo "GPU $(echo "$smi" | grep -o 'CUDA Version: *[0-9.]*' | head -1 | grep -o '[0-9.]*$')"
fi
command -v python3 >/dev/null 2>&1 && echo "PYTHON3 $(command -v python3)"
true
"""


def env_file_command():
    """The command that prints env.sh for RemoteEnv(env_text=...), where it exists: between ENV_SHOWN lines."""
    path = shlex.quote(posixpath.join(REMOTE_ROOT, ENV_FILE))  # relative to the home, where commands start
    return "if [ -f %s ]; then echo %s; cat %s; echo; echo %s; fi" % (path, ENV_SHOWN, path, ENV_SHOWN)


def parse_env_file(out):
    """env.sh's text from env_file_command's output (other lines around it), None when there was none."""
    parts = out.split(ENV_SHOWN + "\n")
    return parts[1] if len(parts) >= 3 else None


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


def venv_package(message):
    """The apt package that gives python3 its venv/ensurepip, as Ubuntu's own message names it."""
    m = re.search(r"apt install (python3(?:\.\d+)?-venv)", message)
    return m.group(1) if m else "python3-venv"


def last_line(text):
    lines = [l.strip() for l in text.strip().splitlines() if l.strip()]
    return lines[-1] if lines else "(no output)"


def mxnet_requirement(gpu):
    """The pip requirement for mxnet: the CUDA build matching `nvidia-smi`'s CUDA version, or CPU."""
    if not gpu:
        return CPU_MXNET
    m = re.match(r"(\d+)\.(\d+)", gpu)
    if m:
        have = (int(m.group(1)), int(m.group(2)))
        for major, minor, name in CUDA_BUILDS:
            if (major, minor) <= have:
                return "%s==%s" % (name, gpu_runtime.MXNET_VERSION)
    log.warning("GPU with CUDA %s: no mxnet %s CUDA build fits, using the CPU build", gpu,
                gpu_runtime.MXNET_VERSION)
    return CPU_MXNET


class RemoteEnv:
    """Resolves and remembers the environment on one host; `prefix` is what to source before `python`."""

    def __init__(self, session, say=None, lock=True, lock_wait_s=600.0, env_text=False):
        """`env_text`: env.sh's text (None: there is none), where a command of the caller's read it
        (env_file_command); else it is read over SFTP, once."""
        self.session = session
        self.say = say or (lambda msg: log.info("%s", msg))
        # Setting up takes the host's set-up lock (host_lock.py), unless the caller holds it (prepare).
        self.lock = lock
        self.lock_wait_s = lock_wait_s
        self._env_text = env_text  # False: not read yet

    @property
    def root(self):
        return posixpath.join(self.session.home(), REMOTE_ROOT)

    @property
    def env_file(self):
        return posixpath.join(self.root, ENV_FILE)

    @property
    def prefix(self):
        return ". %s" % shlex.quote(self.env_file)

    def remembered(self):
        return self._remembered()[0]

    def _remembered(self):
        """(name, warning) from env.sh; (None, None) before the first set-up."""
        if self._env_text is False:
            try:
                with self.session.sftp().open(self.env_file) as fh:
                    text = fh.read()
                    self._env_text = text.decode("utf-8") if isinstance(text, bytes) else text
            except FileNotFoundError:
                self._env_text = None
        text = self._env_text
        if text is None:
            return None, None
        m = re.match(r"# mxlab environment: (\S+)", text)
        w = re.search(r"^# mxlab warning: (.+)$", text, re.M)
        return (m.group(1) if m else None), (w.group(1).strip() if w else None)

    def as_remembered(self):
        """ensure()'s name for the environment env.sh names (None where it names none), without a command: for
        a run whose own command checked the host (host.Prepared)."""
        known, warning = self._remembered()
        if not known:
            return None
        log.info("%s: using remembered environment %s", self.session.target.label, known)
        return self._named(known, warning)

    def _works(self, snippet, gpu=False):
        code = "import mxnet, numpy, cv2"
        if gpu:  # the import alone does not prove the CUDA libraries and the driver work together
            code += "; mxnet.nd.ones((2, 2), ctx=mxnet.gpu(0)).asnumpy()"
        code += "; print(mxnet.__version__)"
        rc, out, err = self.session.exec("%s && python -c %s" % (snippet, shlex.quote(code)), timeout=300)
        return rc == 0, (out + err).strip()

    def _remember(self, name, snippet, warning=None):
        text = "# mxlab environment: %s\n" % name
        if warning:
            text += "# mxlab warning: %s\n" % " ".join(warning.split())
        text += "%s\n" % snippet
        with self.session.sftp().open(self.env_file + ".tmp", "w") as fh:
            fh.write(text)
        self.session.sftp().posix_rename(self.env_file + ".tmp", self.env_file)
        self._env_text = text

    def _named(self, name, warning):
        """The name every run's summary shows: with the warning, so a degraded host is never silent."""
        if not warning:
            return name
        self.say("%s: WARNING: %s" % (self.session.target.label, warning))
        return "%s (WARNING: %s)" % (name, warning)

    def ensure(self, requested=None, engine="mxnet"):
        """Return the environment's name (conda:<env> or venv), setting it up on first use; with
        engine onnxruntime or auto, also the agent's optional ONNX Runtime engine."""
        if not self.lock or self._usable_as_remembered(requested, engine):
            return self._ensure_unlocked(requested, engine)
        from mxlab.hosts.host_lock import HostLock
        with HostLock(self.session, self.say, wait_s=self.lock_wait_s):  # another organiser may be at it too
            return self._ensure_unlocked(requested, engine)

    def _usable_as_remembered(self, requested, engine):
        known, _ = self._remembered()
        return engine == "mxnet" and known is not None and (requested is None or known in (requested,
                                                                                         "conda:" + requested))

    def _ensure_unlocked(self, requested, engine):
        name = self._ensure(requested)
        if engine != "mxnet":
            self._ensure_onnx_engine(engine)
        return name

    def _ensure_onnx_engine(self, engine):
        """agent/requirements-onnx.txt into the env, once (only runs that ask for it pay for it).
        For auto a failed install is a warning: the agent then runs MXNet and says so."""
        label = self.session.target.label
        check = "%s && python -c 'import onnxruntime, onnx' 2>&1" % self.prefix
        rc, _, _ = self.session.exec(check, timeout=300)
        if rc == 0:
            return
        reqs = posixpath.join(self.root, AGENT_DIR, "requirements-onnx.txt")
        self.say("%s: installing the ONNX Runtime engine (%s)" % (label, "agent/requirements-onnx.txt"))
        rc, out = self._step("pip install the ONNX Runtime engine",
                             "%s && python -m pip install --disable-pip-version-check -q -r %s 2>&1"
                             % (self.prefix, shlex.quote(reqs)), check=engine == "onnxruntime")
        if rc == 0:  # installed (or "already satisfied"): it must import now
            rc, out, err = self.session.exec(check, timeout=300)
            out = "installed, but `import onnxruntime, onnx` fails: %s" % last_line(out + err)
            if rc != 0 and engine == "onnxruntime":
                raise RemoteCommandError("%s: the ONNX Runtime engine: %s" % (label, out[-400:]))
        if rc != 0:
            self.say("%s: WARNING: the ONNX Runtime engine did not install (%s); --engine auto runs MXNet"
                     % (label, last_line(out)[-200:]))

    def _ensure(self, requested=None):
        label = self.session.target.label
        known, warning = self._remembered()
        if known and (requested is None or known in (requested, "conda:" + requested)):
            log.info("%s: using remembered environment %s", label, known)
            return self._named(known, warning)
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
        python3 = self._python_for_venv(python3)
        mxnet = mxnet_requirement(gpu)
        self.say("%s: no MXNet conda env: making a venv with %s at %s%s"
                 % (label, python3, venv, " (GPU, CUDA %s)" % gpu if gpu else ""))
        rc, out, _ = self.session.exec("[ -d %s ] && ! [ -e %s ] && echo unfinished; true"
                                       % (shlex.quote(venv), shlex.quote(posixpath.join(venv, VENV_READY))))
        unfinished = out.strip() == "unfinished"
        if unfinished:  # a set-up that was killed (or failed) half-way: none of it is trusted
            self.say("%s: %s has no %s (an earlier set-up did not finish): making it again from scratch"
                     % (label, venv, VENV_READY))
        self._create_venv(python3, venv, clear=unfinished)
        warning = None
        if mxnet != CPU_MXNET:
            snippet, why = self._install_gpu(venv, mxnet)
            if snippet:
                self._mark_ready(venv)
                self._remember("venv", snippet)
                self.say("%s: venv ready (%s, a GPU op passed); remembered in %s" % (label, mxnet, self.env_file))
                return "venv"
            warning = "GPU host (CUDA %s) but MXNet runs on the CPU build: %s" % (gpu, why)
            self.say("%s: WARNING: %s; falling back to %s" % (label, warning, CPU_MXNET))
            runtime = gpu_runtime.package_names() if mxnet.startswith(gpu_runtime.MXNET_GPU + "==") else []
            self._step("remove the GPU build", "%s -m pip uninstall -y -q %s 2>&1"
                       % (shlex.quote(venv + "/bin/python"), " ".join([mxnet.split("==")[0]] + runtime)))
        elif gpu:
            warning = "GPU host (CUDA %s) but no MXNet %s CUDA build fits: MXNet runs on the CPU build" % (
                gpu, gpu_runtime.MXNET_VERSION)
        self._pip_install(venv, CPU_MXNET)
        snippet = ". %s" % shlex.quote(venv + "/bin/activate")
        ok, detail = self._works(snippet)
        if not ok:
            raise RemoteCommandError("%s: the new venv cannot import mxnet: %s" % (label, detail[-400:]))
        self._mark_ready(venv)
        self._remember("venv", snippet, warning)
        self.say("%s: venv ready (mxnet %s); remembered in %s" % (label, detail.splitlines()[-1], self.env_file))
        return self._named("venv", warning)

    def _python_for_venv(self, python3):
        """python3 itself where MXNet's pins install on it, else the path of a CPython 3.11 installed by uv."""
        label = self.session.target.label
        rc, out, err = self.session.exec("%s -c %s" % (shlex.quote(python3), shlex.quote(_VERSION)), timeout=120)
        try:
            version = tuple(int(part) for part in out.strip().splitlines()[-1].split("."))
        except (ValueError, IndexError):
            raise RemoteCommandError("%s: %s does not tell its version (exit %d): %s"
                                     % (label, python3, rc, last_line(out + err)))
        if version <= NEWEST_VENV_PYTHON:
            return python3
        self.say("%s: %s is Python %d.%d, newer than MXNet 1.9.1 and numpy 1.23.5 install on (<= 3.11): "
                 "installing CPython %s with uv for the venv" % ((label, python3) + version[:2] + (MANAGED_PYTHON,)))
        uv_venv = posixpath.join(self.root, UV_VENV)
        self._create_venv(python3, uv_venv)
        self._step("pip install uv", "%s -m pip install --disable-pip-version-check -q -r %s 2>&1" % (
            shlex.quote(uv_venv + "/bin/python"), shlex.quote(posixpath.join(self.root, AGENT_DIR,
                                                                             "requirements-python.txt"))))
        uv = "UV_PYTHON_INSTALL_DIR=%s %s" % (shlex.quote(posixpath.join(self.root, MANAGED_PYTHONS)),
                                              shlex.quote(uv_venv + "/bin/uv"))
        # --no-bin: no python3.11 link in ~/.local/bin, the host's own PATH stays as it was.
        self._step("uv python install %s" % MANAGED_PYTHON, "%s python install --no-bin %s 2>&1"
                   % (uv, MANAGED_PYTHON), timeout=1800)
        rc, out, err = self.session.exec("%s python find --managed-python %s" % (uv, MANAGED_PYTHON), timeout=120)
        found = out.strip().splitlines()[-1] if rc == 0 and out.strip() else ""
        if not found:
            raise RemoteCommandError("%s: uv installed CPython %s but cannot find it (exit %d): %s"
                                     % (label, MANAGED_PYTHON, rc, last_line(out + err)))
        return found

    def _mark_ready(self, venv):
        """The venv's completion marker: written only once MXNet imports in it (see _make_venv)."""
        self.session.check("touch %s" % shlex.quote(posixpath.join(venv, VENV_READY)), "marking the venv ready")

    def _step(self, what, cmd, timeout=1800, check=True):
        label = self.session.target.label
        self.say("%s: $ %s" % (label, cmd))
        rc, out, err = self.session.exec(cmd, timeout=timeout)
        if rc != 0 and check:
            raise RemoteCommandError("%s: venv fallback: %s failed (exit %d): %s"
                                     % (label, what, rc, (out + err).strip()[-800:]))
        return rc, (out + err).strip()

    def _create_venv(self, python3, venv, clear=False):
        """`python3 -m venv` (`clear`: emptied first); where Ubuntu lacks python3.X-venv, apt-get it when sudo
        needs no password."""
        label, user = self.session.target.label, self.session.target.user
        create = "%s -m venv %s%s 2>&1" % (shlex.quote(python3), "--clear " if clear else "", shlex.quote(venv))
        rc, out = self._step("create the venv", create, timeout=600, check=False)
        if rc == 0:
            return
        if ENSUREPIP_MISSING not in " ".join(out.split()):  # Ubuntu breaks the line inside the phrase
            raise RemoteCommandError("%s: venv fallback: create the venv failed (exit %d): %s"
                                     % (label, rc, out[-800:]))
        package = venv_package(out)
        rc, sudo = self._step("check sudo", "sudo -n true 2>&1", timeout=60, check=False)
        if rc != 0:
            raise RemoteCommandError(
                "%s: %s cannot make a venv: ensurepip is not available (the %s package is not installed), and "
                "%s cannot install it (sudo -n: %s). Install it on the host (sudo apt-get install -y %s) or use "
                "an AMI with an MXNet conda env." % (label, python3, package, user, last_line(sudo), package))
        self.say("%s: %s has no ensurepip: installing %s with apt-get" % (label, python3, package))
        install = "%s install %s" % (_APT, package)
        # A fresh instance may have no package lists yet ("Unable to locate package"): update, then retry.
        self._step("apt-get install %s" % package, "{ %s || { %s update && %s; }; } 2>&1"
                   % (install, _APT, install))
        # Ubuntu leaves the half-made venv behind: make it again from scratch.
        self._step("create the venv", "%s -m venv --clear %s 2>&1" % (shlex.quote(python3), shlex.quote(venv)),
                   timeout=600)

    def _pip_install(self, venv, mxnet, extra=(), check=True):
        """Install the agent's requirements with `mxnet` as the MXNet line, plus `extra` requirement files."""
        agent_reqs = posixpath.join(self.root, AGENT_DIR, "requirements.txt")
        reqs = posixpath.join(self.root, "requirements-host.txt")
        self._step("write the requirements", "sed -E 's/^mxnet(-cu[0-9]+)?==.*/%s/' %s > %s"
                   % (mxnet, shlex.quote(agent_reqs), shlex.quote(reqs)))
        return self._step("pip install the agent's requirements",
                          "%s/bin/python -m pip install --disable-pip-version-check -q %s 2>&1"
                          % (shlex.quote(venv), " ".join("-r " + shlex.quote(r) for r in [reqs] + list(extra))),
                          check=check)

    def _install_gpu(self, venv, mxnet):
        """(snippet, None) when MXNet's CUDA build runs a GPU op in the venv, else (None, why not)."""
        runtime = mxnet.startswith(gpu_runtime.MXNET_GPU + "==")
        extra = [posixpath.join(self.root, AGENT_DIR, gpu_runtime.REQUIREMENTS.name)] if runtime else []
        what = mxnet + (" and the CUDA 11 runtime (%s)" % gpu_runtime.REQUIREMENTS.name if runtime else "")
        rc, out = self._pip_install(venv, mxnet, extra, check=False)
        if rc != 0:
            return None, "pip could not install %s: %s" % (what, last_line(out)[-200:])
        snippet = ". %s" % shlex.quote(venv + "/bin/activate")
        if runtime:
            rc, out = self._step("find site-packages", "%s -c %s" % (
                shlex.quote(venv + "/bin/python"),
                shlex.quote("import sysconfig; print(sysconfig.get_paths()['purelib'])")), timeout=60)
            dirs = [posixpath.join(out.splitlines()[-1], d) for d in gpu_runtime.lib_dirs()]
            rc, out = self._step("check the CUDA library folders",
                                 'for d in %s; do [ -d "$d" ] || echo "missing $d"; done'
                                 % " ".join(shlex.quote(d) for d in dirs), timeout=60)
            if out:
                return None, "the CUDA 11 runtime is incomplete: %s" % last_line(out)
            # Before `import mxnet`: the loader reads LD_LIBRARY_PATH only at process start.
            snippet += (" && export LD_LIBRARY_PATH=%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
                        % shlex.quote(":".join(dirs)))
        self.say("%s: checking a GPU op in: %s" % (self.session.target.label, snippet))
        ok, detail = self._works(snippet, gpu=True)
        if not ok:
            return None, "the GPU check mx.nd.ones((2, 2), ctx=mx.gpu(0)) failed: %s" % last_line(detail)[-200:]
        return snippet, None
