"""Local state files are replaced whole or not at all."""
import stat

import pytest

from mxlab.atomic import write_atomic


def test_replaces_the_file_with_the_mode_set(tmp_path):
    path = tmp_path / "key.pem"
    path.write_text("old\n")
    write_atomic(path, "new\n", mode=0o600)
    assert path.read_text() == "new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["key.pem"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "known_hosts"
    path.write_text("[127.0.0.1]:2222 ssh-ed25519 AAAA\n")
    with pytest.raises(AttributeError):
        write_atomic(path, None)  # not text: fails after the temp file exists
    assert path.read_text() == "[127.0.0.1]:2222 ssh-ed25519 AAAA\n"
    assert [p.name for p in tmp_path.iterdir()] == ["known_hosts"]
