"""Fault: a model file in a host's cache changes after it was verified (a bit flip, a truncated copy).

Real parts: an sshd lab host (DLAMI-like conda env, real MXNet), the local zoo over HTTP as the MXNet model
zoo serves it (no sha256 pins in its catalogue), `mxlab run` as an organiser types it (no -v).
"""
import hashlib
import json

import pytest

from tests.fixtures_sshd import direct_args

pytestmark = [pytest.mark.fault, pytest.mark.slow]
MODEL = "efficientnet-lite0"
PARAMS = "efficientnet-lite0-0000.params"


def flip_a_bit(path):
    with open(str(path), "r+b") as fh:
        fh.seek(path.stat().st_size // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0x10]))


def cut_in_half(path):
    with open(str(path), "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def params_requests(zoo):
    return [r for r in zoo.requests if r[1].endswith("/" + PARAMS)]


@pytest.mark.parametrize("corrupt", [flip_a_bit, cut_in_half])
def test_a_corrupted_cached_model_is_found_by_its_hash_refetched_once_and_said(
        corrupt, sshd_factory, mxlab_cli, mxlab_home, unpinned_zoo, serve_zoo, sample_photos, local_zoo, tmp_path):
    zoo = serve_zoo(unpinned_zoo)
    host = sshd_factory(conda_envs=("mxnet_p36",))
    photo = sample_photos / "chelsea.jpg"

    def run(name):
        code, out, err = mxlab_cli("run", *direct_args(host), "--zoo", zoo.url, "--model", MODEL,
                                   "--results", tmp_path / name, photo)
        (lines,) = list((tmp_path / name).rglob("*.jsonl"))
        return code, err, [json.loads(line) for line in lines.read_text().splitlines()]

    code, err, first = run("first")
    assert code == 0, err
    cached = host.home / ".mxlab" / "models" / MODEL / PARAMS
    assert sha256(cached) == sha256(local_zoo / MODEL / PARAMS)

    corrupt(cached)
    zoo.reset_counters()
    code, err, again = run("again")
    assert code == 0, err
    # Said without -v, naming the file; fetched once more; the run's answer is the verified model's.
    assert "is corrupted or changed since it was verified" in err and PARAMS in err, err
    assert len(params_requests(zoo)) == 1, zoo.requests
    assert sha256(cached) == sha256(local_zoo / MODEL / PARAMS)
    assert [r["top"] for r in again] == [r["top"] for r in first]

    zoo.reset_counters()
    code, err, _ = run("third")
    assert code == 0 and "corrupted" not in err and params_requests(zoo) == [], err
