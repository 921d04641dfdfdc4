"""The one fan-out (mxlab/runs/fanout.py) that run, run --shard and prepare use: bounded parallelism, results in
order, on_done as each item ends, and Ctrl-C (a real SIGINT to the main thread, sent from inside the work as the
operator's key press would arrive mid-run) keeping what finished.
"""
import json
import signal
import threading

import pytest

from mxlab.runs import fanout


def ctrl_c():
    """SIGINT to the main thread (where Python raises KeyboardInterrupt), as a press of Ctrl-C delivers it."""
    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)


def test_results_come_in_order_with_at_most_parallel_at_once_and_on_done_for_each():
    lock, running, most, done = threading.Lock(), [0], [0], []
    two_in = threading.Barrier(2, timeout=30)  # both slots busy at once: the bound is reached, not just kept

    def work(n, stop):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        if n < 2:
            two_in.wait()
        with lock:
            running[0] -= 1
        return n * 10

    results = fanout.fan_out(range(7), work, parallel=2, on_done=lambda n, r: done.append((n, r)))
    assert results == [0, 10, 20, 30, 40, 50, 60]
    assert most[0] == 2
    assert sorted(done) == [(n, n * 10) for n in range(7)]


def test_ctrl_c_stops_the_work_keeps_what_finished_and_names_the_rest():
    seen, on_done = [], []

    def work(name, stop):
        if name == "b":
            ctrl_c()
            assert stop.wait(30), "the work was not told to stop"
            seen.append("b saw stop")
            return None  # stopped before it had a result
        return name.upper()

    with pytest.raises(fanout.FanOutInterrupted) as stopped:
        fanout.fan_out(["a", "b", "c"], work, parallel=1, on_done=lambda n, r: on_done.append(n))
    assert isinstance(stopped.value, KeyboardInterrupt)  # the CLI's exit status 130 stays
    assert stopped.value.results == ["A", None, None]
    assert stopped.value.finished == ["a"] and on_done == ["a"]
    assert stopped.value.unfinished == ["b"] and stopped.value.not_started == ["c"]
    assert seen == ["b saw stop"]


def test_ctrl_c_waits_for_no_host_that_ignores_stop_and_reports_nothing_after():
    release, on_done, hung = threading.Event(), [], []
    on_stop = []

    def work(name, stop):
        if name == "hangs":
            hung.append(threading.current_thread())
            ctrl_c()
            release.wait(60)  # a host that never looks at `stop`
        return name

    with pytest.raises(fanout.FanOutInterrupted) as stopped:
        fanout.fan_out(["hangs", "quick"], work, parallel=2, on_done=lambda n, r: on_done.append(n),
                       on_stop=lambda: on_stop.append(True), grace=0.2)
    assert on_stop == [True]
    assert stopped.value.unfinished == ["hangs"]
    release.set()
    hung[0].join(30)
    assert not hung[0].is_alive()
    assert "hangs" not in on_done, "on_done ran after the fan-out had gone up"


def test_a_bug_in_one_items_work_costs_the_others_nothing_and_is_raised_at_the_end():
    done = []

    def work(n, stop):
        if n == 1:
            raise ValueError("a bug on host 1")
        return n

    with pytest.raises(ValueError, match="a bug on host 1"):
        fanout.fan_out(range(4), work, parallel=2, on_done=lambda n, r: done.append(n))
    assert sorted(done) == [0, 2, 3]


def test_prepare_on_ctrl_c_keeps_the_readiness_of_the_hosts_that_finished(monkeypatch, tmp_path, capsys):
    """`mxlab prepare --all` over two hosts, Ctrl-C while one is still being prepared: exit 130, and prepare.json
    holds the host that finished (the next prepare and `mxlab handout` see it), not the one cut off."""
    from mxlab import cli
    from mxlab.lab.targets import direct_target
    from mxlab.workshop import prepare

    monkeypatch.setenv("MXLAB_HOME", str(tmp_path / "mxlab-home"))
    monkeypatch.setenv("COLUMNS", "200")
    key = tmp_path / "key"
    key.write_text("not used: no host is reached\n")
    hosts = [direct_target("127.0.0.1:%d" % port, "ubuntu", str(key), None) for port in (1, 2)]
    monkeypatch.setattr(cli, "resolve_targets", lambda args, want_many=True: hosts)
    release = threading.Event()

    def prepare_one(target, models, *args, **kw):
        if target is hosts[1]:
            ctrl_c()  # the organiser gives up on the slow host
            release.wait(60)
        return prepare.HostReadiness(label=target.label, address=target.address, ready=True, models=list(models))

    monkeypatch.setattr(prepare, "prepare_one", prepare_one)
    try:
        code = cli.main(["prepare", "--all", "--models", "efficientnet-lite0", "--stack", "lab"])
    finally:
        release.set()
    err = capsys.readouterr().err
    assert code == 130, err
    saved = json.loads((tmp_path / "mxlab-home" / "lab" / prepare.READINESS_FILE).read_text())["hosts"]
    assert list(saved) == [hosts[0].label] and saved[hosts[0].label]["ready"]
    said = " ".join(err.split())
    assert "the readiness of %s is saved" % hosts[0].label in said, said
    assert "%s had not finished" % hosts[1].label in said, said
