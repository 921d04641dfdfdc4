"""mxlab handout's folders against a real sshd, used with the real OpenSSH client as an attendee would:
only the folder (HOME an empty folder, no agent), strict host-key checking; and its pages in Chromium.

The lab-stack side (keys from SSM, live state, pins from the console, the CLI) is tested on the offline
lab in test_mxlab_prepare.py, after `mxlab prepare`.
"""
import re
import shutil
import stat
from pathlib import Path

import pytest

from mxlab.workshop import handout
from mxlab.errors import UsageError
from tests.fixtures_sshd import INSTANCE, attendee_ssh, sheet_for

@pytest.fixture
def host(sshd_factory):
    return sshd_factory(conda_envs=())


READY = {"ready": True, "environment": "conda:mxnet_p36", "activate": ". /home/u/anaconda3/bin/activate mxnet_p36",
         "models": ["efficientnet-lite0"], "smoke": {"efficientnet-lite0": "Egyptian cat"},
         "workspace": "/home/u/mxnet-lab", "prepared_at": "2026-12-01T08:00:00Z",
         "workspace_models": [{"model": "efficientnet-lite0", "name": "efficientnet-lite0", "size": 224,
                               "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "color": "RGB"}]}


def test_the_folder_connects_with_strict_checking_and_nothing_else(host, tmp_path):
    out = tmp_path / "handout"
    handout.write([sheet_for(host, readiness=READY)], "MxnetLab", handout.check_out_dir(out, False))
    folder = out / "attendee-1"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "attendee-1.pem").stat().st_mode) == 0o600
    assert (folder / "attendee-1.pem").read_bytes() == host.identity.read_bytes()
    config = (folder / "ssh_config").read_text()
    for line in ("Host attendee-1", "HostName %s" % host.address, "User %s" % host.user, "Port %d" % host.port,
                 "StrictHostKeyChecking yes", "HostKeyAlias %s" % INSTANCE,
                 'IdentityFile "%s"' % (folder / "attendee-1.pem"),
                 'UserKnownHostsFile "%s"' % (folder / "known_hosts")):
        assert re.search(r"^\s*%s$" % re.escape(line), config, re.M), line
    assert all(line.startswith(INSTANCE + " ") for line in (folder / "known_hosts").read_text().splitlines())
    known_before = (folder / "known_hosts").read_bytes()

    ssh = attendee_ssh(["-F", "ssh_config", "attendee-1", "echo", "connected-as-$USER"], folder, tmp_path)
    assert ssh.returncode == 0, ssh.stderr
    assert "connected-as-%s" % host.user in ssh.stdout
    assert (folder / "known_hosts").read_bytes() == known_before, "ssh learned nothing on the way"
    assert not (tmp_path / "empty-home" / ".ssh" / "known_hosts").exists()


def test_the_one_line_command_works_from_a_moved_folder(host, tmp_path):
    out = tmp_path / "handout"
    handout.write([sheet_for(host)], "MxnetLab", handout.check_out_dir(out, False))
    moved = tmp_path / "Downloads" / "attendee-1"
    shutil.move(str(out / "attendee-1"), str(moved))
    command = handout.one_line_command(sheet_for(host))
    assert command in (moved / "README.txt").read_text()
    ssh = attendee_ssh(command.split()[1:] + ["true"], moved, tmp_path)
    assert ssh.returncode == 0, ssh.stderr


def test_strict_checking_refuses_a_host_whose_key_is_not_the_pinned_one(host, sshd_factory, tmp_path):
    other = sshd_factory(conda_envs=())
    sheet = sheet_for(host)
    sheet.pinned = ["%s %s" % (INSTANCE, line) for line in other.host_key_lines()]  # another machine's keys
    out = tmp_path / "handout"
    handout.write([sheet], "MxnetLab", handout.check_out_dir(out, False))
    ssh = attendee_ssh(["-F", "ssh_config", "attendee-1", "true"], out / "attendee-1", tmp_path)
    assert ssh.returncode == 255
    assert "Host key verification failed" in ssh.stderr or "IDENTIFICATION HAS CHANGED" in ssh.stderr


def test_a_non_empty_folder_is_refused_unless_forced(tmp_path):
    out = tmp_path / "handout"
    (out / "attendee-1").mkdir(parents=True)
    with pytest.raises(UsageError, match=r"--out .*not empty.*--force"):
        handout.check_out_dir(out, False)
    assert handout.check_out_dir(out, True) == out
    assert handout.check_out_dir(tmp_path / "new" / "folder", False).is_dir()


def test_no_page_or_text_holds_key_material(host, tmp_path):
    out = tmp_path / "handout"
    handout.write([sheet_for(host, readiness=READY)], "MxnetLab", handout.check_out_dir(out, False))
    key_lines = [line for line in host.identity.read_text().splitlines() if len(line) > 20 and "---" not in line]
    assert key_lines
    texts = list(out.rglob("*.html")) + list(out.rglob("*.txt")) + [out / "attendee-1" / "ssh_config"]
    assert len(texts) == 4
    for path in texts:
        text = path.read_text()
        assert "PRIVATE KEY" not in text, path
        assert not any(line in text for line in key_lines), path


def test_the_attendee_page_says_how_to_connect_activate_and_work(host, tmp_path):
    out = tmp_path / "handout"
    handout.write([sheet_for(host, readiness=READY)], "MxnetLab", handout.check_out_dir(out, False))
    readme = (out / "attendee-1" / "README.txt").read_text()
    for needle in ("ssh -F ssh_config attendee-1", "icacls attendee-1.pem", "chmod 600 attendee-1.pem",
                   READY["activate"], "mx.model.load_checkpoint(MODEL, 0)", "IdentityFile", "UserKnownHostsFile"):
        assert needle in readme, needle
    unprepared = tmp_path / "unprepared"
    handout.write([sheet_for(host)], "MxnetLab", handout.check_out_dir(unprepared, False))
    assert "not prepared this host yet" in (unprepared / "attendee-1" / "README.txt").read_text()
    assert "not prepared" in (unprepared / "index.html").read_text()


LINKS = """(() => Array.from(document.querySelectorAll('a[href]')).map(a => a.href))()"""


def test_the_pages_in_chromium(host, tmp_path, chromium):
    out = tmp_path / "handout"
    failing = sheet_for(host, label="attendee-2", instance_id="i-0ffff1234def56789")
    failing.error = "attendee-2: no host keys pinned"
    sheets = [sheet_for(host, readiness=READY), failing]
    handout.write(sheets, "MxnetLab", handout.check_out_dir(out, False))
    assert not (out / "attendee-2").exists(), "no folder for an attendee whose handout failed"
    for page_path, texts in ((out / "index.html", ("attendee-1", "ready", "Egyptian cat", "no handout")),
                             (out / "attendee-1" / "index.html", ("ssh -F ssh_config attendee-1", "load_checkpoint"))):
        page = chromium.new_page()
        try:
            page.goto(page_path.as_uri())
            body = page.evaluate("document.body.innerText")
            for text in texts:
                assert text in body, (page_path, text)
            links = page.evaluate(LINKS)
            assert links, page_path
            for link in links:
                assert link.startswith("file://"), link
                assert Path(link[len("file://"):]).exists(), "dead link %s on %s" % (link, page_path)
            assert page.errors == [], page.errors
            assert all(url.startswith("file://") for url in page.requests), page.requests
        finally:
            chromium.pages.pop(page.session_id, None)
            page.close()


def test_handout_is_for_lab_instances_only(host, mxlab_cli, mxlab_home, tmp_path):
    code, out, err = mxlab_cli("handout", "--host", host.hostspec, "--user", host.user, "--identity", host.identity,
                               "--out", tmp_path / "h")
    assert code == 2 and "--host: handout is for the lab's attendee instances" in err
    assert not (tmp_path / "h").exists()
