"""The sandbox's modelled network (mxlab/offline/latency_relay.py, `mxlab sandbox --rtt MS`): the relay adds
the round-trip time it was given (a lower bound on a delay the test injected, never a speed assertion),
carries bytes intact and in order under load, counts the conversation's turns, drops what it relayed when
an instance stops; and `mxlab run` works unchanged through a sandbox behind it, stop/start included."""
import json
import os
import re
import socket
import socketserver
import threading
import time
from pathlib import Path

import pytest

from mxlab.offline import REPO_ROOT
from mxlab.offline.latency_relay import LatencyNetwork
from mxlab.offline.sandbox import build_parser
from tests.fixtures_sandbox import port_open

PHOTO = str(REPO_ROOT / "build" / "photos" / "chelsea.jpg")


class _Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)


@pytest.fixture
def echo_server():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address
    server.shutdown()
    server.server_close()


@pytest.fixture
def network_factory():
    made = []

    def make(rtt_ms, bandwidth_mbit=None):
        network = LatencyNetwork(rtt_ms, bandwidth_mbit)
        made.append(network)
        return network

    yield make
    for network in made:
        network.close()


def recv_exactly(sock, size):
    got = bytearray()
    while len(got) < size:
        chunk = sock.recv(min(65536, size - len(got)))
        if not chunk:
            raise AssertionError("connection ended after %d of %d bytes" % (len(got), size))
        got += chunk
    return bytes(got)


def test_each_round_trip_through_the_relay_costs_at_least_the_rtt(network_factory, echo_server):
    network = network_factory(80)
    address = network.add("echo", ("127.0.0.1", 0), echo_server)
    began = time.monotonic()
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(b"hello")
        assert recv_exactly(sock, 5) == b"hello"
        # the handshake's round trip, then the request's: the first answer comes two RTTs after connecting
        assert time.monotonic() - began >= 2 * 0.080
        for size in (1, 1000, 200000):
            sent = time.monotonic()
            sock.sendall(b"x" * size)
            assert recv_exactly(sock, size) == b"x" * size
            assert time.monotonic() - sent >= 0.080, size


def test_bytes_arrive_intact_and_in_order_under_load(network_factory, echo_server):
    network = network_factory(20)
    address = network.add("echo", ("127.0.0.1", 0), echo_server)
    payloads = [os.urandom(3 * 1024 * 1024 + n * 7919) for n in range(4)]
    received, errors = {}, []

    def converse(n):
        try:
            with socket.create_connection(address, timeout=30) as sock:
                data = payloads[n]

                def send():  # uneven writes, as a real client's are
                    offset, step = 0, 1
                    while offset < len(data):
                        sock.sendall(data[offset:offset + step])
                        offset += step
                        step = step * 3 % 150001 + 1
                    sock.shutdown(socket.SHUT_WR)
                sender = threading.Thread(target=send)
                sender.start()
                got = bytearray()
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    got += chunk
                sender.join()
                received[n] = bytes(got)
        except Exception as exc:  # reported below, with the connection's number
            errors.append((n, exc))

    threads = [threading.Thread(target=converse, args=(n,)) for n in range(len(payloads))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    for n, data in enumerate(payloads):
        assert received[n] == data, "connection %d: %d bytes back of %d, or out of order" % (
            n, len(received[n]), len(data))
    # The client sees the end as soon as the relay passes the server's FIN on; the relay counts the connection
    # closed a moment later, once its other direction is done too.
    total = network.settled(30)["total"]
    assert total["connections"] == 4 and total["open"] == 0
    assert total["bytes_up"] == total["bytes_down"] == sum(len(p) for p in payloads)


def test_a_bandwidth_paces_the_bytes(network_factory, echo_server):
    network = network_factory(0, bandwidth_mbit=16)  # 2 MB/s each way
    address = network.add("echo", ("127.0.0.1", 0), echo_server)
    data = os.urandom(1024 * 1024)
    with socket.create_connection(address, timeout=30) as sock:
        began = time.monotonic()
        sender = threading.Thread(target=sock.sendall, args=(data,))
        sender.start()
        assert recv_exactly(sock, len(data)) == data
        sender.join()
        assert time.monotonic() - began >= len(data) * 8 / 16e6  # 0.52 s: what 1 MiB takes at 16 Mbit/s


def test_round_trips_are_counted_per_turn_of_the_conversation(network_factory, echo_server):
    network = network_factory(0)
    address = network.add("echo", ("127.0.0.1", 0), echo_server)
    with socket.create_connection(address, timeout=10) as sock:
        for _ in range(7):
            sock.sendall(b"ping")
            recv_exactly(sock, 4)
    counts = network.settled()["relays"]["echo"]
    assert counts["connections"] == 1 and counts["open"] == 0
    assert counts["turns"] == 7 and counts["round_trips"] == 8  # the handshake counts as one
    assert counts["bytes_up"] == counts["bytes_down"] == 28


def test_removing_a_relay_drops_its_connections_and_listener_and_keeps_its_counts(network_factory, echo_server):
    network = network_factory(10)
    address = network.add("instance", ("127.0.0.1", 0), echo_server)
    sock = socket.create_connection(address, timeout=10)
    sock.sendall(b"ping")
    recv_exactly(sock, 4)
    network.remove("instance")
    try:
        assert sock.recv(10) == b"", "the relayed connection ended"
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    assert not port_open(*address)
    assert network.stats()["total"]["turns"] == 1 and network.stats()["relays"] == {}


def test_the_sandbox_options_are_checked_naming_them(capsys):
    for argv, named in ((["--rtt", "-1"], "--rtt"), (["--rtt", "soon"], "--rtt"), (["--rtt", "99999"], "--rtt"),
                        (["--bandwidth", "0"], "--bandwidth")):
        with pytest.raises(SystemExit):
            build_parser().parse_args(argv)
        assert "argument %s" % named in capsys.readouterr().err
    args = build_parser().parse_args(["--rtt", "50", "--bandwidth", "20"])
    assert (args.rtt, args.bandwidth) == (50.0, 20.0)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_mxlab_run_works_unchanged_through_a_50ms_sandbox_with_a_stop_and_start(sandbox_factory, tmp_path):
    box = sandbox_factory("--attendees", "1", "--rtt", "50").wait_ready()
    counts_file = Path(box.variables["MXLAB_SANDBOX_ROUND_TRIPS"])
    ec2, iid = box.client("ec2"), box.outputs()["Attendee1InstanceId"]
    port = int(box.variables["MXLAB_SSH_PORT"])

    def public_ip():
        (res,) = ec2.describe_instances(InstanceIds=[iid])["Reservations"]
        return res["Instances"][0].get("PublicIpAddress")

    def run():
        done = box.mxlab("run", "--attendee", "1", "--model", "efficientnet-lite0", "--results", tmp_path, PHOTO)
        assert done.returncode == 0, done.stdout + done.stderr
        assert re.search(r"attendee-1 .* ok ", done.stdout), done.stdout
        return done

    def relayed(name):
        return json.loads(counts_file.read_text())["relays"][name]

    run()
    first_ip = public_ip()
    assert relayed(iid)["round_trips"] > 1 and relayed(iid)["bytes_down"] > 0, "the run went through the relay"
    assert relayed("aws-api")["connections"] >= 1, "the exported endpoint is the API's relay"
    api = relayed("aws-api")
    assert box.variables["AWS_ENDPOINT_URL"] == "http://" + api["listen"] and api["target"] != api["listen"]
    assert relayed(iid)["listen"] == "%s:%d" % (first_ip, port), "the instance's public address is its relay"
    assert relayed(iid)["target"] != relayed(iid)["listen"], "its sshd listens behind the relay"

    ec2.stop_instances(InstanceIds=[iid])
    assert not port_open(first_ip, port), "a stopped instance is not reachable through its relay"
    ec2.start_instances(InstanceIds=[iid])
    second_ip = public_ip()
    assert second_ip != first_ip and port_open(second_ip, port)
    before = relayed(iid)["round_trips"]
    done = run()
    assert second_ip in done.stdout
    assert relayed(iid)["round_trips"] > before, "the restarted instance is reached through its relay"

