"""Host-key trust against a real sshd: console parsing, unknown key, wrong key — nothing runs on abort."""
import base64

from mxlab.hosts import hostkeys
from tests.fixtures_sshd import direct_args


def test_console_block_is_parsed_with_prefixes_and_only_when_complete(conda_host):
    text = conda_host.console_output()
    keys = hostkeys.parse_console_keys(text)
    assert [" ".join(k) for k in keys] == conda_host.host_key_lines()
    assert hostkeys.parse_console_keys(conda_host.console_output(prefix="")) == keys
    # Still being printed, or not there at all: no keys (the caller keeps waiting).
    assert hostkeys.parse_console_keys(text.split("-----END SSH HOST KEY KEYS-----")[0]) == []
    assert hostkeys.parse_console_keys("Linux version 5.15\nno keys here\n") == []


def _no_agent_dir(host):
    return not (host.home / ".mxlab-agent").exists()


def test_unknown_host_key_aborts_before_any_command(conda_host, mxlab_cli, sample_photos, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    args = direct_args(conda_host)
    args[args.index("--known-hosts") + 1] = empty
    code, out, err = mxlab_cli("run", *args, "--model", "efficientnet-lite0", "--results", tmp_path / "r",
                               sample_photos / "coffee.jpg")
    assert code == 1
    assert "host key not trusted" in err and "[127.0.0.1]:%d" % conda_host.port in err
    ed = (conda_host.dir / "ssh_host_ed25519_key.pub").read_text().split()[1]
    import hashlib
    fp = base64.b64encode(hashlib.sha256(base64.b64decode(ed)).digest()).decode().rstrip("=")
    ec = (conda_host.dir / "ssh_host_ecdsa_key.pub").read_text().split()[1]
    fp2 = base64.b64encode(hashlib.sha256(base64.b64decode(ec)).digest()).decode().rstrip("=")
    assert ("SHA256:" + fp) in err or ("SHA256:" + fp2) in err, "the offered key's fingerprint is shown"
    assert "ssh-keyscan" in err  # how to proceed
    assert empty.read_text() == "", "an unknown key is never added"


def test_wrong_host_key_is_a_mismatch_naming_both_keys(sshd_factory, mxlab_cli, sample_photos, tmp_path):
    host = sshd_factory()
    other = sshd_factory()
    wrong = tmp_path / "known_hosts"
    entry = "[127.0.0.1]:%d" % host.port
    wrong.write_text("".join("%s %s\n" % (entry, l) for l in other.host_key_lines()))
    args = direct_args(host)
    args[args.index("--known-hosts") + 1] = wrong
    code, out, err = mxlab_cli("run", *args, "--model", "efficientnet-lite0", "--results", tmp_path / "r",
                               sample_photos / "coffee.jpg")
    assert code == 1
    assert "HOST KEY MISMATCH" in err and entry in err
    assert err.count("SHA256:") >= 2  # expected and offered
    assert _no_agent_dir(host)
    assert not list((tmp_path / "r").rglob("*.jsonl"))


def test_hosts_pinned_at_once_from_threads_all_keep_their_keys(tmp_path, monkeypatch):
    """`mxlab run --all` makes hosts ready in threads: every instance's keys land in the one known_hosts.
    (The console is replaced by a list here; the emulator's console is tested in test_offline_sandbox.)"""
    import threading
    from mxlab.lab.targets import Target
    known = tmp_path / "known_hosts"
    start = threading.Barrier(6)

    def console_keys(target, timeout, sleep):
        start.wait()
        return [("ssh-ed25519", base64.b64encode(target.instance_id.encode()).decode())]

    monkeypatch.setattr(hostkeys, "wait_console_keys", console_keys)
    targets = [Target(label="attendee-%d" % n, host="127.0.0.%d" % (10 + n), port=22, user="u", identity=None,
                      known_hosts=known, pin_from_console=True, instance_id="i-%017d" % n) for n in range(6)]
    threads = [threading.Thread(target=hostkeys.pin_from_console, args=(t, 5)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pinned = known.read_text()
    assert all(t.instance_id in pinned for t in targets), pinned
