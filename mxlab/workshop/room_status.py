"""`mxlab status`: the room at a glance, one row per attendee.

Per host, one SSH command (a small Python 3 script on stdin) answers everything: whether its JupyterLab
answers (asked on the host with its token, which never leaves it) and its last activity, how far the
attendee is in mxnet-lab.ipynb (code cells executed of total, from the saved notebook: JupyterLab saves
it on every run and autosaves every 2 minutes), the last exception their kernel showed in it, and how many
of the workspace's models are in the cache. Hosts are read in parallel; the instance states come from one
DescribeInstances. `--watch` refreshes in place (rich Live) every --every seconds, keeping each host's
connection open; `--html FILE` writes the same as a self-contained page (it reloads itself while
--watch runs).
"""
import html
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional

from rich.markup import escape
from rich.table import Table

from mxlab import status_codes
from mxlab.atomic import write_atomic
from mxlab.remote.run import CONNECTION_ERRORS
from mxlab.hosts import readiness
from mxlab.hosts.session import Session
from mxlab.errors import MxlabError

_PROBE = r"""
import glob, json, os
home = os.environ.get('HOME') or os.path.expanduser('~')
jdir = os.path.join(home, '.mxlab-agent', 'jupyter')
out = {}
try:
    port = open(os.path.join(jdir, 'port')).read().strip()
    token = open(os.path.join(jdir, 'token')).read().strip()
except (IOError, OSError):
    out['server'] = None
else:
    try:
        from urllib.request import Request, urlopen
        req = Request('http://127.0.0.1:%s/api/status' % port, headers={'Authorization': 'token ' + token})
        st = json.loads(urlopen(req, timeout=3).read().decode('utf-8'))
        out['server'] = {'up': True, 'last_activity': st.get('last_activity'), 'kernels': st.get('kernels')}
    except Exception as exc:
        out['server'] = {'up': False, 'why': type(exc).__name__}
ws = os.path.join(home, 'mxnet-lab')
path = os.path.join(ws, 'mxnet-lab.ipynb')
try:
    nb = json.load(open(path))
    code = [c for c in nb.get('cells', []) if c.get('cell_type') == 'code']
    names = [o.get('ename') for c in code for o in (c.get('outputs') or []) if o.get('output_type') == 'error']
    out['cells'] = [sum(1 for c in code if c.get('execution_count')), len(code)]
    out['exception'] = names[-1] if names else None
    out['saved'] = os.path.getmtime(path)
except Exception as exc:
    out['cells'] = None
    out['notebook_problem'] = 'none yet' if not os.path.exists(path) else 'unreadable (%s)' % type(exc).__name__
params = glob.glob(os.path.join(ws, '*-0000.params'))
out['models'] = [sum(1 for p in params if os.path.exists(p)), len(params)]
print(json.dumps(out))
"""


@dataclass
class Row:
    label: str
    attendee: Optional[int]
    state: str = "unknown"
    ssh: Optional[str] = None  # "yes", or why not
    server: Optional[dict] = None
    cells: Optional[list] = None
    exception: Optional[str] = None
    models: Optional[list] = None
    notebook_problem: Optional[str] = None
    saved: Optional[float] = None

    @property
    def notebook(self):
        if self.ssh != "yes":
            return "-"
        if self.server is None:
            return "not set up"
        return "up" if self.server.get("up") else "DOWN (%s)" % self.server.get("why")

    @property
    def progress(self):
        if self.cells:
            return "%d/%d" % tuple(self.cells)
        return self.notebook_problem or "-"

    @property
    def activity(self):
        last = (self.server or {}).get("last_activity")
        return last[:19].replace("T", " ") + " UTC" if last else "-"

    @property
    def models_cached(self):
        return "%d/%d" % tuple(self.models) if self.models else "-"


class Room:
    """The lab's attendee targets, their sessions kept between refreshes."""

    def __init__(self, targets, timeout=30):
        self.targets = list(targets)
        self.timeout = timeout
        self.sessions = {}

    def states(self):
        """{label: (state, public address)} from one DescribeInstances for the room (readiness.refresh_all),
        not one call per attendee at every refresh."""
        from mxlab.hosts import readiness
        lab = [t for t in self.targets if t.instance_id]
        try:
            readiness.refresh_all(lab)
        except Exception as exc:  # a status page must not fail because AWS hiccuped
            return {t.label: ("unknown (%s)" % type(exc).__name__, None) for t in self.targets}
        return {t.label: (t.state or "unknown", t.host) if t.instance_id else ("unknown", None)
                for t in self.targets}

    def _probe(self, target, state):
        row = Row(label=target.label, attendee=target.attendee, state=state)
        if state != "running":
            return row
        session = self.sessions.get(target.label)
        try:
            if session is None or session.client is None:
                # The run path (readiness.reach): the attendee's key from SSM and the host keys pinned
                # where nothing has done it yet, the remembered address first.
                session = Session(target, timeout=self.timeout)
                readiness.reach(target, session, self.timeout)
                self.sessions[target.label] = session
            rc, out, err = session.exec("python3 -", timeout=self.timeout, stdin_data=_PROBE)
            if rc != 0:
                row.ssh = "yes"
                row.notebook_problem = "probe failed: %s" % (err.strip().splitlines() or ["exit %d" % rc])[-1][:80]
                return row
            facts = json.loads(out.strip().splitlines()[-1])
        except (MxlabError, ValueError, IndexError) + tuple(CONNECTION_ERRORS) as exc:
            if session is not None:
                session.close()
            self.sessions.pop(target.label, None)
            row.ssh = "no (%s)" % (str(exc).splitlines()[0][:60] if str(exc) else type(exc).__name__)
            return row
        row.ssh = "yes"
        row.server = facts.get("server")
        row.cells = facts.get("cells")
        row.exception = facts.get("exception")
        row.models = facts.get("models")
        row.notebook_problem = facts.get("notebook_problem")
        row.saved = facts.get("saved")
        return row

    def rows(self):
        states = self.states()
        for t in self.targets:
            state, address = states[t.label]
            if address:
                t.host = address
        with ThreadPoolExecutor(max_workers=max(1, min(32, len(self.targets)))) as pool:
            return list(pool.map(lambda t: self._probe(t, states[t.label][0]), self.targets))

    def close(self):
        for session in self.sessions.values():
            session.close()
        self.sessions.clear()


COLUMNS = ("attendee", "state", "SSH", "notebook", "cells run", "last activity", "models", "last exception")


def cells(row):
    return (row.label, row.state, row.ssh or "-", row.notebook, row.progress, row.activity, row.models_cached,
            row.exception or "-")


def table(rows, title):
    t = Table(title=title)
    for col in COLUMNS:
        t.add_column(col)
    for row in rows:
        values = [escape(v) for v in cells(row)]
        if row.exception:
            values[-1] = "[bold red]%s[/]" % values[-1]
        if row.notebook.startswith("DOWN") or row.ssh not in (None, "yes"):
            values[3 if row.notebook.startswith("DOWN") else 2] = "[bold red]%s[/]" % values[
                3 if row.notebook.startswith("DOWN") else 2]
        t.add_row(*values)
    return t


def page(rows, title, refresh_s=None):
    """A self-contained page (no scripts, nothing fetched); `refresh_s`: it reloads itself that often."""
    e = html.escape
    body = "".join("<tr>%s</tr>" % "".join("<td%s>%s</td>" % (
        " class=\"bad\"" if (i == 7 and row.exception) or (i == 3 and row.notebook.startswith("DOWN")) else "",
        e(v)) for i, v in enumerate(cells(row))) for row in rows)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
            "%s<title>%s</title><style>body{font-family:system-ui,sans-serif;margin:2rem}table{border-collapse:"
            "collapse}th,td{border-bottom:1px solid #d9dee3;padding:.3rem .6rem;text-align:left}"
            ".bad{color:#b42318;font-weight:600}</style></head><body><h1>%s</h1><p>as of %s</p><table><thead><tr>%s"
            "</tr></thead><tbody>%s</tbody></table></body></html>\n"
            % ("<meta http-equiv=\"refresh\" content=\"%d\">" % refresh_s if refresh_s else "", e(title), e(title),
               e(time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())), "".join("<th>%s</th>" % e(c)
                                                                                 for c in COLUMNS), body))


def show(targets, stack, out, watch=False, every=5.0, html_file=None, timeout=30):
    room = Room(targets, timeout)
    title = "%s: the room" % stack
    try:
        if not watch:
            rows = room.rows()
            out.print(table(rows, title))
            if html_file:
                write_atomic(html_file, page(rows, title), mode=0o644)
            return status_codes.SUCCESS
        from rich.live import Live
        rows = room.rows()
        with Live(table(rows, title), console=out, auto_refresh=False) as live:
            try:
                while True:
                    if html_file:
                        write_atomic(html_file, page(rows, title, refresh_s=max(1, int(every))), mode=0o644)
                    live.update(table(rows, title), refresh=True)
                    time.sleep(every)
                    rows = room.rows()
            except KeyboardInterrupt:
                pass
        if html_file:  # the last page, no longer reloading
            write_atomic(html_file, page(rows, title), mode=0o644)
        return status_codes.SUCCESS
    finally:
        room.close()
