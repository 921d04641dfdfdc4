"""The local ports of the attendees' notebook tunnels: one each, kept across handouts, a taken one passed over
(with a real listening socket) and said."""
import socket

from mxlab import notebook_ports


def test_each_attendee_keeps_a_port_of_their_own_and_a_taken_one_is_passed_over_and_said():
    said = []
    first = notebook_ports.assign("lab", [("attendee-1", 1), ("attendee-2", 2)], said.append)
    assert len(set(first.values())) == 2 and said == []
    assert notebook_ports.assign("lab", [("attendee-2", 2), ("attendee-1", 1)], said.append) == first
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", first["attendee-2"]))
        busy.listen(1)
        moved = notebook_ports.assign("lab", [("attendee-2", 2)], said.append)
    assert moved["attendee-2"] not in (first["attendee-2"], first["attendee-1"])
    assert moved["attendee-1"] == first["attendee-1"]
    assert said == ["attendee-2: local port %d is in use here, so the notebook tunnel uses %d (in its ssh_config)"
                    % (first["attendee-2"], moved["attendee-2"])]
    assert notebook_ports.load("lab") == moved
