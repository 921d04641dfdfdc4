"""agent.contract: the one definition of events, exit codes and the remote layout that both sides read."""
import json

import pytest

from agent import contract


def test_event_fields_are_exactly_the_documented_ones_in_order():
    evt = contract.event("fetch", total=10, bytes=4, file="f.params", model="m")
    assert list(evt) == ["event", "model", "file", "bytes", "total"]
    assert json.loads(contract.encode(evt)) == {"event": "fetch", "model": "m", "file": "f.params", "bytes": 4,
                                                "total": 10}
    with pytest.raises(ValueError, match="takes model, file, bytes, total"):
        contract.event("fetch", model="m", file="f", bytes=1)
    with pytest.raises(ValueError, match="unknown event 'nope'"):
        contract.event("nope")


def test_parse_takes_events_and_refuses_everything_else():
    line = contract.encode(contract.event("image", done=1, total=2, input="a.jpg"))
    assert contract.parse(line + "\n") == {"event": "image", "done": 1, "total": 2, "input": "a.jpg"}
    for other in ("", "conda: activating mxnet_p36", '{"event": "image", "done": 1', '{"event": "other"}',
                  "[1, 2]", '{"no": "event"}'):
        assert contract.parse(other) is None, other


def test_exit_meanings_and_signals():
    assert contract.exit_meaning(contract.EXIT_SOME_FAILED).startswith("some inputs failed")
    assert contract.exit_meaning(143) == "ended by signal 15"
    assert contract.exit_meaning(42) == "unexpected exit status"


def test_results_temp_prefix_is_the_one_the_writer_uses(tmp_path):
    import os

    from agent.results import ResultWriter
    writer = ResultWriter(str(tmp_path / contract.RESULTS_FILE))
    try:
        [temp] = os.listdir(str(tmp_path))
        assert temp.startswith(contract.results_temp_prefix(contract.RESULTS_FILE))
    finally:
        writer.close()
