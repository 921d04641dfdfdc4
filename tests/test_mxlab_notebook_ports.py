"""The local ports of the attendees' notebook tunnels: one each, kept across handouts, a taken one passed over
(with a real listening socket) and said."""
import socket

import pytest

from mxlab.workshop import notebook_ports


def free_base():
    """A BASE whose attendee 1 and 2 ports (and the next two) nothing on this machine holds now."""
    base = notebook_ports.BASE
    while any(notebook_ports.in_use(base + n) for n in range(1, 5)):
        base += 10
    return base


def test_each_attendee_keeps_a_port_of_their_own_and_a_taken_one_is_passed_over_and_said(monkeypatch):
    monkeypatch.setattr(notebook_ports, "BASE", free_base())
    said = []
    first = notebook_ports.assign("lab", [("attendee-1", 1), ("attendee-2", 2)], said.append)
    assert first == {"attendee-1": notebook_ports.BASE + 1, "attendee-2": notebook_ports.BASE + 2} and said == []
    assert notebook_ports.assign("lab", [("attendee-2", 2), ("attendee-1", 1)], said.append) == first
    with socket.socket() as busy:
        # as ssh's LocalForward listens: a plain bind fails on a TIME_WAIT an earlier test's tunnel left there
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", first["attendee-2"]))
        busy.listen(1)
        moved = notebook_ports.assign("lab", [("attendee-2", 2)], said.append)
    assert moved["attendee-2"] not in (first["attendee-2"], first["attendee-1"])
    assert moved["attendee-1"] == first["attendee-1"]
    assert said == ["attendee-2: local port %d is in use here, so the notebook tunnel uses %d (in its ssh_config)"
                    % (first["attendee-2"], moved["attendee-2"])]
    assert notebook_ports.load("lab") == moved


def test_a_port_whose_last_connection_lingers_in_time_wait_is_free_as_ssh_sees_it():
    """A tunnel closed a moment ago leaves its port's connections in TIME_WAIT for a minute: ssh (SO_REUSEADDR)
    listens there again, so a handout written right after must not move the attendee's port."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as ssh's LocalForward listener
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()  # the listening side closes first, as ssh does: its end waits in TIME_WAIT
        client.recv(1)
        client.close()
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))  # without SO_REUSEADDR the lingering connection blocks the bind
    assert not notebook_ports.in_use(port)
