"""JupyterLab on every lab host, reachable only through the attendee's SSH tunnel (the offline lab: the real CDK
app in the emulator, a real sshd per instance, the local zoo): `mxlab prepare` installs and starts it, `mxlab
handout` gives each attendee a LocalForward and the URL with their token, headless Chromium opens it through the
real `ssh -F ssh_config -N attendee-1`, the workshop notebook runs top to bottom in the host's MXNet kernel, and a
stopped and started instance serves it again."""
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request

import nbformat
import pytest

from mxlab.workshop import notebook_server, prepare, room_status, workspace
from mxlab.offline import REPO_ROOT
from tests.fixtures_lab import mxlab, readiness_file
from tests.notebook_outputs import check_executed

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]
MODELS = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")
# The README's screenshot: rewritten only when asked (MXLAB_UPDATE_SCREENSHOTS=1), so a test run leaves the
# checkout as it was.
SCREENSHOT = REPO_ROOT / "docs" / "jupyterlab-through-ssh.png"
LAB_ATTENDEES = 2  # the lab fixture (tests/fixtures_lab.py)


@pytest.fixture(scope="module")
def prepared(lab, tmp_path_factory):
    proc = mxlab(lab, "prepare", "--all", "--models", ",".join(MODELS), timeout=2000)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = tmp_path_factory.mktemp("handout") / "handout"
    handout = mxlab(lab, "handout", "--all", "--out", out)
    assert handout.returncode == 0, handout.stdout + handout.stderr
    return proc, handout, out


def jupyter_dir(lab, n):
    return lab.host(n).home / ".mxlab-agent" / notebook_server.JUPYTER_DIR


def token_of(lab, n):
    return (jupyter_dir(lab, n) / "token").read_text().strip()


def local_forward(folder):
    m = re.search(r"LocalForward 127\.0\.0\.1:(\d+) 127\.0\.0\.1:(\d+)", (folder / "ssh_config").read_text())
    assert m, (folder / "ssh_config").read_text()
    return int(m.group(1)), int(m.group(2))


class Tunnel:
    """`ssh -F DIR/attendee-N/ssh_config -N attendee-N`, as the attendee runs it, until closed."""

    def __init__(self, folder, label, home):
        env = {k: v for k, v in os.environ.items() if not k.startswith("SSH_")}
        env["HOME"] = str(home)
        self.port = local_forward(folder)[0]
        self.proc = subprocess.Popen(["ssh", "-o", "BatchMode=yes", "-F", str(folder / "ssh_config"), "-N", label],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while not self._open():
            assert self.proc.poll() is None, self.proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the tunnel's local port never opened"
            time.sleep(0.2)

    def _open(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)


def get(url, token=None, timeout=10):
    """(status, body) of a GET; redirects are not followed (a refused request's is the login page)."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None
    opener = urllib.request.build_opener(NoRedirect)
    req = urllib.request.Request(url, headers={"Authorization": "token " + token} if token else {})
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def test_prepare_serves_jupyterlab_on_each_hosts_loopback_with_a_private_token(lab, prepared):
    proc, handout, out = prepared
    hosts = readiness_file(lab)
    ports = set()
    for n in (1, 2):
        entry = hosts["attendee-%d" % n]
        assert entry["ready"] and entry["workspace"].endswith("/mxnet-lab"), entry
        notebook = entry["notebook"]
        assert notebook["kernel"].startswith("MXNet (conda:mxnet_p36")
        assert notebook["kept_running_by"].startswith("started by mxlab (no systemd user manager")
        ports.add(notebook["port"])
        folder = jupyter_dir(lab, n)
        assert stat.S_IMODE(os.stat(str(folder / "token")).st_mode) == 0o600
        token = token_of(lab, n)
        assert len(token) == 48
        # Nowhere but on the host and in the attendee's own folder.
        for text in (proc.stdout, proc.stderr, handout.stdout, handout.stderr,
                     (lab.mxlab_home / lab.stack / prepare.READINESS_FILE).read_text(),
                     (out / "index.html").read_text(), (folder / "server.log").read_text()):
            assert token not in text
        for name in ("ssh_config", "README.txt", "index.html"):
            assert token in (out / ("attendee-%d" % n) / name).read_text() or name == "ssh_config"
        assert stat.S_IMODE(os.stat(str(out / ("attendee-%d" % n) / "index.html")).st_mode) == 0o600
        # Bound to 127.0.0.1 only: the instance's own (public) address does not answer on that port.
        with pytest.raises(OSError):
            socket.create_connection((lab.host(n).address, notebook["port"]), timeout=2).close()
    assert len(ports) == 2, "each sandbox instance has a port of its own"


def test_the_handouts_url_opens_jupyterlab_through_the_ssh_tunnel(lab, prepared, browser_page, tmp_path):
    _, _, out = prepared
    folder = out / "attendee-1"
    url = re.search(r"(http://127\.0\.0\.1:\d+/lab\?token=\w+)", (folder / "README.txt").read_text()).group(1)
    assert "ssh -F ssh_config attendee-1" in (folder / "README.txt").read_text()
    home = tmp_path / "attendee-home"
    home.mkdir()
    tunnel = Tunnel(folder, "attendee-1", home)
    try:
        base = "http://127.0.0.1:%d" % tunnel.port
        status, _ = get(base + "/api/contents")
        assert status == 403, "a request without the token is refused"
        status, _ = get(base + "/lab")
        assert status in (302, 403)
        status, body = get(base + "/api/contents", token=token_of(lab, 1))
        assert status == 200 and "mxnet-lab.ipynb" in [c["name"] for c in json.loads(body)["content"]]
        status, body = get(base + "/api/contents", token=token_of(lab, 2))
        assert status == 403, "attendee 2's token does not open attendee 1's notebook"

        browser_page.goto(url, timeout=120)
        deadline = time.monotonic() + 120
        while not browser_page.evaluate("!!document.querySelector('.jp-DirListing-item') && "
                                        "document.body.innerText.includes('mxnet-lab.ipynb')"):
            assert time.monotonic() < deadline, browser_page.evaluate("document.body.innerText")[:2000]
            time.sleep(1)
        assert browser_page.evaluate("document.title").endswith("JupyterLab")
        shot = tmp_path / SCREENSHOT.name
        browser_page.screenshot(shot, full_page=False)
        assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        if os.environ.get("MXLAB_UPDATE_SCREENSHOTS") == "1":
            shutil.copyfile(shot, SCREENSHOT)
    finally:
        tunnel.close()


def code_cells():
    return len([c for c in nbformat.read(str(workspace.NOTEBOOK), as_version=4).cells if c.cell_type == "code"])


def status_rows(lab, *args):
    proc = mxlab(lab, "status", *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {}
    for line in proc.stdout.splitlines():
        cols = [c.strip() for c in line.strip("│ ").split("│")]
        if cols and cols[0].startswith("attendee-"):
            rows[cols[0]] = dict(zip(room_status.COLUMNS[1:], cols[1:]))
    return rows, proc


def test_the_notebook_runs_top_to_bottom_in_the_hosts_mxnet_kernel_and_status_follows(lab, prepared, tmp_path,
                                                                                      browser_page):
    """nbconvert --execute on each host (the server venv's), with the registered `mxnet` kernel: env.sh's
    conda env runs it; the saved notebook has the outputs, and `mxlab status` shows the progress."""
    _, _, out = prepared
    total = code_cells()
    rows, _ = status_rows(lab)
    assert sorted(rows) == ["attendee-1", "attendee-2"]
    for row in rows.values():
        assert (row["state"], row["SSH"], row["notebook"], row["cells run"], row["models"]) == (
            "running", "yes", "up", "0/%d" % total, "3/3"), rows
    command = ("cd ~/mxnet-lab && ~/.mxlab-agent/jupyter/venv/bin/jupyter nbconvert --to notebook --execute "
               "--inplace --ExecutePreprocessor.kernel_name=%s --ExecutePreprocessor.timeout=600 mxnet-lab.ipynb"
               % notebook_server.KERNEL_NAME)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSH_")}
    for n in (1, 2):
        ssh = subprocess.run(["ssh", "-o", "BatchMode=yes", "-F", str(out / ("attendee-%d" % n) / "ssh_config"),
                              "attendee-%d" % n, command], env=env, capture_output=True, text=True, timeout=900)
        assert ssh.returncode == 0, ssh.stderr[-3000:]
        check_executed(nbformat.read(str(lab.host(n).home / "mxnet-lab" / "mxnet-lab.ipynb"), as_version=4))

    # attendee 2 edits a cell into an error, as attendees do: status names the exception, and does not crash.
    path = lab.host(2).home / "mxnet-lab" / "mxnet-lab.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    last.outputs = [nbformat.v4.new_output("error", ename="NameError", evalue="name 'vgg' is not defined",
                                           traceback=[])]
    nbformat.write(nb, str(path))
    page = tmp_path / "room.html"
    rows, proc = status_rows(lab, "--html", page)
    assert rows["attendee-1"]["cells run"] == rows["attendee-2"]["cells run"] == "%d/%d" % (total, total), rows
    assert rows["attendee-1"]["last exception"] == "-" and rows["attendee-2"]["last exception"] == "NameError"
    assert rows["attendee-1"]["last activity"].endswith("UTC")
    for n in (1, 2):
        assert token_of(lab, n) not in proc.stdout + proc.stderr + page.read_text()
    browser_page.goto(page.as_uri())
    assert browser_page.evaluate("document.querySelectorAll('tbody tr').length") == 2
    assert browser_page.errors == []
    assert [u for u in browser_page.requests if not u.startswith("file://")] == []

    # --watch: the page reloads itself while it runs, and stops reloading once Ctrl-C ends it.
    watched = tmp_path / "watched.html"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MXLAB_"))}
    env.update(lab.variables(), COLUMNS="250")
    watch = subprocess.Popen([sys.executable, "-m", "mxlab", "status", "--watch", "--every", "1", "--html", watched],
                             env=env, cwd=str(REPO_ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (watched.exists() and 'http-equiv="refresh"' in watched.read_text()):
            assert watch.poll() is None and time.monotonic() < deadline, watch.stderr.read()
            time.sleep(0.2)
    finally:
        watch.send_signal(signal.SIGINT)
        shown, err = watch.communicate(timeout=60)
    assert watch.returncode == 0, err
    assert "attendee-2" in shown and "NameError" in shown
    assert 'http-equiv="refresh"' not in watched.read_text() and "NameError" in watched.read_text()


def test_a_dead_jupyterlab_is_shown_and_mxlab_notebook_brings_it_back(lab, prepared):
    folder = jupyter_dir(lab, 2)
    port_before = (folder / "port").read_text()
    pid = int((folder / "server.pid").read_text())
    os.kill(pid, 15)
    deadline = time.monotonic() + 30
    while os.path.exists("/proc/%d" % pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    rows, _ = status_rows(lab, "--attendee", "2")
    assert rows["attendee-2"]["notebook"].startswith("DOWN"), rows

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MXLAB_"))}
    env.update(lab.variables(), COLUMNS="250")
    proc = subprocess.Popen([sys.executable, "-m", "mxlab", "notebook", "--attendee", "2"], env=env,
                            cwd=str(REPO_ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        while not any(line.startswith("open ") for line in lines):
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            lines.append(line)
        url_line = next(line for line in lines if "JupyterLab: http" in line)
        port = int(re.search(r"127\.0\.0\.1:(\d+)/lab", url_line).group(1))
        opener = next(line for line in lines if line.startswith("open ")).split()[1]
        assert stat.S_IMODE(os.stat(opener).st_mode) == 0o600
        token = token_of(lab, 2)
        assert token in open(opener).read() and token not in "".join(lines)
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _ = get("http://127.0.0.1:%d/api/status" % port, token=token)
            except OSError:
                status = None
            if status == 200:
                break
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert get("http://127.0.0.1:%d/api/status" % port)[0] == 403
    finally:
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "starting it again" in err and token not in rest + err
    assert (folder / "port").read_text() == port_before, "started again where the handout's tunnel points"


def test_a_stopped_and_started_instance_serves_the_notebook_again(lab, prepared, tmp_path):
    _, _, out = prepared
    before = local_forward(out / "attendee-2")
    token = token_of(lab, 2)
    ec2 = lab.emulator.boto3_client("ec2")
    iid = lab.instance_id(2)
    ec2.stop_instances(InstanceIds=[iid])
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[iid], WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    ec2.start_instances(InstanceIds=[iid])
    ec2.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    # A new address (as EC2 gives): the handout written again has it, with the same ports and token.
    again = mxlab(lab, "handout", "--attendee", "2", "--out", out, "--force")
    assert again.returncode == 0, again.stdout + again.stderr
    assert local_forward(out / "attendee-2") == before
    assert token_of(lab, 2) == token and token in (out / "attendee-2" / "README.txt").read_text()
    home = tmp_path / "attendee-home"
    home.mkdir()
    tunnel = Tunnel(out / "attendee-2", "attendee-2", home)
    try:
        deadline = time.monotonic() + 120
        while True:  # the instance's start runs the enabled unit: JupyterLab comes up on its own
            try:
                status, body = get("http://127.0.0.1:%d/api/contents" % tunnel.port, token=token)
            except OSError:
                status = None
            if status == 200:
                break
            assert time.monotonic() < deadline, "JupyterLab did not come back after the start"
            time.sleep(1)
        assert "mxnet-lab.ipynb" in body
    finally:
        tunnel.close()
