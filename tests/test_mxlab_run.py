"""`mxlab run` / `compare` on a real sshd host with the real agent, real model and real photos."""
import json
import re
import shutil
import threading
import time
from pathlib import Path

from rich.progress import Progress

from mxlab.remote.run import plan_uploads

from tests.fixtures_sshd import direct_args
from mxlab.offline.lab_host import _children

CATS = {"tiger cat", "tabby, tabby cat", "Egyptian cat"}


def copies_of(photos, times, folder):
    """`times` renamed copies of every sample photo in `folder`: a run long enough to interrupt."""
    folder.mkdir()
    for i in range(times):
        for photo in photos.glob("*.jpg"):
            shutil.copy(photo, folder / ("%02d-%s" % (i, photo.name)))
    return folder


def watch_run(runs, sign, act, timeout=180):
    """A thread that waits for `sign(runs)` to name a run dir of the agent, then calls act(run_dir)."""
    def watch():
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run_dir = sign(runs) if runs.exists() else None
            if run_dir:
                act(run_dir)
                return
            time.sleep(0.02)
    thread = threading.Thread(target=watch)
    thread.start()
    return thread


def agent_started(runs):
    started = list(runs.glob("*/pid"))
    return started[0].parent if started else None


def results_written(count):
    def sign(runs):
        temps = list(runs.glob("*/.results.jsonl.*"))
        return temps[0].parent if temps and temps[0].read_text().count("\n") >= count else None
    return sign


def saved_records(results_dir):
    files = sorted(Path(results_dir).rglob("*.jsonl"))
    assert files, "no results saved under %s" % results_dir
    return [json.loads(l) for f in files for l in f.read_text().splitlines() if l.strip()]


def summary(results_dir):
    (path,) = Path(results_dir).rglob("summary.json")
    return json.loads(path.read_text())


def top1(records, image_suffix, model=None):
    for r in records:
        if r["image"].endswith(image_suffix) and (model is None or r["model"] == model):
            return r["top"][0]["label"]
    raise AssertionError("no result for %s in %s" % (image_suffix, records))


def test_run_classifies_real_photos_on_a_direct_host(conda_host, mxlab_cli, local_zoo, sample_photos, tmp_path):
    results = tmp_path / "results"
    code, out, err = mxlab_cli("run", *direct_args(conda_host), "--zoo", local_zoo, "--model", "efficientnet-lite0",
                               "--top-k", "3", "--results", results,
                               sample_photos / "chelsea.jpg", sample_photos / "coffee.jpg")
    assert code == 0, err
    records = saved_records(results)
    assert len(records) == 2
    assert top1(records, "chelsea.jpg") in CATS
    assert top1(records, "coffee.jpg") == "espresso"
    assert all(len(r["top"]) == 3 for r in records)
    # Image names are the operator's inputs, not the host's upload paths.
    assert {r["image"] for r in records} == {str(sample_photos / "chelsea.jpg"), str(sample_photos / "coffee.jpg")}
    assert "espresso" in out and "conda env mxnet_p36" in err
    assert (results / ("127.0.0.1_%d" % conda_host.port)).is_dir()
    assert summary(results)[0]["status"] == "ok"


def test_second_run_skips_unchanged_agent_files_and_remembers_env(conda_host, mxlab_cli, local_zoo,
                                                                     sample_photos, tmp_path):
    args = [*direct_args(conda_host), "--zoo", local_zoo, "--model", "efficientnet-lite0", "--results", tmp_path]
    code, _, err = mxlab_cli("run", *args, sample_photos / "coffee.jpg")
    assert code == 0, err
    agent_dir = conda_host.home / ".mxlab-agent" / "agent"
    stamps = {p: p.stat().st_mtime_ns for p in agent_dir.rglob("*.py")}
    env_file = conda_host.home / ".mxlab-agent" / "env.sh"
    env_stamp = env_file.stat().st_mtime_ns
    assert env_file.read_text().startswith("# mxlab environment: conda:mxnet_p36")
    time.sleep(0.05)
    code, _, err = mxlab_cli("run", *args, "-v", sample_photos / "coffee.jpg")
    assert code == 0, err
    assert "uploaded 0 file(s)" in err and "remembered environment conda:mxnet_p36" in err
    assert {p: p.stat().st_mtime_ns for p in agent_dir.rglob("*.py")} == stamps
    assert env_file.stat().st_mtime_ns == env_stamp
    # A stale file on the host is replaced by the operator's copy (hash differs).
    (agent_dir / "catalogue.json").write_text("{}")
    code, _, err = mxlab_cli("run", *args, "-v", sample_photos / "coffee.jpg")
    assert code == 0, err
    assert "uploaded 1 file(s)" in err
    assert json.loads((agent_dir / "catalogue.json").read_text())["models"]


def test_compare_prints_models_side_by_side(conda_host, mxlab_cli, local_zoo, sample_photos, tmp_path):
    code, out, err = mxlab_cli("compare", *direct_args(conda_host), "--zoo", local_zoo,
                               "--models", "efficientnet-lite0,efficientnet-lite1", "--results", tmp_path,
                               sample_photos)
    assert code == 0, err
    records = saved_records(tmp_path)
    assert {(Path(r["image"]).name, r["model"]) for r in records} == {
        (p, m) for p in ("chelsea.jpg", "coffee.jpg", "astronaut.jpg", "rocket.jpg")
        for m in ("efficientnet-lite0", "efficientnet-lite1")}
    for model in ("efficientnet-lite0", "efficientnet-lite1"):
        assert top1(records, "coffee.jpg", model) == "espresso"
    header = next(l for l in out.splitlines() if "efficientnet-lite0" in l and "efficientnet-lite1" in l)
    assert "image" in header
    assert any("coffee.jpg" in l and l.count("espresso") == 2 for l in out.splitlines())


def test_connection_killed_mid_run_still_collects_every_result(sshd_factory, mxlab_cli, local_zoo,
                                                               sample_photos, tmp_path):
    host = sshd_factory()
    many = copies_of(sample_photos, 12, tmp_path / "many")
    runs = host.home / ".mxlab-agent" / "runs"
    seen = {}

    def kill_connections(run_dir):
        seen["finished_before_kill"] = (run_dir / "exit_code").exists()
        seen["killed"] = host.kill_sessions()

    thread = watch_run(runs, agent_started, kill_connections)
    code, out, err = mxlab_cli("run", *direct_args(host), "--zoo", local_zoo, "--model", "efficientnet-lite0",
                               "--results", tmp_path / "results", many)
    thread.join()
    assert seen.get("killed"), "the test never saw the agent start"
    assert seen["finished_before_kill"] is False
    assert code == 0, err
    records = saved_records(tmp_path / "results")
    assert len(records) == 48
    assert summary(tmp_path / "results")[0]["reconnects"] >= 1
    assert top1(records, "00-coffee.jpg") == "espresso"


def test_some_inputs_failing_keeps_the_rest_and_exits_3(conda_host, mxlab_cli, local_zoo, sample_photos, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"this is not a JPEG")
    code, out, err = mxlab_cli("run", *direct_args(conda_host), "--zoo", local_zoo, "--model", "efficientnet-lite0",
                               "--results", tmp_path / "r", sample_photos / "coffee.jpg", broken)
    assert code == 3, err
    records = saved_records(tmp_path / "r")
    assert top1(records, "coffee.jpg") == "espresso"
    (bad,) = [r for r in records if r["image"] == str(broken)]
    assert "error" in bad
    assert summary(tmp_path / "r")[0]["status"] == "partial"


def test_agent_fatal_error_is_reported_with_its_message(conda_host, mxlab_cli, local_zoo, sample_photos, tmp_path):
    # squeezenet is in the catalogue but not in the local zoo: the agent cannot fetch it.
    code, out, err = mxlab_cli("run", *direct_args(conda_host), "--zoo", local_zoo, "--model", "squeezenet-v1.1",
                               "--results", tmp_path, sample_photos / "coffee.jpg")
    assert code == 1
    assert "agent exited 1" in err and "squeezenet" in err
    assert summary(tmp_path)[0]["status"] == "failed"


def test_host_down_for_a_while_mid_run_then_back(sshd_factory, mxlab_cli, local_zoo, sample_photos, tmp_path):
    host = sshd_factory()
    many = copies_of(sample_photos, 8, tmp_path / "many")
    runs = host.home / ".mxlab-agent" / "runs"
    seen = {}

    def outage(run_dir):
        host.pause()  # the SSH server goes away: no listener, sessions killed
        seen["paused"] = True
        time.sleep(2)
        host.resume()

    thread = watch_run(runs, agent_started, outage)
    code, out, err = mxlab_cli("run", *direct_args(host), "--zoo", local_zoo, "--model", "efficientnet-lite0",
                               "--results", tmp_path / "results", many)
    thread.join()
    assert seen.get("paused")
    assert code == 0, err
    assert len(saved_records(tmp_path / "results")) == 32
    assert summary(tmp_path / "results")[0]["reconnects"] >= 1


def test_urls_pass_through_to_the_agent(conda_host, mxlab_cli, local_zoo, sample_photos, serve_zoo, tmp_path):
    server = serve_zoo(sample_photos)
    url = server.url.rstrip("/") + "/coffee.jpg"
    code, out, err = mxlab_cli("run", *direct_args(conda_host), "--zoo", local_zoo, "--model", "efficientnet-lite0",
                               "--results", tmp_path, url)
    assert code == 0, err
    (rec,) = saved_records(tmp_path)
    assert rec["image"] == url and rec["top"][0]["label"] == "espresso"
    run_dirs = list((conda_host.home / ".mxlab-agent" / "runs").iterdir())
    assert all(not any((d / "inputs").iterdir()) for d in run_dirs if (d / "command").read_text().find(url) >= 0)


def test_agent_killed_without_exit_code_fails_promptly_and_keeps_finished_results(sshd_factory, mxlab_cli,
                                                                                  local_zoo, sample_photos,
                                                                                  tmp_path):
    import os
    import signal
    host = sshd_factory()
    many = copies_of(sample_photos, 25, tmp_path / "many")
    runs = host.home / ".mxlab-agent" / "runs"
    seen = {}

    def kill_agent(run_dir):
        # The saved pid and everything under it, parents first: the shells that would write
        # exit_code die before the agent does, as on a `kill -9` or a reboot.
        tree = [int((run_dir / "pid").read_text())]
        for pid in tree:
            tree.extend(_children(pid))
        for pid in tree:
            os.kill(pid, signal.SIGKILL)
        seen["run_dir"] = run_dir

    thread = watch_run(runs, results_written(2), kill_agent)
    # Returning at all is the point (it used to wait forever); no wall-clock bound is asserted.
    code, out, err = mxlab_cli("run", *direct_args(host), "--zoo", local_zoo, "--model", "efficientnet-lite0",
                               "--results", tmp_path / "results", many)
    thread.join()
    assert seen.get("run_dir"), "the test never saw the agent write a result"
    assert not (seen["run_dir"] / "exit_code").exists()
    assert code == 1
    assert "gone without an exit code" in err and str(seen["run_dir"].name) in err
    assert host.hostspec in err
    records = saved_records(tmp_path / "results")
    assert 2 <= len(records) < 100
    host_summary = summary(tmp_path / "results")[0]
    assert host_summary["status"] == "failed" and host_summary["partial_results"] is True
    assert "%d (partial)" % len(records) in out


def test_model_download_progress_shows_megabytes(sshd_factory, mxlab_cli, local_zoo, sample_photos, serve_zoo,
                                                 monkeypatch, tmp_path):
    host = sshd_factory()  # a fresh home: the model is not cached on it yet
    server = serve_zoo(local_zoo)
    rel = "efficientnet-lite0/efficientnet-lite0-0000.params"
    size = (local_zoo / rel).stat().st_size
    server.add_fault("/" + rel, "truncate", 1, size // 2)  # cut once: a retry, then resumed with Range
    shown = []  # every description the progress bar was given
    update = Progress.update

    def recording(self, task_id, **kw):
        if kw.get("description"):
            shown.append(kw["description"])
        return update(self, task_id, **kw)
    monkeypatch.setattr(Progress, "update", recording)
    code, out, err = mxlab_cli("run", *direct_args(host), "-v", "--zoo", server.url, "--model", "efficientnet-lite0",
                               "--results", tmp_path, sample_photos / "coffee.jpg")
    assert code == 0, err
    mb = "%.1f" % (size / 1e6)  # 18.8: the file's size, not a count of something
    name = "efficientnet-lite0-0000.params"
    bar = [m.groups() for m in (re.match(r"fetch %s ([\d.]+)/([\d.]+) MB \((\d+)%%\)$" % re.escape(name), d)
                                for d in shown) if m]
    assert bar and all(total == mb and float(done) <= float(total) for done, total, _ in bar)
    assert bar[-1] == (mb, mb, "100")
    assert "%.1f" % (size // 2 / 1e6) in [done for done, _, _ in bar]  # resumed where the cut left it
    assert any(d.startswith("retry 1/4 in 0.5 s: body truncated") for d in shown)
    assert "classified 1/1" in shown
    # A log (-v, not a terminal) shows the same lines: the download at its quarters.
    assert "fetch %s %s/%s MB (100%%)" % (name, mb, mb) in err
    assert "resume %s at %.1f MB" % (name, size // 2 / 1e6) in err
    assert top1(saved_records(tmp_path), "coffee.jpg") == "espresso"


def test_plan_uploads_keeps_names_and_numbers_only_collisions(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second, folder = tmp_path / "a" / "x.jpg", tmp_path / "b" / "x.jpg", tmp_path / "a"
    plan = plan_uploads([str(first), "https://h/y.jpg", str(second), str(folder)])
    assert plan == [(first, "inputs/x.jpg", str(first)), (None, "https://h/y.jpg", "https://h/y.jpg"),
                    (second, "inputs/2_x.jpg", str(second)), (folder, "inputs/a", str(folder))]


def test_a_slow_liveness_check_is_neither_a_dropped_connection_nor_a_dead_agent(conda_host):
    from mxlab.lab import targets
    from mxlab.remote.run import RemoteRun, RunSpec
    from mxlab.hosts.session import Session
    target = targets.direct_target(conda_host.hostspec, conda_host.user, conda_host.identity, conda_host.known_hosts)
    with Session(target, timeout=10) as session:
        session.connect(wait_cloud_init=False)
        run = RemoteRun(session, RunSpec(models=["m"], inputs=[]), "slow-liveness", "true", liveness_timeout=1)
        # A pid "file" that is a FIFO: reading it blocks, so the check runs past its deadline.
        session.check("mkdir -p %s && mkfifo %s/pid" % (run.run_dir, run.run_dir), "making the FIFO")
        assert run._agent_alive() is True  # unknown yet: not "gone"
        assert run.reconnects == 0
        assert session.exec("echo still-connected")[1] == "still-connected\n"


def test_start_returns_while_the_agent_still_runs(conda_host):
    """The start command must not hold its SSH channel until the agent ends (progress comes from polling)."""
    from mxlab.lab import targets
    from mxlab.remote.run import RemoteRun, RunSpec
    from mxlab.hosts.session import Session
    target = targets.direct_target(conda_host.hostspec, conda_host.user, conda_host.identity, conda_host.known_hosts)
    go = conda_host.home / "go-ahead"
    with Session(target, timeout=10) as session:
        session.connect(wait_cloud_init=False)
        session.check("mkdir -p %s" % (conda_host.home / ".mxlab-agent"), "making the agent's folder")
        # The "environment" waits for a file that the test writes only once start() has returned.
        run = RemoteRun(session, RunSpec(models=["efficientnet-lite0"], inputs=[]), "start-returns",
                        "while [ ! -e %s ]; do sleep 0.05; done" % go)
        failures = []

        def start():
            try:
                run.start()
            except Exception as exc:  # reported below, not lost in the thread
                failures.append(exc)
        starter = threading.Thread(target=start)
        starter.start()
        starter.join(60)  # a liveness bound only: a blocking start never returns before go-ahead exists
        returned = not starter.is_alive()
        go.write_text("")
        starter.join()
        assert not failures, failures
        assert returned, "start() waited for the agent to finish"
        # Whatever the agent then makes of no environment and no inputs, the run ends with an exit code.
        assert isinstance(run.wait(), int)
        assert (conda_host.home / ".mxlab-agent" / "runs" / "start-returns" / "exit_code").exists()


# A second `mxlab run` of one photo (agent uploaded, environment remembered), counted at the latency relay as
# bench/round_trips.py counts: 8 here (8-9 in the bench) since the run's own command checks cloud-init and what
# readiness checked (host.Prepared: the home, env.sh, one digest of the agent's files) and commands start without
# waiting for the exec answer (10 with a readiness command of its own, 29 before that, 146 while mxlab polled its
# files over SFTP). The margin is one turn of chunking under load; an SFTP session (3 or more) or a command of its
# own (2) goes past it.
MAX_ROUND_TRIPS = 9


def test_a_run_through_the_latency_relay_takes_few_round_trips(sshd_factory, mxlab_cli, local_zoo, sample_photos,
                                                               tmp_path):
    from mxlab.offline.lab_host import free_port
    from mxlab.offline.latency_relay import LatencyNetwork
    host = sshd_factory(conda_envs=("mxnet_p36",), listen_port=free_port())  # host.port: the relay's
    with LatencyNetwork(10) as network:
        network.add("host", (host.address, host.port), (host.address, host.listen_port))

        def run(results):
            code, out, err = mxlab_cli("run", *direct_args(host), "--zoo", local_zoo, "--model", "efficientnet-lite0",
                                       "--results", results, sample_photos / "coffee.jpg")
            assert code == 0, err
            return network.settled()["total"]["round_trips"]  # its connection counted

        before = run(tmp_path / "first")  # uploads the agent, finds the environment, caches the model
        trips = run(tmp_path / "second") - before
    assert top1(saved_records(tmp_path / "second"), "coffee.jpg") == "espresso"
    assert 0 < trips <= MAX_ROUND_TRIPS, "%d round trips for one photo" % trips


def test_a_host_not_as_the_last_run_left_it_is_made_ready_by_the_same_run(conda_host, mxlab_cli, local_zoo,
                                                                          sample_photos, tmp_path):
    """The second run's command checks readiness itself (host.Prepared); an agent file gone from the host, or a
    home that is not the one remembered, fails that check: the run uploads what is missing and runs, as the
    first run did, and the environment's name is the same either way."""
    from mxlab.hosts import home_book
    from mxlab.lab.targets import direct_target

    def run(results):
        code, out, err = mxlab_cli("run", *direct_args(conda_host), "-v", "--zoo", local_zoo, "--model",
                                   "efficientnet-lite0", "--results", results, sample_photos / "coffee.jpg")
        assert code == 0, err
        assert top1(saved_records(results), "coffee.jpg") == "espresso"
        return " ".join(err.split()), summary(results)[0]["environment"]

    first, environment = run(tmp_path / "first")
    assert "agent uploaded" in first and environment == "conda:mxnet_p36"
    said, again = run(tmp_path / "ready")
    assert "agent uploaded" not in said and again == environment  # the check held: no command of its own
    agent_file = conda_host.home / ".mxlab-agent" / "agent" / "zoo.py"
    agent_file.unlink()
    said, again = run(tmp_path / "file-gone")
    assert "agent uploaded 1 file(s)" in said and agent_file.is_file() and again == environment
    target = direct_target(conda_host.hostspec, conda_host.user, conda_host.identity, conda_host.known_hosts)
    home_book.remember(target, "/not/the/home")
    said, again = run(tmp_path / "other-home")
    assert "agent uploaded 0 file(s)" in said and again == environment
    assert home_book.lookup(target) == str(conda_host.home)


def test_a_follow_command_that_says_something_unexpected_falls_back_to_sftp(conda_host, mxlab_cli, local_zoo,
                                                                           sample_photos, monkeypatch, tmp_path):
    from mxlab.remote import run as remote_run
    script = remote_run._START_AND_FOLLOW
    assert script.endswith("echo MXLAB-END")
    monkeypatch.setattr(remote_run, "_START_AND_FOLLOW", script[:-len("MXLAB-END")] + "something-else")
    code, out, err = mxlab_cli("run", *direct_args(conda_host), "-v", "--zoo", local_zoo, "--model",
                               "efficientnet-lite0", "--results", tmp_path, sample_photos / "coffee.jpg")
    assert code == 0, err
    assert "following the agent over SFTP instead" in err
    assert top1(saved_records(tmp_path), "coffee.jpg") == "espresso"
    assert summary(tmp_path)[0]["status"] == "ok"
