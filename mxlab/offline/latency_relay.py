"""A delaying TCP relay on loopback: the sandbox's stand-in for the network between an organiser's laptop and
the region (`mxlab sandbox --rtt MS [--bandwidth MBIT]`).

Each relay listens on one loopback address and forwards every connection to one target (an instance's sshd,
the AWS API emulator). What it models, per connection:
- the TCP handshake costs one RTT: the client's first byte leaves no earlier than one RTT after it connected;
- every chunk read from one side reaches the other half an RTT later, in order, in each direction on its own,
  so a request and its answer cost at least one RTT however they are split into chunks;
- with a bandwidth, each direction is a link shared by every connection of the network (the laptop's uplink
  and downlink): a chunk of n bytes occupies it n*8/bandwidth seconds before its half-RTT starts; what waits
  to be delivered is bounded, so a fast sender is held back as TCP's window would;
- an end (EOF) travels like data; a reset, or the relay closing (the instance stopped), drops the connection.

It counts, per relay and in all: connections, bytes each way, and round trips, a round trip being each turn
of the conversation from client-speaks to server-answers (a server chunk read after client bytes), plus one
per connection for the handshake. Pipelined requests answered while more are sent can add turns that a
client does not wait for, so the count is an upper bound on the waits.

All relays of a network share one asyncio loop on a daemon thread; add/remove/stats are thread-safe (the
emulator's request threads call them when an instance stops or starts).

Standalone: `python -m mxlab.offline.latency_relay --listen 127.0.0.1:2222 --to 127.0.0.1:22 --rtt 50`.
"""
import argparse
import asyncio
import json
import os
import signal
import sys
import threading
import time

from mxlab import status_codes

# What may wait in one direction of one connection before the relay stops reading that side (its TCP
# window): at least this, and at least twice the bandwidth-delay product.
MIN_BUFFER_BYTES = 1 << 20
CHUNK_BYTES = 64 * 1024
MAX_RTT_MS = 10000


def check_rtt(rtt_ms):
    if rtt_ms is None or not 0 <= rtt_ms <= MAX_RTT_MS:
        raise ValueError("--rtt: expected a round-trip time 0..%d ms, got %r" % (MAX_RTT_MS, rtt_ms))
    return rtt_ms


def check_bandwidth(mbit):
    if mbit is not None and not mbit > 0:
        raise ValueError("--bandwidth: expected a positive number of Mbit/s, got %r" % (mbit,))
    return mbit


class _Link:
    """One direction of the network: when it is next free to carry bytes (bandwidth pacing)."""

    def __init__(self, bytes_per_s):
        self.bytes_per_s = bytes_per_s
        self.free_at = 0.0

    def sent_by(self, now, size):
        """When a chunk of `size` bytes handed over at `now` has left (now, without a bandwidth)."""
        if not self.bytes_per_s or not size:
            return now
        self.free_at = max(now, self.free_at) + size / self.bytes_per_s
        return self.free_at


class _Counts:
    def __init__(self):
        self.connections = 0
        self.open = 0
        self.turns = 0
        self.bytes_up = 0
        self.bytes_down = 0

    def as_dict(self):
        return {"connections": self.connections, "open": self.open, "turns": self.turns,
                "round_trips": self.connections + self.turns, "bytes_up": self.bytes_up,
                "bytes_down": self.bytes_down}


class _Relay:
    def __init__(self, network, name, listen, target):
        self.network = network
        self.name = name
        self.listen = listen
        self.target = target
        self.counts = _Counts()
        self.server = None
        self.connections = set()


class LatencyNetwork:
    """The relays between the operator and the lab, delaying by `rtt_ms` (0: no delay, still counted) and,
    with `bandwidth_mbit`, pacing bytes. `on_change(stats)` hears the counts when a connection opens or ends
    (the sandbox writes them to a file for the bench)."""

    def __init__(self, rtt_ms, bandwidth_mbit=None, on_change=None):
        self.rtt = check_rtt(rtt_ms) / 1000.0
        self.bandwidth_mbit = check_bandwidth(bandwidth_mbit)
        rate = bandwidth_mbit * 1e6 / 8 if bandwidth_mbit else None
        self.buffer_bytes = max(MIN_BUFFER_BYTES, int(2 * (rate or 0) * self.rtt))
        self.up, self.down = _Link(rate), _Link(rate)
        self.on_change = on_change or (lambda stats: None)
        self.relays = {}
        self._retired = _Counts()  # what removed relays counted
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mxlab-latency-relay", daemon=True)
        self._thread.start()

    # ---- thread-safe API ------------------------------------------------------------------
    def _call(self, coroutine, timeout=30):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def add(self, name, listen, target):
        """Listen on listen=(address, port) (port 0: a free one), forwarding to target=(address, port);
        returns the (address, port) listened on. A name already relayed is replaced."""
        self.remove(name)
        relay = _Relay(self, name, listen, tuple(target))
        self._call(self._start(relay))
        with self._lock:
            self.relays[name] = relay
        return relay.listen

    def remove(self, name):
        """Stop relaying `name`: no more listener, its connections dropped (what an instance stop does)."""
        with self._lock:
            relay = self.relays.pop(name, None)
        if relay is None:
            return
        self._call(self._stop(relay))
        with self._lock:
            for key, value in relay.counts.as_dict().items():
                if key not in ("round_trips", "open"):
                    setattr(self._retired, key, getattr(self._retired, key) + value)
        self._changed()

    def stats(self):
        """{"rtt_ms", "bandwidth_mbit", "total": counts, "relays": {name: counts, listen, target}}; counts:
        connections, open, turns, round_trips, bytes_up, bytes_down."""
        with self._lock:
            relays = {name: dict(relay.counts.as_dict(), listen="%s:%d" % tuple(relay.listen),
                                 target="%s:%d" % tuple(relay.target)) for name, relay in self.relays.items()}
            total = self._retired.as_dict()
        for counts in relays.values():
            for key in total:
                total[key] += counts[key]
        total["round_trips"] = total["connections"] + total["turns"]
        return {"rtt_ms": self.rtt * 1000.0, "bandwidth_mbit": self.bandwidth_mbit, "total": total,
                "relays": relays}

    def settled(self, timeout=10):
        """stats() once no relayed connection is open (or after `timeout` s): a client sees its connection end
        a moment before the relay counts it closed, once the relay's other direction is done too."""
        deadline = time.monotonic() + timeout
        while self.stats()["total"]["open"] and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.stats()

    def close(self):
        for name in list(self.relays):
            self.remove(name)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- on the loop ------------------------------------------------------------------------
    def _changed(self):
        try:
            self.on_change(self.stats())
        except Exception as exc:  # a failing observer must not break the relay
            print("latency relay: recording its counts failed: %s" % exc, file=sys.stderr)

    async def _start(self, relay):
        relay.server = await asyncio.start_server(lambda r, w: self._serve(relay, r, w), relay.listen[0],
                                                  relay.listen[1], reuse_address=True)
        relay.listen = relay.server.sockets[0].getsockname()[:2]

    async def _stop(self, relay):
        relay.server.close()
        for task in list(relay.connections):
            task.cancel()
        if relay.connections:
            await asyncio.wait(list(relay.connections), timeout=10)
        await relay.server.wait_closed()

    async def _serve(self, relay, client_reader, client_writer):
        task = asyncio.current_task()
        relay.connections.add(task)
        loop = asyncio.get_running_loop()
        connected = loop.time()
        relay.counts.connections += 1
        relay.counts.open += 1
        self._changed()
        server_writer = None
        try:
            await asyncio.sleep(self.rtt / 2)  # the SYN travels to the server
            try:
                server_reader, server_writer = await asyncio.open_connection(*relay.target)
            except OSError:
                return  # nothing listens there (a stopping instance): the client sees the connection end
            state = {"last": None}
            directions = [
                asyncio.ensure_future(self._direction(relay, state, "up", client_reader, server_writer,
                                                      not_before=connected + self.rtt)),
                asyncio.ensure_future(self._direction(relay, state, "down", server_reader, client_writer,
                                                      not_before=0.0))]
            try:
                # Both ends done, or one side reset (the other is dropped below).
                await asyncio.wait(directions, return_when=asyncio.FIRST_EXCEPTION)
            finally:
                for direction in directions:
                    direction.cancel()
                for direction in directions:
                    try:
                        await direction
                    except (asyncio.CancelledError, ConnectionError, OSError):
                        pass
        except asyncio.CancelledError:
            # Dropped by remove()/close(): end as a finished task. asyncio's stream callback asks a cancelled
            # one for its exception and logs "Exception in callback" with a traceback at every teardown.
            pass
        finally:
            for writer in (client_writer, server_writer):
                if writer is not None:
                    writer.transport.abort()
            relay.counts.open -= 1
            relay.connections.discard(task)
            self._changed()

    async def _direction(self, relay, state, which, reader, writer, not_before):
        """Carry one direction: read chunks as they come, deliver each half an RTT after it left."""
        loop = asyncio.get_running_loop()
        link = self.up if which == "up" else self.down
        queue = asyncio.Queue()
        room = asyncio.Event()
        room.set()
        waiting = [0]

        async def deliver():
            while True:
                due, data = await queue.get()
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
                waiting[0] -= len(data)
                if waiting[0] < self.buffer_bytes:
                    room.set()

        delivering = asyncio.ensure_future(deliver())
        try:
            while True:
                await room.wait()
                data = await reader.read(CHUNK_BYTES)
                now = max(loop.time(), not_before)
                if data:
                    if which == "up":
                        relay.counts.bytes_up += len(data)
                    else:
                        relay.counts.bytes_down += len(data)
                        if state["last"] == "up":
                            relay.counts.turns += 1
                    state["last"] = which
                    waiting[0] += len(data)
                    if waiting[0] >= self.buffer_bytes:
                        room.clear()
                queue.put_nowait((link.sent_by(now, len(data)) + self.rtt / 2, data))
                if not data:
                    break
            await delivering
        finally:
            delivering.cancel()


def _address(text):
    host, _, port = text.rpartition(":")
    try:
        return host or "127.0.0.1", int(port)
    except ValueError:
        raise argparse.ArgumentTypeError("expected ADDRESS:PORT, got %r" % text)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m mxlab.offline.latency_relay", description=__doc__.splitlines()[0])
    p.add_argument("--listen", type=_address, required=True, metavar="ADDRESS:PORT")
    p.add_argument("--to", type=_address, required=True, metavar="ADDRESS:PORT")
    p.add_argument("--rtt", type=float, required=True, metavar="MS")
    p.add_argument("--bandwidth", type=float, metavar="MBIT")
    p.add_argument("--stats", metavar="FILE", help="keep the counts in this JSON file")
    args = p.parse_args(argv)
    for address in (args.listen[0], args.to[0]):
        if not address.startswith("127."):
            p.error("loopback addresses only (127.0.0.0/8), got %s" % address)
    try:
        check_rtt(args.rtt)
        check_bandwidth(args.bandwidth)
    except ValueError as exc:
        p.error(str(exc))

    def record(stats):
        if args.stats:
            write_stats(args.stats, stats)

    network = LatencyNetwork(args.rtt, args.bandwidth, on_change=record)
    listened = network.add("relay", args.listen, args.to)
    print("%s:%d -> %s:%d, rtt %g ms" % (listened[0], listened[1], args.to[0], args.to[1], args.rtt), flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    network.close()
    return status_codes.SUCCESS


def write_stats(path, stats):
    """The counts as JSON, replaced atomically (a reader never sees half a file)."""
    temporary = "%s.%d.tmp" % (path, os.getpid())
    with open(temporary, "w") as fh:
        json.dump(dict(stats, written=time.time()), fh, sort_keys=True)
    os.replace(temporary, str(path))


if __name__ == "__main__":
    sys.exit(main())
