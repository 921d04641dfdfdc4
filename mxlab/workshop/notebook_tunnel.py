"""`mxlab notebook --attendee N`: the organiser's own way into an attendee's JupyterLab.

Opens the same tunnel as the attendee's handout (the system ssh client, pinned host key, a free local
port), starting the host's server again if it died, and says where to open it. The URL holds the attendee's
token, so it is not printed: it goes into a 0600 page under ~/.mxlab/<stack>/ that forwards the browser to
it, and that page's path is what is printed. Stays until Ctrl-C, then closes the tunnel.
"""
import html
import subprocess

from mxlab import status_codes
from mxlab.hosts import readiness
from mxlab.lab import statedir
from mxlab.workshop import notebook_ports, notebook_server
from mxlab.atomic import write_atomic
from mxlab.errors import MxlabError
from mxlab.hosts.session import Session


def free_local_port():
    port = notebook_ports.BASE + 500
    while notebook_ports.in_use(port):
        port += 1
    return port


def open_page(stack, label, url):
    """~/.mxlab/<stack>/notebook-<label>.html (0600): forwards to the URL with the token."""
    path = statedir.stack_dir(stack) / ("notebook-%s.html" % label)
    write_atomic(path, "<!DOCTYPE html><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"0; url=%s\">"
                       "<title>%s's notebook</title><a href=\"%s\">%s's JupyterLab</a>\n"
                 % (html.escape(url), html.escape(label), html.escape(url), html.escape(label)), mode=0o600)
    return path


def run(target, stack, ssh_argv, timeout, start, out, err):
    readiness.ready(target, timeout, start=start)
    with Session(target, timeout=timeout) as session:
        session.connect(wait_cloud_init=False)
        access = notebook_server.ensure_running(
            session, say=lambda m: err.print("mxlab: " + m, markup=False, highlight=False, soft_wrap=True))
    if access is None:
        raise MxlabError("%s: no JupyterLab on the host: run `mxlab prepare` (without --no-notebook) first"
                         % target.label)
    remote_port, token = access
    local = free_local_port()
    argv = ssh_argv(target, [])
    argv[1:1] = ["-N", "-o", "ExitOnForwardFailure=yes", "-o", "ServerAliveInterval=30",
                 "-L", "127.0.0.1:%d:127.0.0.1:%d" % (local, remote_port)]
    proc = subprocess.Popen(argv)
    page = open_page(stack, target.label, "http://127.0.0.1:%d/lab?token=%s" % (local, token))
    out.print("%s's JupyterLab: http://127.0.0.1:%d/lab (the token is in the attendee's handout)" % (target.label,
                                                                                                   local),
              markup=False, highlight=False, soft_wrap=True)
    out.print("open %s (0600: it holds the token and opens the notebook); Ctrl-C closes the tunnel" % page,
              markup=False, highlight=False, soft_wrap=True)
    try:
        rc = proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(10)
        return status_codes.SUCCESS
    raise MxlabError("%s: the tunnel ended (ssh exit %d)" % (target.label, rc))
