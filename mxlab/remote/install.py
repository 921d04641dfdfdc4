"""Upload agent/ to the host over SFTP, skipping files whose sha256 already matches.

Each round trip counts across a far network, so one command makes the folders (mkdir -p) and hashes what is
there; SFTP is opened only when a file differs. Paths are relative to the login's home, where both the command
and the SFTP server start, so nothing asks the host where its home is.
"""
import hashlib
import logging
import posixpath
import shlex
from pathlib import Path

from agent.contract import AGENT_DIR as REMOTE_AGENT_DIR, PACKAGE_DIR, REMOTE_ROOT

log = logging.getLogger(__name__)

AGENT_DIR = Path(PACKAGE_DIR)
_FIND = "find . -type f ! -name '*.pyc' -print0"  # the host's files that local_files' count (NUL-separated)


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


def hash_command(agent_dir=AGENT_DIR, remote_root=REMOTE_ROOT):
    """The command that makes the agent's folders on the host (mkdir -p) and prints the sha256sum lines of the
    files there (parse_hashes reads them; other lines may come before, none after)."""
    remote_agent = posixpath.join(remote_root, REMOTE_AGENT_DIR)
    dirs = {posixpath.dirname(rel) for rel in local_files(agent_dir)} - {""}
    made = " ".join(shlex.quote(posixpath.join(remote_agent, d)) for d in [""] + sorted(dirs))
    # In a subshell: the cd leaves whatever runs after it where it was.
    return "( mkdir -p %s && cd %s && %s | xargs -0 -r sha256sum )" % (made, shlex.quote(remote_agent), _FIND)


def digest_command(remote_root=REMOTE_ROOT):
    """The command that prints one digest of the agent's files on the host, as digest() prints it of the local
    ones when they are the same files with the same contents: one line, instead of a line per file."""
    remote_agent = shlex.quote(posixpath.join(remote_root, REMOTE_AGENT_DIR))
    return "( cd %s && %s | LC_ALL=C sort -z | xargs -0 -r sha256sum ) 2>/dev/null | sha256sum" % (remote_agent,
                                                                                                 _FIND)


def digest(agent_dir=AGENT_DIR):
    """digest_command's output for these files: sha256sum's lines sorted by path (bytewise, as LC_ALL=C sort)."""
    files = sorted((("./" + rel).encode("utf-8"), sha) for rel, sha in local_files(agent_dir).items())
    lines = b"".join(b"%s  %s\n" % (sha.encode("ascii"), path) for path, sha in files)
    return hashlib.sha256(lines).hexdigest() + "  -"


def parse_hashes(rc, out):
    """{relative path: sha256} from hash_command's exit code and output ({} when it failed: upload all)."""
    hashes = {}
    if rc != 0:
        return hashes
    for line in out.splitlines():
        digest, _, name = line.partition("  ")
        if name and len(digest) == 64:
            hashes[name[2:] if name.startswith("./") else name] = digest
    return hashes


def plan_upload(wanted, have):
    """(to upload, unchanged, stale) relative paths, from {path: sha256} here and on the host."""
    upload = [rel for rel, digest in wanted.items() if have.get(rel) != digest]
    unchanged = [rel for rel, digest in wanted.items() if have.get(rel) == digest]
    stale = [rel for rel in have if rel not in wanted]
    return upload, unchanged, stale


def upload_agent(session, agent_dir=AGENT_DIR, remote_root=REMOTE_ROOT, have=None):
    """Bring <home>/<remote_root>/agent in line with agent_dir. Returns (uploaded, skipped, removed).
    `have`: the host's hashes, where a command of the caller's ran hash_command already."""
    agent_dir = Path(agent_dir)
    remote_agent = posixpath.join(remote_root, REMOTE_AGENT_DIR)
    wanted = local_files(agent_dir)
    if have is None:
        have = parse_hashes(*session.exec(hash_command(agent_dir, remote_root))[:2])
    uploaded, skipped, removed = plan_upload(wanted, have)
    if uploaded or removed:
        sftp = session.sftp()
        for rel in uploaded:
            dest = posixpath.join(remote_agent, rel)
            # Upload beside, then rename: an interrupted upload never leaves a half file in place.
            sftp.put(str(agent_dir / rel), dest + ".part")
            sftp.posix_rename(dest + ".part", dest)
        for rel in removed:
            sftp.remove(posixpath.join(remote_agent, rel))
    log.info("%s: agent uploaded %d file(s), %d unchanged, %d stale removed",
             session.target.label, len(uploaded), len(skipped), len(removed))
    return uploaded, skipped, removed
