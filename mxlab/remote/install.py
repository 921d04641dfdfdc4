"""Upload agent/ to the host over SFTP, skipping files whose sha256 already matches."""
import hashlib
import logging
import posixpath
import shlex
from pathlib import Path

from agent.contract import AGENT_DIR as REMOTE_AGENT_DIR, PACKAGE_DIR, REMOTE_ROOT

log = logging.getLogger(__name__)

AGENT_DIR = Path(PACKAGE_DIR)


def local_files(agent_dir=AGENT_DIR):
    """{relative posix path: sha256} of the agent's source and data files."""
    agent_dir = Path(agent_dir)
    files = {}
    for path in sorted(agent_dir.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
            continue
        rel = path.relative_to(agent_dir).as_posix()
        files[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def remote_hashes(session, remote_agent):
    rc, out, _ = session.exec("cd %s 2>/dev/null && find . -type f ! -name '*.pyc' -print0 | "
                              "xargs -0 -r sha256sum" % shlex.quote(remote_agent))
    hashes = {}
    if rc != 0:
        return hashes
    for line in out.splitlines():
        digest, _, name = line.partition("  ")
        if name:
            hashes[name[2:] if name.startswith("./") else name] = digest
    return hashes


def _makedirs(sftp, path, made):
    if path in made or path in ("", "/"):
        return
    _makedirs(sftp, posixpath.dirname(path), made)
    try:
        sftp.stat(path)
    except IOError:
        sftp.mkdir(path)
    made.add(path)


def plan_upload(wanted, have):
    """(to upload, unchanged, stale) relative paths, from {path: sha256} here and on the host."""
    upload = [rel for rel, digest in wanted.items() if have.get(rel) != digest]
    unchanged = [rel for rel, digest in wanted.items() if have.get(rel) == digest]
    stale = [rel for rel in have if rel not in wanted]
    return upload, unchanged, stale


def upload_agent(session, agent_dir=AGENT_DIR, remote_root=REMOTE_ROOT):
    """Bring <home>/<remote_root>/agent in line with agent_dir. Returns (uploaded, skipped, removed)."""
    agent_dir = Path(agent_dir)
    sftp = session.sftp()
    home = session.home()
    remote_agent = posixpath.join(home, remote_root, REMOTE_AGENT_DIR)
    wanted = local_files(agent_dir)
    have = remote_hashes(session, remote_agent)
    made = set()
    _makedirs(sftp, remote_agent, made)
    uploaded, skipped, removed = plan_upload(wanted, have)
    for rel in uploaded:
        dest = posixpath.join(remote_agent, rel)
        _makedirs(sftp, posixpath.dirname(dest), made)
        # Upload beside, then rename: an interrupted upload never leaves a half file in place.
        sftp.put(str(agent_dir / rel), dest + ".part")
        sftp.posix_rename(dest + ".part", dest)
    for rel in removed:
        sftp.remove(posixpath.join(remote_agent, rel))
    log.info("%s: agent uploaded %d file(s), %d unchanged, %d stale removed",
             session.target.label, len(uploaded), len(skipped), len(removed))
    return uploaded, skipped, removed
