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


def test_threads_writing_one_file_at_once_each_replace_it_whole(tmp_path):
    """Hosts are made ready in threads (fleet, shard): two writers of one file must not share a temp."""
    import threading
    path = tmp_path / "known_hosts"
    start, errors = threading.Barrier(8), []

    def write(n):
        start.wait()
        try:
            for _ in range(50):
                write_atomic(path, "writer %d\n" % n)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert path.read_text() in {"writer %d\n" % n for n in range(8)}
    assert [p.name for p in tmp_path.iterdir()] == ["known_hosts"]
