"""The remote environment: the AMI's conda env by preference, else a real venv + pip install, remembered."""
import pytest

from mxlab.errors import UsageError
from mxlab.remote_env import choose_conda, mxnet_requirement, parse_detect
from tests.fixtures_sshd import direct_args


def test_conda_preference_order_and_explicit_choice():
    envs = [("/h/anaconda3", "tensorflow_p36"), ("/h/anaconda3", "mxnet_latest_p37"),
            ("/h/anaconda3", "mxnet_p27"), ("/h/anaconda3", "mxnet_p36")]
    assert [n for _, n in choose_conda(envs)] == ["mxnet_p36", "mxnet_p27", "mxnet_latest_p37"]
    assert [n for _, n in choose_conda(envs[:2])] == ["mxnet_latest_p37"]
    assert choose_conda([("/h/anaconda3", "tensorflow_p36")]) == []
    assert choose_conda(envs, "tensorflow_p36") == [("/h/anaconda3", "tensorflow_p36")]
    with pytest.raises(UsageError, match="--env nope: no such conda env.*mxnet_p36"):
        choose_conda(envs, "nope")


def test_gpu_hosts_get_the_mxnet_cuda_build_the_driver_supports():
    assert mxnet_requirement(None) == "mxnet==1.9.1"
    assert mxnet_requirement("12.2") == "mxnet-cu112==1.9.1"
    assert mxnet_requirement("11.1") == "mxnet-cu110==1.9.1"
    assert mxnet_requirement("10.2") == "mxnet-cu102==1.9.1"
    assert mxnet_requirement("9.0") == "mxnet==1.9.1"
    envs, gpu, py = parse_detect("ROOT /h/a\nENV /h/a mxnet_p36\nGPU 11.4\nPYTHON3 /usr/bin/python3\n")
    assert envs == [("/h/a", "mxnet_p36")] and gpu == "11.4" and py == "/usr/bin/python3"


def test_env_flag_picks_another_mxnet_env_and_unknown_env_fails(sshd_factory, mxlab_cli, local_zoo,
                                                                sample_photos, tmp_path):
    host = sshd_factory(conda_envs=("mxnet_p27", "mxnet_latest_p37"))
    common = [*direct_args(host), "--zoo", local_zoo, "--model", "efficientnet-lite0", "--results", tmp_path]
    code, out, err = mxlab_cli("run", *common, sample_photos / "coffee.jpg")
    assert code == 0, err
    assert "conda env mxnet_p27" in err
    code, out, err = mxlab_cli("run", *common, "--env", "mxnet_latest_p37", sample_photos / "coffee.jpg")
    assert code == 0, err
    assert (host.home / ".mxlab-agent" / "env.sh").read_text().startswith("# mxlab environment: conda:mxnet_latest_p37")
    code, out, err = mxlab_cli("run", *common, "--env", "mxnet_p99", sample_photos / "coffee.jpg")
    assert code == 1 and "--env mxnet_p99: no such conda env" in err


def test_venv_fallback_installs_once_then_is_remembered(sshd_factory, wheelhouse, mxlab_cli, local_zoo,
                                                        sample_photos, tmp_path):
    host = sshd_factory(conda_envs=(), wheelhouse=wheelhouse)
    common = [*direct_args(host), "--zoo", local_zoo, "--model", "efficientnet-lite0", "--results", tmp_path]
    code, out, err = mxlab_cli("run", *common, sample_photos / "coffee.jpg")
    assert code == 0, err
    assert "no MXNet conda env: making a venv" in err and "pip install" in err
    venv_python = host.home / ".mxlab-agent" / "venv" / "bin" / "python"
    assert venv_python.exists()
    assert list((host.home / ".mxlab-agent" / "venv").glob("lib/python3*/site-packages/mxnet/__init__.py"))
    assert "espresso" in out
    env_file = host.home / ".mxlab-agent" / "env.sh"
    assert env_file.read_text().startswith("# mxlab environment: venv")
    stamp = env_file.stat().st_mtime_ns
    code, out, err = mxlab_cli("run", *common, sample_photos / "chelsea.jpg")
    assert code == 0, err
    assert "making a venv" not in err and "pip install" not in err
    assert env_file.stat().st_mtime_ns == stamp
