"""Inputs that are not regular files: refused by what they are, never read without a bound, and the
rest of the batch is still classified (a real agent process, real photos, real special files)."""
import os
import socket
import subprocess
import sys

import pytest

from agent import inputs
from agent.errors import InputError
from tests.checkpoints import json_lines
from tests.paths import REPO

PHOTOS = ("chelsea.jpg", "coffee.jpg", "astronaut.jpg")


def test_dev_zero_symlink_and_fifo_among_real_photos_are_errors_and_the_rest_classified(
        sample_photos, tiny_zoo, tmp_path):
    zero = tmp_path / "zero.jpg"
    zero.symlink_to("/dev/zero")  # before: read to MemoryError, every result lost
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(str(fifo))  # before: the agent waited forever for a writer
    photos = [str(sample_photos / name) for name in PHOTOS]
    args = [photos[0], str(zero), photos[1], str(fifo), photos[2]]
    # The timeout only guards the test run against a hang; no wall time is asserted.
    result = subprocess.run(
        [sys.executable, "-m", "agent", "classify", "--zoo", tiny_zoo, "--cache", str(tmp_path / "cache"),
         "--model", "tiny-prob", "--batch-size", "2", *args],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stderr
    records = json_lines(result.stdout)
    assert [r["image"] for r in records] == args
    found = {r["image"]: r for r in records}
    assert all("top" in found[photo] for photo in photos)
    assert found[str(zero)]["error"] == "not a regular file (character device; a symlink to /dev/zero)"
    assert found[str(fifo)]["error"] == "not a regular file (FIFO)"
    assert "2 of 5 results are errors" in result.stderr


def test_socket_directory_and_broken_symlink_are_named(tmp_path):
    sock_path = tmp_path / "s.png"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(sock_path))
    try:
        with pytest.raises(InputError, match=r"^not a regular file \(socket\)$"):
            inputs.read_regular_file(str(sock_path), 1000)
    finally:
        server.close()
    (tmp_path / "d.jpg").mkdir()
    with pytest.raises(InputError, match=r"not a regular file \(directory\)"):
        inputs.read_regular_file(str(tmp_path / "d.jpg"), 1000)
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    [source] = inputs.expand([str(tmp_path / "gone.jpg")], None)
    with pytest.raises(InputError, match="broken symlink to .*nowhere.jpg"):
        source.read()


def test_every_read_is_bounded_by_the_byte_limit(tmp_path):
    photo = tmp_path / "big.jpg"
    photo.write_bytes(b"x" * 5000)
    link = tmp_path / "link.jpg"
    link.symlink_to(photo)
    assert inputs.read_regular_file(str(link), 5000) == b"x" * 5000
    with pytest.raises(InputError, match="5000 bytes, more than the 4999 byte limit; a symlink to .*big.jpg"):
        inputs.read_regular_file(str(link), 4999)


def test_file_kind_names_each_special_kind():
    import stat
    assert inputs.file_kind(stat.S_IFREG | 0o644) is None
    assert [inputs.file_kind(kind | 0o644) for kind in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK)] \
        == ["character device", "block device", "FIFO", "socket"]
