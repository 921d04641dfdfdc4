"""Fixtures that start real HTTP servers on 127.0.0.1 (see mxlab/offline/zoo_server.py)."""
import socket

import pytest

from mxlab.offline.zoo_server import ZooServer


@pytest.fixture
def serve_zoo():
    """Start a ZooServer for a directory: ``server = serve_zoo(path)``; stopped after the test."""
    servers = []

    def start(directory):
        server = ZooServer(str(directory)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def closed_port():
    """A 127.0.0.1 port with nothing listening (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
