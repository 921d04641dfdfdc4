"""mxlab/hosts/ssh_options.py: the pinned-host options `mxlab ssh` and the handout's ssh_config share."""
from pathlib import Path

from mxlab.hosts import ssh_options
from mxlab.workshop import handout


def test_options_become_ssh_arguments():
    options = ssh_options.pinned("k.pem", "known_hosts", "i-0abc", 2222, extra=[("CheckHostIP", "no")])
    assert ssh_options.as_argv(options) == [
        "-p", "2222", "-i", "k.pem", "-o", "IdentitiesOnly=yes", "-o", "UserKnownHostsFile=known_hosts",
        "-o", "StrictHostKeyChecking=yes", "-o", "HostKeyAlias=i-0abc", "-o", "CheckHostIP=no"]
    assert "-p" not in ssh_options.as_argv(ssh_options.pinned("k.pem", "known_hosts", "i-0abc"))


def test_the_handout_config_and_its_one_line_command_say_the_same_options(tmp_path):
    sheet = handout.Sheet(label="attendee-1", attendee=1, instance_id="i-0abc", host="203.0.113.7", port=2222,
                          user="ubuntu", identity=Path("/x"))
    config = handout.ssh_config_text(sheet, tmp_path).splitlines()
    command = handout.one_line_command(sheet).split()
    for keyword, value in ssh_options.pinned(sheet.key_name, "known_hosts", sheet.instance_id, sheet.port):
        if keyword in ssh_options.PATH_OPTIONS:
            assert any(line.startswith("    %s " % keyword) for line in config), keyword
        else:
            assert "    %s %s" % (keyword, value) in config
            assert ("%s=%s" % (keyword, value) in command) or value in command
