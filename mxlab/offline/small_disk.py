"""A lab host whose home is a small filesystem: a full disk on an instance, for the sandbox's fault tests.

As root, `SmallDisk(host, size_mb).mount()` mounts a tmpfs of that size over the SshdHost's home (its files
copied in first, so the host looks the same), `fill(leave_bytes)` writes a ballast file until only that much
is free (what a person's data or another tool does to a real disk), `release()` removes the ballast, and
`unmount()` puts the home back on the real disk with what it holds then (lazily: a process still inside keeps
the tmpfs until it ends). By hand:

    mount -t tmpfs -o size=64m,mode=0755,uid=$(id -u),gid=$(id -g) mxlab-small-disk HOST_DIR/home

(with the home's files copied in). Mounting needs root (CAP_SYS_ADMIN): anyone else gets SmallDiskUnavailable
with the reason, and the tests skip with it.
"""
import os
import shutil
import subprocess

BALLAST = ".small-disk-ballast"


class SmallDiskUnavailable(RuntimeError):
    """This machine (user) cannot mount a small filesystem: the reason is the message."""


class SmallDisk:
    def __init__(self, host, size_mb):
        self.host = host
        self.size_mb = size_mb
        self.mounted = False

    @property
    def home(self):
        return self.host.home

    def mount(self):
        if os.geteuid() != 0:
            raise SmallDiskUnavailable("mounting a tmpfs as a host's home needs root (running as uid %d)"
                                       % os.geteuid())
        saved = self.home.with_name(self.home.name + ".before-small-disk")
        os.rename(str(self.home), str(saved))
        os.mkdir(str(self.home), 0o755)
        options = "size=%dm,mode=0755,uid=%d,gid=%d" % (self.size_mb, os.getuid(), os.getgid())
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "mxlab-small-disk", str(self.home)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            os.rmdir(str(self.home))
            os.rename(str(saved), str(self.home))
            raise SmallDiskUnavailable("mount -t tmpfs failed: %s" % (proc.stderr.strip() or proc.returncode))
        self.mounted = True
        subprocess.run(["cp", "-a", str(saved) + "/.", str(self.home)], check=True)
        shutil.rmtree(str(saved))
        return self

    def free_bytes(self):
        info = os.statvfs(str(self.home))
        return info.f_bavail * info.f_frsize

    def fill(self, leave_bytes=0):
        """Write the ballast until at most `leave_bytes` are free (0: the disk is full)."""
        block = b"\0" * (1 << 20)
        with open(str(self.home / BALLAST), "ab", buffering=0) as fh:
            while self.free_bytes() > leave_bytes:
                try:
                    fh.write(block[:max(4096, min(len(block), self.free_bytes() - leave_bytes))])
                    fh.flush()
                except OSError:  # ENOSPC: full
                    break

    def release(self):
        try:
            os.remove(str(self.home / BALLAST))
        except FileNotFoundError:
            pass

    def unmount(self):
        """Back on the real disk with the files the home has now (the host goes on as before)."""
        if not self.mounted:
            return
        self.release()
        saved = self.home.with_name(self.home.name + ".after-small-disk")
        subprocess.run(["cp", "-a", str(self.home) + "/.", str(saved)], check=False)
        subprocess.run(["umount", "-l", str(self.home)], check=False)  # lazily: a process inside keeps it
        self.mounted = False
        subprocess.run(["cp", "-a", str(saved) + "/.", str(self.home)], check=False)
        shutil.rmtree(str(saved), ignore_errors=True)
