"""mxlab.remote.agent_events: the agent's event log folded into what the operator sees (pure)."""
import json

from agent import contract
from mxlab.remote.agent_events import AgentLog, describe


def line(kind, **fields):
    return (contract.encode(contract.event(kind, **fields)) + "\n").encode()


def test_download_shows_megabytes_with_one_decimal_and_percent():
    evt = contract.event("fetch", model="m", file="m-0000.params", bytes=3_200_000, total=18_600_000)
    assert describe(evt) == "fetch m-0000.params 3.2/18.6 MB (17%)"
    evt = contract.event("fetch", model="m", file="m-0000.params", bytes=18_600_000, total=18_600_000)
    assert describe(evt) == "fetch m-0000.params 18.6/18.6 MB (100%)"
    unknown = contract.event("fetch", model="m", file="f", bytes=1_000_000, total=None)
    assert describe(unknown) == "fetch f 1.0 MB"
    retry = contract.event("retry", url="http://z/f", attempt=1, of=4, error="HTTP 503 x", delay=0.5)
    assert describe(retry) == "retry 1/4 in 0.5 s: HTTP 503 x"


def test_lines_split_anywhere_even_inside_a_character_are_put_together():
    data = (b"activating env\n" + line("classify", models=["m"], inputs=2, device="cpu(0)")
            + line("image", done=1, total=2, input="caf\u00e9.jpg")
            + line("warning", message="slow zoo") + line("image", done=2, total=2, input="b.jpg")
            + line("done", results=2, errors=0, exit=0))
    log = AgentLog()
    seen = []
    for i in range(0, len(data), 7):  # 7-byte reads: lines and the two-byte é are cut
        seen += log.feed(data[i:i + 7])
    assert [e["event"] for e in seen] == ["classify", "image", "warning", "image", "done"]
    assert seen[1]["input"] == "caf\u00e9.jpg"
    assert (log.done, log.total) == (2, 2)
    assert log.finished == {"event": "done", "results": 2, "errors": 0, "exit": 0}
    assert log.message == "agent done: 2 result(s), 0 error(s), exit 0"
    assert list(log.tail) == ["activating env", "warning: slow zoo"]


def test_failure_prefers_the_agents_error_events_over_other_text():
    log = AgentLog()
    log.feed(b"bash: conda: command not found\n")
    assert log.failure() == "bash: conda: command not found"
    log.feed(line("log", message="Traceback ...") + line("error", message="cannot fetch x: HTTP 404")
             + b'{"event": "image", "done"')  # a line cut by a kill stays pending, not an event
    assert log.failure() == "cannot fetch x: HTTP 404"
    assert log.errors == ["cannot fetch x: HTTP 404"]
    assert json.loads(line("done", results=0, errors=0, exit=1))["exit"] == 1


def test_each_event_is_seen_with_the_progress_of_its_own_moment():
    seen = []
    log = AgentLog(on_event=lambda evt: seen.append((log.done, log.total, log.message)))
    log.feed(line("classify", models=["m"], inputs=2, device="cpu(0)")
             + line("fetch", model="m", file="p", bytes=0, total=2_000_000)
             + line("fetch", model="m", file="p", bytes=2_000_000, total=2_000_000)
             + line("image", done=1, total=2, input="a") + line("image", done=2, total=2, input="b"))
    assert seen == [(0, 2, "2 input(s), m on cpu(0)"), (0, 2, "fetch p 0.0/2.0 MB (0%)"),
                    (0, 2, "fetch p 2.0/2.0 MB (100%)"), (1, 2, "classified 1/2"), (2, 2, "classified 2/2")]
