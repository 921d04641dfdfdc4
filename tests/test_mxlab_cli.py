"""Bad command-line input: a clear message naming the input, exit 2, before any connection."""
import pytest

from mxlab.catalogue import check_models, known_models
from mxlab.errors import UsageError
from mxlab.lab.targets import parse_host
from tests.fixtures_sshd import direct_args


def test_unknown_model_names_the_choices(mxlab_cli, sample_photos, tmp_path):
    code, out, err = mxlab_cli("run", "--host", "127.0.0.1:1", "--user", "u", "--identity", tmp_path,
                               "--model", "resnet-9000", sample_photos / "coffee.jpg")
    assert code == 2 and "unknown model 'resnet-9000'" in err and "resnet-50" in err


def test_missing_image(mxlab_cli, tmp_path):
    code, out, err = mxlab_cli("run", "--model", "resnet-50", tmp_path / "nope.jpg")
    assert code == 2 and "nope.jpg: no such file" in err


@pytest.mark.parametrize("spec", ["bad host!", "h:0", "h:99999", "h:port", ""])
def test_bad_host(mxlab_cli, sample_photos, spec, tmp_path):
    key = tmp_path / "k"
    key.write_text("x")
    code, out, err = mxlab_cli("run", "--host", spec, "--user", "u", "--identity", key,
                               "--model", "resnet-50", sample_photos / "coffee.jpg")
    assert code == 2 and "--host" in err


def test_host_needs_user_and_readable_identity(mxlab_cli, sample_photos, tmp_path):
    code, out, err = mxlab_cli("run", "--host", "127.0.0.1:2222", "--identity", tmp_path / "missing",
                               "--user", "u", "--model", "resnet-50", sample_photos / "coffee.jpg")
    assert code == 2 and "--identity" in err and "readable private key" in err
    code, out, err = mxlab_cli("run", "--host", "127.0.0.1:2222", "--model", "resnet-50", sample_photos / "coffee.jpg")
    assert code == 2 and "--user" in err


def test_parse_host_forms():
    assert parse_host("10.0.0.1") == ("10.0.0.1", 22)
    assert parse_host("ec2-1-2-3-4.compute.amazonaws.com:2222") == ("ec2-1-2-3-4.compute.amazonaws.com", 2222)
    assert parse_host("[::1]:2200") == ("::1", 2200)


def test_zoo_catalogue_adds_models_local_and_http(local_zoo, serve_zoo):
    with pytest.raises(UsageError, match="efficientnet-lite1"):
        check_models(["efficientnet-lite1"])
    assert check_models(["efficientnet-lite1"], str(local_zoo)) == ["efficientnet-lite1"]
    assert check_models(["efficientnet-lite2"], "file://%s" % local_zoo) == ["efficientnet-lite2"]
    server = serve_zoo(local_zoo)
    assert "efficientnet-lite1" in known_models(server.url)
    with pytest.raises(UsageError, match="unknown model 'nope'"):
        check_models(["nope"], server.url)


def test_ssh_to_a_direct_host_uses_the_given_known_hosts(conda_host, capfd):
    from mxlab.cli import main
    code = main(["ssh", *map(str, direct_args(conda_host)), "--", "echo", "direct-ok"])
    assert code == 0 and "direct-ok" in capfd.readouterr().out


def test_ssh_argv_verifies_a_lab_instance_by_its_instance_id(tmp_path):
    from mxlab.cli import ssh_argv
    from mxlab.lab.targets import Target
    lab = Target(label="attendee-2", host="203.0.113.7", port=22, user="ubuntu", identity=tmp_path / "a.pem",
                 known_hosts=tmp_path / "known_hosts", pin_from_console=True, instance_id="i-0abc", attendee=2)
    argv = ssh_argv(lab, ["echo", "hi"])
    assert argv[:1] == ["ssh"] and argv[-4:] == ["ubuntu@203.0.113.7", "--", "echo", "hi"]
    options = [argv[i + 1] for i, a in enumerate(argv) if a == "-o"]
    assert "HostKeyAlias=i-0abc" in options and "StrictHostKeyChecking=yes" in options
    assert "UserKnownHostsFile=%s" % (tmp_path / "known_hosts") in options
    direct = Target(label="h", host="198.51.100.1", port=2222, user="me", identity=tmp_path / "k",
                    known_hosts=tmp_path / "kh")
    assert "HostKeyAlias=[198.51.100.1]:2222" in ssh_argv(direct, [])
