"""Persistence benchmark: QoS 1 throughput into a persistent session, per commit policy.

Each target is a broker process of its own on a free port: Roost with ``persistence =
"sqlite"`` and commit policy ``sync``, ``batched`` and ``off`` (a fresh data directory
each), Roost in memory for reference, and Mosquitto with ``persistence true``. A load
driver in this process (asyncio, raw MQTT 3.1.1, no client library) measures:

- ``online``: ``--publishers`` clean-session publishers (10) share ``--messages`` QoS 1
  messages, each with at most ``--window`` (20) unacknowledged, to one subscriber with a
  persistent session (clean session 0) that is connected and acknowledges each one; the
  rate is messages delivered per second, from the first PUBLISH sent to the last one
  received.
- ``offline``: the same publishers, with the subscriber's persistent session offline, so
  every message is queued (and, with Roost's SQLite store, written); the rate is
  PUBACKs per second. Then ``drain``: the subscriber comes back and receives the queue.

With ``sync``, a PUBACK leaves Roost only once the message is committed (fsync); many
messages share one commit, but a publisher waits for each commit once its window is
full, so with few publishers and small windows the rate is bounded by window / commit
latency (``--publishers 1 --window 100`` shows that case). Mosquitto writes its state
only every ``autosave_interval`` (30 minutes by default) and at shutdown, so its
"persistence true" costs it nothing per message: the comparison shows what Roost's
stronger promise costs.

``--mqttload`` is not offered: mqttload always uses clean sessions, which Roost never
writes, so it cannot exercise persistence.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast

HELP = "persistence: QoS 1 throughput to a persistent session, per commit policy and Mosquitto"

TOPIC = b"bench/persistence"
READY_TIMEOUT = 15.0
RUN_TIMEOUT = 120.0

P = TypeVar("P", bound="Peer")


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    kind: str  # "roost" or "mosquitto"
    settings: tuple[str, ...]  # config lines (TOML for Roost, mosquitto.conf otherwise)


def targets(args: argparse.Namespace) -> list[Target]:
    found = [
        Target(
            f"roost {policy}",
            "roost",
            ('persistence = "sqlite"', f'commit_policy = "{policy}"'),
        )
        for policy in args.policies
    ]
    if not args.no_memory:
        found.append(Target("roost memory", "roost", ('persistence = "memory"',)))
    if not args.no_mosquitto and shutil.which(args.mosquitto):
        found.append(Target("mosquitto persistence", "mosquitto", ("persistence true",)))
    return found


# --- brokers -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BrokerProcess:
    def __init__(self, target: Target, workdir: Path, args: argparse.Namespace) -> None:
        self.port = free_port()
        self.workdir = workdir
        queue_limit = args.messages + 1000  # the offline run queues every message
        if target.kind == "roost":
            config = workdir / "roost.toml"
            config.write_text(
                "\n".join(
                    (
                        *target.settings,
                        f'data_dir = "{workdir / "data"}"',
                        f"max_queued_messages = {queue_limit}",
                        "sys_interval = 0",
                    )
                )
                + "\n",
                encoding="utf-8",
            )
            command = [args.roost, "broker", "-c", str(config), "-p", str(self.port)]
        else:
            data = workdir / "data"
            data.mkdir()
            config = workdir / "mosquitto.conf"
            config.write_text(
                "\n".join(
                    (
                        f"listener {self.port} 127.0.0.1",
                        "allow_anonymous true",
                        *target.settings,
                        f"persistence_location {data}/",
                        f"max_queued_messages {queue_limit}",
                        "set_tcp_nodelay true",
                    )
                )
                + "\n",
                encoding="utf-8",
            )
            command = [args.mosquitto, "-c", str(config)]
        self.log = (workdir / "broker.log").open("w")
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"broker exited: see {self.workdir / 'broker.log'}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError("broker did not start listening in time")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


# --- the load driver -----------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(out)


def _string(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


def connect_packet(client_id: str, clean: bool) -> bytes:
    body = _string(b"MQTT") + bytes((4, 0x02 if clean else 0)) + (60).to_bytes(2, "big")
    body += _string(client_id.encode())
    return b"\x10" + _varint(len(body)) + body


def subscribe_packet() -> bytes:
    body = (1).to_bytes(2, "big") + _string(TOPIC) + b"\x01"
    return b"\x82" + _varint(len(body)) + body


class Peer(asyncio.Protocol):
    """A raw MQTT 3.1.1 client: splits packets and hands (type, flags, body) to ``on_packet``."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.connack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.suback: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast("asyncio.Transport", transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        pos = 0
        end = len(buffer)
        while end - pos >= 2:
            length = 0
            shift = 0
            index = pos + 1
            complete = False
            while index < end:
                byte = buffer[index]
                index += 1
                length |= (byte & 0x7F) << shift
                if not byte & 0x80:
                    complete = True
                    break
                shift += 7
            if not complete or end - index < length:
                break
            self.on_packet(buffer[pos] >> 4, buffer[pos] & 0x0F, buffer[index : index + length])
            pos = index + length
        del buffer[:pos]

    def on_packet(self, kind: int, flags: int, body: bytearray) -> None:
        if kind == 2:
            self.connack.set_result(None)
        elif kind == 9:
            self.suback.set_result(None)


class Publisher(Peer):
    def __init__(self, count: int, window: int, payload: bytes) -> None:
        super().__init__()
        self.count = count
        self.window = window
        self.sent = 0
        self.acked = 0
        self.inflight = 0
        self.done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        header = b"\x32" + _varint(2 + len(TOPIC) + 2 + len(payload)) + _string(TOPIC)
        self.header = header
        self.payload = payload

    def start(self) -> None:
        self.fill()

    def fill(self) -> None:
        assert self.transport is not None
        chunks = []
        header = self.header
        payload = self.payload
        while self.inflight < self.window and self.sent < self.count:
            self.sent += 1
            self.inflight += 1
            chunks.append(header + ((self.sent - 1) % 65535 + 1).to_bytes(2, "big") + payload)
        if chunks:
            self.transport.write(b"".join(chunks))

    def on_packet(self, kind: int, flags: int, body: bytearray) -> None:
        if kind == 4:  # PUBACK
            self.acked += 1
            self.inflight -= 1
            if self.acked == self.count:
                if not self.done.done():
                    self.done.set_result(time.perf_counter())
            else:
                self.fill()
        else:
            super().on_packet(kind, flags, body)


class Subscriber(Peer):
    def __init__(self, expected: int) -> None:
        super().__init__()
        self.expected = expected
        self.received = 0
        self.done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        if not expected:
            self.done.set_result(time.perf_counter())

    def on_packet(self, kind: int, flags: int, body: bytearray) -> None:
        if kind == 3:  # PUBLISH, QoS 1
            topic_length = int.from_bytes(body[:2], "big")
            packet_id = body[2 + topic_length : 4 + topic_length]
            assert self.transport is not None
            self.transport.write(b"\x40\x02" + packet_id)
            self.received += 1
            if self.received == self.expected and not self.done.done():
                self.done.set_result(time.perf_counter())
        else:
            super().on_packet(kind, flags, body)


async def open_peer(port: int, factory: Callable[[], P], client_id: str, clean: bool) -> P:
    loop = asyncio.get_running_loop()
    transport, peer = await loop.create_connection(factory, "127.0.0.1", port)
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    transport.write(connect_packet(client_id, clean))
    await asyncio.wait_for(peer.connack, READY_TIMEOUT)
    return peer


async def close_peer(peer: Peer) -> None:
    assert peer.transport is not None
    peer.transport.write(b"\xe0\x00")  # DISCONNECT
    peer.transport.close()
    await asyncio.wait_for(peer.closed, READY_TIMEOUT)


async def open_publishers(port: int, args: argparse.Namespace) -> list[Publisher]:
    """``--publishers`` clean-session publishers sharing ``--messages`` between them."""
    share, extra = divmod(args.messages, args.publishers)
    payload = bytes(args.payload)
    publishers = []
    for n in range(args.publishers):
        count = share + (n < extra)
        publishers.append(
            await open_peer(
                port,
                functools.partial(Publisher, count, args.window, payload),
                f"bench-pub-{n}",
                clean=True,
            )
        )
    return publishers


@dataclass(slots=True)
class Rates:
    online: float
    offline: float
    drain: float


async def measure(port: int, args: argparse.Namespace) -> Rates:
    count = args.messages
    # A persistent session for the subscriber, subscribed at QoS 1.
    setup = await open_peer(port, lambda: Subscriber(0), "bench-sub", clean=False)
    assert setup.transport is not None
    setup.transport.write(subscribe_packet())
    await asyncio.wait_for(setup.suback, READY_TIMEOUT)
    await close_peer(setup)

    # Online: the subscriber is connected and acknowledges as messages arrive.
    subscriber = await open_peer(port, lambda: Subscriber(count), "bench-sub", clean=False)
    publishers = await open_publishers(port, args)
    started = time.perf_counter()
    for publisher in publishers:
        publisher.start()
    finished = await asyncio.wait_for(subscriber.done, RUN_TIMEOUT)
    for publisher in publishers:
        await asyncio.wait_for(publisher.done, RUN_TIMEOUT)
        await close_peer(publisher)
    online = count / (finished - started)
    await close_peer(subscriber)

    # Offline: every message is queued in the absent subscriber's session.
    publishers = await open_publishers(port, args)
    started = time.perf_counter()
    for publisher in publishers:
        publisher.start()
    finished = max(
        [await asyncio.wait_for(publisher.done, RUN_TIMEOUT) for publisher in publishers]
    )
    offline = count / (finished - started)
    for publisher in publishers:
        await close_peer(publisher)

    # Drain: the subscriber comes back for its queue.
    started = time.perf_counter()
    subscriber = await open_peer(port, lambda: Subscriber(count), "bench-sub", clean=False)
    finished = await asyncio.wait_for(subscriber.done, RUN_TIMEOUT)
    drain = count / (finished - started)
    await close_peer(subscriber)
    return Rates(online, offline, drain)


def run_target(target: Target, args: argparse.Namespace) -> Rates:
    with tempfile.TemporaryDirectory(prefix="roost-bench-") as tmp:
        broker = BrokerProcess(target, Path(tmp), args)
        try:
            return _run_loop(measure(broker.port, args))
        finally:
            broker.stop()


def _run_loop(coro: object) -> Rates:
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:
        factory = None
    else:
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        result: Rates = runner.run(coro)  # type: ignore[arg-type]
        return result


# --- the command ---------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--messages", type=int, default=50_000, help="messages per run")
    parser.add_argument("--payload", type=int, default=64, help="payload bytes")
    parser.add_argument(
        "--publishers", type=int, default=10, help="publishers sharing the messages (10)"
    )
    parser.add_argument(
        "--window", type=int, default=20, help="unacknowledged PUBLISHes per publisher (20)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per target (median)")
    parser.add_argument(
        "--policies",
        type=lambda text: text.split(","),
        default=["sync", "batched", "off"],
        help="comma-separated commit policies (default: sync,batched,off)",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip Roost in memory")
    parser.add_argument("--no-mosquitto", action="store_true", help="skip Mosquitto")
    parser.add_argument("--mosquitto", default="mosquitto", help="the mosquitto executable")
    parser.add_argument(
        "--roost",
        default=str(Path(sys.executable).parent / "roost"),
        help="the roost executable",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")


def run(args: argparse.Namespace) -> int:
    print(
        f"persistence: {args.messages} QoS 1 messages of {args.payload} bytes from "
        f"{args.publishers} publishers, each with at most {args.window} unacknowledged, "
        f"median of {args.repeat} runs; "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()}"
    )
    results: dict[str, Rates] = {}
    for target in targets(args):
        runs = [run_target(target, args) for _ in range(args.repeat)]
        rates = Rates(
            statistics.median(r.online for r in runs),
            statistics.median(r.offline for r in runs),
            statistics.median(r.drain for r in runs),
        )
        results[target.name] = rates
        print(
            f"  {target.name:<24} online {rates.online:>9,.0f} msg/s   offline "
            f"{rates.offline:>9,.0f} msg/s   drain {rates.drain:>9,.0f} msg/s",
            flush=True,
        )
    print()
    print(table(results))
    if args.json:
        Path(args.json).write_text(
            json.dumps({name: vars_of(rates) for name, rates in results.items()}, indent=2),
            encoding="utf-8",
        )
    return 0


def vars_of(rates: Rates) -> dict[str, float]:
    return {"online": rates.online, "offline": rates.offline, "drain": rates.drain}


def table(results: dict[str, Rates]) -> str:
    """A Markdown table of the rates, with each one's ratio to ``roost off``."""
    base = results.get("roost off")
    lines = [
        "| target | online msg/s | offline msg/s | drain msg/s | online vs off | offline vs off |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, rates in results.items():
        ratio_online = f"{rates.online / base.online:.2f}" if base else "-"
        ratio_offline = f"{rates.offline / base.offline:.2f}" if base else "-"
        lines.append(
            f"| {name} | {rates.online:,.0f} | {rates.offline:,.0f} | {rates.drain:,.0f} "
            f"| {ratio_online} | {ratio_offline} |"
        )
    return "\n".join(lines)
