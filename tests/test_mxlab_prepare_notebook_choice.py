"""`mxlab prepare --no-notebook`: no JupyterLab on the host (no venv, no token, no server, no workspace), the
workshop left to a terminal; the same host prepared without it then gets JupyterLab (a real sshd host with the
DLAMI-like conda env, the local zoo, the sandbox's wheelhouse as its package index)."""
import pytest

from mxlab.workshop import notebook_server
from tests.fixtures_sshd import direct_args

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
MODEL = "efficientnet-lite0"


def test_no_notebook_leaves_no_jupyterlab_and_a_later_prepare_serves_it(sshd_factory, wheelhouse, mxlab_cli,
                                                                          mxlab_home, local_zoo):
    host = sshd_factory(conda_envs=("mxnet_p36",), wheelhouse=wheelhouse)
    jupyter = host.home / ".mxlab-agent" / notebook_server.JUPYTER_DIR
    args = [*direct_args(host), "--zoo", local_zoo, "--models", MODEL, "--no-warm"]

    code, out, err = mxlab_cli("prepare", "--no-notebook", *args)
    assert code == 0 and "all 1 host(s) ready" in out, out + err
    assert "JupyterLab" not in err, err
    assert not jupyter.exists(), "no server venv, token or start script"
    assert not (host.home / "mxnet-lab").exists(), "no workspace either, unless --workspace asks for it"

    code, out, err = mxlab_cli("prepare", *args)
    assert code == 0 and "all 1 host(s) ready" in out, out + err
    assert "installing JupyterLab" in err, err
    assert (jupyter / "token").is_file() and (jupyter / "port").read_text().strip().isdigit()
    assert (host.home / "mxnet-lab" / "mxnet-lab.ipynb").is_file()
