"""`mxlab handout`: what each attendee needs to reach their host, one folder each, and the organiser's page.

DIR/attendee-N/ (0700): attendee-N.pem (the private key, 0600), known_hosts (the instance's pinned host
keys, under its instance id), ssh_config (Host attendee-N: HostName, User, Port, IdentityFile,
UserKnownHostsFile, StrictHostKeyChecking yes, HostKeyAlias), index.html and README.txt (how to connect
from macOS/Linux/Windows OpenSSH, how to activate the environment, the workshop's steps).
Where the host serves JupyterLab (`mxlab prepare`), ssh_config also forwards a local port of the attendee's
(notebook_ports.py) to it, and the pages give the URL with the attendee's token, read from the host: the
token is in that attendee's folder only (README.txt and index.html there are 0600), never printed.
DIR/index.html: one row per attendee (host, state, readiness from the last `mxlab prepare`), linking the
attendee pages. Key material is copied file to file and never printed; no page or text holds it.

ssh_config names the key and known_hosts by absolute path: OpenSSH resolves a relative IdentityFile
against the current directory (not the config file's), and its tokens (ssh_config(5) TOKENS) have none
for the config file's own folder. The README says which two lines to edit after moving the folder, and
gives a one-line command that works from inside the folder anywhere.
"""
import html
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from mxlab.hosts import hostkeys, keys, readiness, ssh_options
from mxlab.hosts.backoff import READY_TIMEOUT
from mxlab.workshop import notebook_ports, notebook_server, prepare, workspace
from mxlab.atomic import write_atomic
from mxlab.errors import MxlabError, UsageError
from mxlab import status_codes

log = logging.getLogger(__name__)


@dataclass
class Sheet:
    """What one attendee's folder says: where their host is, how it is trusted, how ready it is."""

    label: str
    attendee: int
    instance_id: str
    host: Optional[str]
    port: int
    user: str
    identity: Path  # the operator's copy of the private key
    state: str = "unknown"
    pinned: List[str] = field(default_factory=list)  # known_hosts lines under the instance id
    readiness: Optional[dict] = None  # the host's entry in prepare.json
    error: Optional[str] = None  # why the folder could not be written
    notebook_port: Optional[int] = None  # the local end of the tunnel (LocalForward)
    notebook_remote_port: Optional[int] = None  # JupyterLab's port on the host's 127.0.0.1
    notebook_token: Optional[str] = field(default=None, repr=False)  # only ever written into the folder
    notebook_error: Optional[str] = None

    @property
    def notebook_url(self):
        return "http://127.0.0.1:%d/lab?token=%s" % (self.notebook_port, self.notebook_token)

    @property
    def key_name(self):
        return "%s.pem" % self.label


def pinned_lines(known_hosts, alias):
    """The `alias type base64` lines pinned for `alias` in an OpenSSH known_hosts file."""
    if not known_hosts.is_file():
        return []
    found = []
    for line in known_hosts.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and alias in parts[0].split(","):
            found.append("%s %s %s" % (alias, parts[1], parts[2]))
    return found


def fingerprints(lines):
    out = []
    for line in lines:
        _, kind, b64 = line.split()[:3]
        out.append(hostkeys._fingerprint_b64(kind, b64))
    return out


def collect(targets, stack, timeout=READY_TIMEOUT, start=False):
    """A Sheet per lab target: its key (from SSM if not here yet), live state and address (a stopped
    instance has none: `start` starts it), pinned keys (from the console when not pinned yet, as
    `mxlab prepare` would), its last readiness."""
    ready_by_host = prepare.load_readiness(stack)
    sheets = []
    for t in targets:
        if not t.instance_id:
            raise UsageError("%s: not a lab instance (handout is for the lab's attendees)" % t.label)
        outputs_host = t.host
        sheet = Sheet(label=t.label, attendee=t.attendee, instance_id=t.instance_id, host=t.host, port=t.port,
                      user=t.user, identity=t.identity, readiness=ready_by_host.get(t.label))
        try:
            keys.ensure_key(t)
            if start:
                readiness.ensure_running(t, timeout, start=True)
            try:
                sheet.state = readiness.refresh(t)
                # A stopped instance gets a new address when it starts: the stack's old one would mislead.
                sheet.host = None if sheet.state in readiness.STOPPED else t.host or outputs_host
            except Exception as exc:  # the folder still helps: the stack's address and the pinned keys
                sheet.state = "unknown (%s)" % type(exc).__name__
            alias = hostkeys.alias(t)
            sheet.pinned = pinned_lines(t.known_hosts, alias)
            if not sheet.pinned and sheet.state == "running":
                hostkeys.pin_from_console(t, timeout)
                sheet.pinned = pinned_lines(t.known_hosts, alias)
            if not sheet.pinned:
                raise MxlabError("%s: no host keys pinned for %s in %s (instance %s): run `mxlab prepare` "
                                 "(or `mxlab hosts`/`mxlab ssh`) while it runs, then handout again"
                                 % (t.label, alias, t.known_hosts, sheet.state))
            if (sheet.readiness or {}).get("notebook") and sheet.state == "running":
                read_notebook_access(t, sheet, timeout)
        except MxlabError as exc:
            sheet.error = str(exc)
        sheets.append(sheet)
    return sheets


def read_notebook_access(target, sheet, timeout):
    """The host's JupyterLab port and token, over SSH (pinned keys): a failure is said, the folder written."""
    from mxlab.remote.run import CONNECTION_ERRORS
    from mxlab.hosts.session import Session

    try:
        with Session(target, timeout=timeout) as session:
            session.connect(wait_cloud_init=False)
            sheet.notebook_remote_port, sheet.notebook_token = notebook_server.NotebookServer(session).access()
        if not sheet.notebook_token:
            sheet.notebook_error = "the host has no notebook token: run `mxlab prepare` again"
    except MxlabError as exc:
        sheet.notebook_error = str(exc)
    except CONNECTION_ERRORS as exc:
        sheet.notebook_error = "connection failed: %s" % (exc or type(exc).__name__)


# ---- the files --------------------------------------------------------------------------------

def ssh_config_path(path):
    """`path` as one ssh_config argument: double-quoted with its backslashes and quotes escaped, and '%' doubled
    (IdentityFile and UserKnownHostsFile expand %-tokens), so a folder named `hand "out" 100%` still works."""
    text = str(path)
    if "\n" in text or "\r" in text:
        raise UsageError("--out %r: a folder whose path has a line break cannot be named in ssh_config" % text)
    return '"%s"' % text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")


def ssh_config_text(sheet, folder):
    folder = Path(folder).resolve()
    lines = [
        "# %s's lab host (instance %s), written by `mxlab handout` %s." % (
            sheet.label, sheet.instance_id, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())),
        "# Connect: ssh -F ssh_config %s   (from this folder)" % sheet.label,
        "# IdentityFile and UserKnownHostsFile are this folder's absolute path: if you move the folder,",
        "# change those two lines to its new place (README.txt says more).",
        "Host %s" % sheet.label,
        "    HostName %s" % (sheet.host or "UNKNOWN-the-instance-is-stopped"),
        "    User %s" % sheet.user,
    ]
    options = ssh_options.pinned(folder / sheet.key_name, folder / "known_hosts", sheet.instance_id, _port(sheet),
                                 extra=[("CheckHostIP", "no"), ("UpdateHostKeys", "no"), ("ServerAliveInterval", "30")])
    # The keys are pinned under the instance id (HostKeyAlias): a restarted instance has a new address, the same keys.
    lines += ["    %s %s" % (k, ssh_config_path(v) if k in ssh_options.PATH_OPTIONS else v) for k, v in options]
    if sheet.notebook_token:
        lines += ["    # JupyterLab on the host: open %s while this connection is open"
                  % sheet.notebook_url.split("?")[0],
                  "    LocalForward 127.0.0.1:%d 127.0.0.1:%d" % (sheet.notebook_port, sheet.notebook_remote_port)]
    return "\n".join(lines) + "\n"


def one_line_command(sheet):
    """The connection without ssh_config, with paths relative to the folder (run from inside it)."""
    options = ssh_options.pinned(sheet.key_name, "known_hosts", sheet.instance_id, _port(sheet))
    return " ".join(["ssh"] + ssh_options.as_argv(options) + ["%s@%s" % (sheet.user, sheet.host or "ADDRESS")])


def _port(sheet):
    return sheet.port if sheet.port != 22 else None  # ssh's own: the handout names no port it does not need


def _steps(sheet):
    """(activation command, workspace python steps or None) from the host's last `prepare`."""
    ready = sheet.readiness or {}
    activate = ready.get("activate")
    steps = None
    if ready.get("workspace") and ready.get("workspace_models"):
        # The same steps as the host's ~/mxnet-lab/README.md (its first model).
        steps = workspace.python_steps(ready["workspace_models"][0])
    return activate, steps


def _notebook_text(sheet):
    if not sheet.notebook_token:
        return ""
    return """
Your notebook (JupyterLab, with the workshop as mxnet-lab.ipynb)
---------------------------------------------------------------
Keep this connection open (it carries the notebook; nothing else is opened to the internet):
    ssh -F ssh_config {label}
then open in your browser:
    {url}
The address holds your own password (the token): do not share it.
""".format(label=sheet.label, url=sheet.notebook_url)


def readme_text(sheet, folder):
    activate, steps = _steps(sheet)
    parts = [_connect_text(sheet, folder), _environment_text(activate)]
    if steps:
        parts.append(_workshop_text(steps))
    return "\n".join(parts)


def _connect_text(sheet, folder):
    """Part 1 of the README: the host, its pinned keys, the folder's files and how to connect."""
    fps = "\n".join("    %s" % f for f in fingerprints(sheet.pinned))
    return """MXNet lab: how to reach your host ({label})
==========================================

Your host: {host}, user {user}{port}, instance {iid}.
Its SSH host key(s), pinned in known_hosts (ssh checks them for you):
{fps}

Files in this folder:
    {key}     your private key: keep it to yourself
    known_hosts          your host's pinned key(s)
    ssh_config           the connection settings ("Host {label}")
    index.html           this text as a page

1. Connect
----------
macOS and Linux (Terminal), from this folder:
    chmod 600 {key}
    ssh -F ssh_config {label}

Windows 10/11 (PowerShell; the OpenSSH client is built in), from this folder:
    icacls {key} /inheritance:r /grant:r "$($env:USERNAME):(R)"
    ssh -F ssh_config {label}

ssh_config names {key} and known_hosts by their full path in the folder
{folder}
If you moved or copied this folder (to another computer, or to Windows), either change the
IdentityFile and UserKnownHostsFile lines of ssh_config to the folder's new place, or connect
with this command from inside the folder (it needs no ssh_config):
    {one_line}

ssh refuses to connect if the host's key is not the pinned one ("REMOTE HOST IDENTIFICATION
HAS CHANGED" / "Host key verification failed"): tell the organiser, do not work around it.
{notebook}""".format(notebook=_notebook_text(sheet), label=sheet.label,
           host=sheet.host or "(stopped: ask the organiser)", user=sheet.user,
           port=", port %d" % sheet.port if sheet.port != 22 else "", iid=sheet.instance_id, fps=fps,
           key=sheet.key_name, folder=Path(folder).resolve(), one_line=one_line_command(sheet))


def _environment_text(activate):
    """Part 2: how to activate the MXNet environment, or that the host is not prepared yet."""
    if activate:
        return """2. Activate the MXNet environment (on the host)
-----------------------------------------------
    {activate}
""".format(activate=activate)
    return """2. Activate the MXNet environment (on the host)
-----------------------------------------------
    The organiser has not prepared this host yet (`mxlab prepare`): ask them which environment to use.
"""


def _workshop_text(steps):
    """Part 3: the workshop's steps, to type into Python on the host."""
    return """3. The workshop (on the host)
-----------------------------
    cd ~/{ws}        (README.md there says the same)
    python           then type these steps:

{steps}""".format(ws=workspace.WORKSPACE_DIR, steps="".join("    " + line + "\n" for line in steps.splitlines()))


_CSS = """body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:62rem;margin:2rem auto;
padding:0 1rem;color:#1d2329;line-height:1.45}pre{background:#f3f5f7;padding:.8rem;overflow-x:auto;
border-radius:4px}code{background:#f3f5f7;padding:0 .2rem}table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #d9dee3;padding:.35rem .5rem;text-align:left;vertical-align:top}
td code{white-space:nowrap}.ok{color:#1a7f37;font-weight:600}.bad{color:#b42318;font-weight:600}.muted{color:#57606a}"""


def _page(title, body):
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
            "<title>%s</title><style>%s</style></head><body>\n%s\n</body></html>\n"
            % (html.escape(title), _CSS, body))


def _pre(text):
    return "<pre><code>%s</code></pre>" % html.escape(text)


def attendee_page(sheet, folder):
    e = html.escape
    activate, steps = _steps(sheet)
    body = ["<h1>MXNet lab: %s</h1>" % e(sheet.label),
            "<p>Your host: <code>%s</code>, user <code>%s</code>%s, instance <code>%s</code>.</p>" % (
                e(sheet.host or "stopped: ask the organiser"), e(sheet.user),
                ", port <code>%d</code>" % sheet.port if sheet.port != 22 else "", e(sheet.instance_id)),
            "<p>Its SSH host key(s), pinned in <a href=\"known_hosts\">known_hosts</a> (ssh checks them):</p>",
            _pre("\n".join(fingerprints(sheet.pinned))),
            "<h2>1. Connect</h2>",
            "<h3>macOS and Linux (Terminal), from this folder</h3>",
            _pre("chmod 600 %s\nssh -F ssh_config %s" % (sheet.key_name, sheet.label)),
            "<h3>Windows 10/11 (PowerShell, the built-in OpenSSH client), from this folder</h3>",
            _pre('icacls %s /inheritance:r /grant:r "$($env:USERNAME):(R)"\nssh -F ssh_config %s'
                 % (sheet.key_name, sheet.label)),
            "<p><a href=\"ssh_config\">ssh_config</a> names your key and known_hosts by their full path in "
            "<code>%s</code>. If you moved or copied this folder, change its <code>IdentityFile</code> and "
            "<code>UserKnownHostsFile</code> lines to the new place, or connect from inside the folder with:</p>"
            % e(str(Path(folder).resolve())),
            _pre(one_line_command(sheet)),
            "<p class=\"muted\">ssh refuses a host whose key is not the pinned one (&ldquo;Host key "
            "verification failed&rdquo;): tell the organiser, do not work around it.</p>"]
    if sheet.notebook_token:
        body += ["<h2>Your notebook (JupyterLab)</h2>",
                 "<p>Keep this connection open: it carries the notebook (nothing else is open to the internet).</p>",
                 _pre("ssh -F ssh_config %s" % sheet.label),
                 "<p>then open <a href=\"%s\">%s</a> (the workshop is <code>mxnet-lab.ipynb</code>). The "
                 "address holds your own password, the token: do not share it.</p>"
                 % (e(sheet.notebook_url), e(sheet.notebook_url))]
    body.append("<h2>2. Activate the MXNet environment (on the host)</h2>")
    body.append(_pre(activate) if activate else
                "<p>The organiser has not prepared this host yet: ask them which environment to use.</p>")
    if steps:
        body += ["<h2>3. The workshop (on the host)</h2>",
                 _pre("cd ~/%s    # README.md there says the same\npython" % workspace.WORKSPACE_DIR),
                 "<p>then type these steps:</p>", _pre(steps)]
    body.append("<p class=\"muted\">Also as <a href=\"README.txt\">README.txt</a>.</p>")
    return _page("MXNet lab: %s" % sheet.label, "\n".join(body))


def organiser_page(sheets, stack):
    e = html.escape
    rows = []
    for s in sheets:
        ready = s.readiness or {}
        if s.error:
            verdict = "<span class=\"bad\">no handout: %s</span>" % e(s.error)
        elif not ready:
            verdict = "<span class=\"muted\">not prepared</span>"
        elif ready.get("ready"):
            verdict = "<span class=\"ok\">ready</span>"
        else:
            verdict = "<span class=\"bad\">NOT READY</span>: %s" % e(ready.get("error") or "")
        smoke = ", ".join("%s: %s" % (m, t) for m, t in sorted((ready.get("smoke") or {}).items()))
        if s.notebook_token:
            notebook = "local port %d" % s.notebook_port
        else:
            notebook = s.notebook_error or ("-" if not ready.get("notebook") else "not read")
        link = ("<a href=\"%s/index.html\">%s</a>" % (e(s.label), e(s.label)) if not s.error else e(s.label))
        rows.append("<tr><td>%s</td><td><code>%s</code></td><td>%s</td><td>%s</td><td>%s</td><td>%s</td>"
                    "<td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>" % (
                        link, e(s.instance_id), e(s.host or "-") + (":%d" % s.port if s.port != 22 else ""),
                        e(s.state), verdict, e(ready.get("environment") or "-"),
                        e(", ".join(ready.get("models") or []) or "-"), e(smoke or "-"),
                        e(notebook), e(ready.get("prepared_at") or "-")))
    body = ["<h1>MXNet lab %s: attendees</h1>" % e(stack),
            "<p>Each attendee's folder holds their private key: give each folder (zip it) to that attendee "
            "only. Readiness is from the last <code>mxlab prepare</code>; state is as of this handout (%s).</p>"
            % e(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())),
            "<table><thead><tr><th>attendee</th><th>instance</th><th>address</th><th>state</th><th>readiness</th>"
            "<th>environment</th><th>models cached</th><th>smoke top-1</th><th>notebook</th><th>prepared</th>"
            "</tr></thead>"
            "<tbody>%s</tbody></table>" % "\n".join(rows)]
    return _page("MXNet lab %s: attendees" % stack, "\n".join(body))


# ---- writing ----------------------------------------------------------------------------------

def check_out_dir(out_dir, force):
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError("--out %s: exists and is not a folder" % out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise UsageError("--out %s: the folder is not empty (it may hold an earlier handout's keys); choose an "
                         "empty or new folder, or --force to write into it" % out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def write_attendee(sheet, out_dir):
    folder = Path(out_dir) / sheet.label
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        folder.unlink()  # a link planted where the folder goes must not carry the key elsewhere
    folder.mkdir(mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    key = folder / sheet.key_name
    if os.path.lexists(str(key)):  # also a (dangling) link: the key is written afresh, here
        key.unlink()
    # Byte for byte, 0600 from its creation; never read into a string that could be printed.
    fd = os.open(str(key), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as dst, open(sheet.identity, "rb") as src:
        shutil.copyfileobj(src, dst)
    os.chmod(key, 0o600)
    write_atomic(folder / "known_hosts", "\n".join(sheet.pinned) + "\n", mode=0o644)
    write_atomic(folder / "ssh_config", ssh_config_text(sheet, folder), mode=0o644)
    private = 0o600 if sheet.notebook_token else 0o644  # the notebook's token is in them
    write_atomic(folder / "README.txt", readme_text(sheet, folder), mode=private)
    write_atomic(folder / "index.html", attendee_page(sheet, folder), mode=private)
    return folder


def write(sheets, stack, out_dir):
    """Each attendee's folder (for sheets without an error) and DIR/index.html."""
    for sheet in sheets:
        if not sheet.error:
            write_attendee(sheet, out_dir)
    page = Path(out_dir) / "index.html"
    write_atomic(page, organiser_page(sheets, stack), mode=0o644)
    return page


def make(targets, stack, out_dir, force=False, timeout=READY_TIMEOUT, start=False, out=None, err=None):
    """`mxlab handout`: returns the exit status (1 when an attendee's folder could not be written)."""
    out_dir = check_out_dir(out_dir, force)
    sheets = collect(targets, stack, timeout, start)
    say = lambda message: err.print("mxlab: " + message, markup=False, highlight=False, soft_wrap=True)  # noqa: E731
    with_notebook = [s for s in sheets if s.notebook_token and not s.error]
    ports = notebook_ports.assign(stack, [(s.label, s.attendee) for s in with_notebook], say)
    for s in with_notebook:
        s.notebook_port = ports[s.label]
    page = write(sheets, stack, out_dir)
    for s in sheets:
        if s.error:
            err.print("mxlab: %s: no handout: %s" % (s.label, s.error), markup=False, highlight=False,
                      soft_wrap=True)
        else:
            if not s.host:
                err.print("mxlab: %s: instance %s is %s, so its folder has no address: start it (e.g. `mxlab "
                          "handout --start --all --out DIR --force`) and write the handout again"
                          % (s.label, s.instance_id, s.state), markup=False, highlight=False, soft_wrap=True)
            if s.notebook_error:
                say("%s: no notebook in the handout: %s" % (s.label, s.notebook_error))
            ready = (s.readiness or {}).get("ready")
            out.print("%s: %s (%s, %s%s)" % (s.label, Path(out_dir) / s.label, s.state,
                                             "ready" if ready else "not ready" if s.readiness else "not prepared",
                                             ", notebook on local port %d" % s.notebook_port
                                             if s.notebook_token else ""),
                      markup=False, highlight=False, soft_wrap=True)
    out.print("organiser's page: %s" % page, markup=False, highlight=False, soft_wrap=True)
    return status_codes.FAILED if any(s.error for s in sheets) else status_codes.SUCCESS
