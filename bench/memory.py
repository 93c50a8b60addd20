"""Memory benchmark: bytes per idle connection and per offline persistent session.

One broker process at a time, on a free port: ``roost`` (state in memory), ``roost-cluster``
(``[cluster]`` on, joined to a nats-server this command starts) and ``mosquitto``.
The connections are opened by this process itself as raw MQTT 3.1.1 over asyncio, so
nothing but the broker under test grows.

* **idle**: connections with keep-alive 0 that send nothing after CONNECT (and, with
  ``--subscribe``, one SUBSCRIBE to a topic of their own each: on a cluster node that
  is one NATS subscription and one interest record per connection). Opened in steps
  (``--idle 1000,5000,10000``); at 0 and after each step the broker's VmRSS is read
  once it has settled. Bytes per connection = the slope from 0 to the last step.
* **sessions**: clients connect with clean session 0, subscribe to a topic of their own
  at QoS 1 and disconnect, leaving one offline session each (``--sessions``). Roost
  keeps them in SQLite here (``--data-dir`` of a temporary directory, the default for
  ``roost broker``), so both the RSS and the database files (``roost.db`` and its
  ``-wal``) are read, and the files again after the broker stopped (it checkpoints
  then); Mosquitto runs with ``persistence false``, so only its RSS is compared.

The nats-server's RSS is reported next to roost-cluster's: with ``--subscribe`` it
holds one subscription per connection. So is the RSS of a second cluster node with no
clients: it holds the measured node's filters in its remote interest table, as every
other node of a cluster does. See docs/scaling.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench import brokers, loadgen
from bench.natsproc import NatsError, NatsServer, rss_bytes

HELP = "memory: bytes per idle connection and per offline session (RSS, SQLite)"
FD_HEADROOM = 200
CONNECT_PARALLEL = 100
SETTLE_SAMPLES = 3  # RSS readings 0.5 s apart that must agree within 1 %
SETTLE_MAX = 20.0  # seconds
# Logged by every cluster node at start: expected, not a problem of the run.
MILESTONE_WARNING = "clustering is at milestone"


def _counts(text: str) -> list[int]:
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError("counts must be > 0")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--idle", type=_counts, default=[1000, 5000, 10_000], metavar="N,N",
                        help="idle connection steps (1000,5000,10000)")  # fmt: skip
    parser.add_argument("--sessions", type=_counts, default=[1000, 10_000], metavar="N,N",
                        help="offline persistent session steps (1000,10000)")  # fmt: skip
    parser.add_argument("--subscribe", action="store_true",
                        help="idle: each connection also subscribes to its own topic")  # fmt: skip
    parser.add_argument("--brokers", default="roost,roost-cluster,mosquitto",
                        help="comma-separated (roost,roost-cluster,mosquitto)")  # fmt: skip
    parser.add_argument("--only", choices=("idle", "sessions"), help="one part only")
    parser.add_argument("--mosquitto", metavar="PATH", help="the mosquitto binary")
    parser.add_argument("--json", metavar="FILE", help="write every reading here")
    parser.add_argument("--logs", metavar="DIR", help="broker logs (default: a new temp dir)")


# Raw MQTT 3.1.1: the broker under test is the only MQTT implementation involved.


def _utf8(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def _packet(first: int, body: bytes) -> bytes:
    length, encoded = len(body), bytearray()
    while True:
        byte, length = length & 0x7F, length >> 7
        encoded.append(byte | (0x80 if length else 0))
        if not length:
            return bytes([first]) + bytes(encoded) + body


def connect_packet(client_id: str, clean: bool) -> bytes:
    flags = 0x02 if clean else 0x00
    return _packet(0x10, _utf8("MQTT") + bytes([4, flags, 0, 0]) + _utf8(client_id))


def subscribe_packet(topic: str, qos: int) -> bytes:
    return _packet(0x82, (1).to_bytes(2, "big") + _utf8(topic) + bytes([qos]))


DISCONNECT = b"\xe0\x00"


class Held:
    """Open connections, kept until ``close``."""

    def __init__(self) -> None:
        self.writers: list[asyncio.StreamWriter] = []

    async def open(
        self, port: int, ids: range, prefix: str, *, clean: bool, subscribe: bool, keep: bool
    ) -> None:
        gate = asyncio.Semaphore(CONNECT_PARALLEL)

        async def one(i: int) -> None:
            async with gate:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(connect_packet(f"{prefix}-{i}", clean))
                connack = await asyncio.wait_for(reader.readexactly(4), 30)
                if connack[0] != 0x20 or connack[3] != 0:
                    raise RuntimeError(f"CONNACK refused: {connack.hex()}")
                if subscribe:
                    writer.write(subscribe_packet(f"{prefix}/{i}", 1))
                    suback = await asyncio.wait_for(reader.readexactly(5), 30)
                    if suback[0] != 0x90 or suback[4] > 2:
                        raise RuntimeError(f"SUBACK refused: {suback.hex()}")
                if keep:
                    self.writers.append(writer)
                    return
                writer.write(DISCONNECT)
                await writer.drain()
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

        await asyncio.gather(*(one(i) for i in ids))

    async def close(self) -> None:
        for writer in self.writers:
            writer.close()
        for writer in self.writers:
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        self.writers.clear()


def settled_rss(pid: int) -> int:
    """The process's RSS once SETTLE_SAMPLES readings agree (or after SETTLE_MAX)."""
    samples = [rss_bytes(pid)]
    deadline = time.monotonic() + SETTLE_MAX
    while time.monotonic() < deadline:
        time.sleep(0.5)
        samples.append(rss_bytes(pid))
        last = samples[-SETTLE_SAMPLES:]
        if len(last) == SETTLE_SAMPLES and max(last) - min(last) <= 0.01 * max(last):
            break
    return samples[-1]


def db_bytes(directory: str) -> int:
    """Size of Roost's database files (roost.db and its -wal/-shm), or Mosquitto's file."""
    return sum(p.stat().st_size for p in Path(directory).glob("*") if p.is_file())


@dataclass(slots=True)
class Reading:
    part: str  # "idle", "idle+sub" or "sessions"
    broker: str
    count: int
    rss: int
    nats_rss: int | None = None
    peer_rss: int | None = None  # another cluster node's, with no clients of its own
    disk: int | None = None
    seconds: float = 0.0


@dataclass(slots=True)
class Series:
    readings: list[Reading] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _nats(specs_wanted: list[str], logs: Path) -> Iterator[NatsServer | None]:
    if not any(name.endswith("cluster") for name in specs_wanted):
        yield None
        return
    nats = NatsServer(logs)
    try:
        yield nats
    finally:
        nats.stop()


def _spec(
    name: str, roost: str, mosquitto: str | None, nats: NatsServer | None, data: str
) -> brokers.BrokerSpec | None:
    if name == "roost":
        return brokers.BrokerSpec("roost", roost, "roost", data_dir=data)
    if name == "roost-cluster" and nats is not None:
        cluster = ("[cluster]", f'nats_url = "{nats.url}"', 'node = "memory"')
        return brokers.BrokerSpec("roost-cluster", roost, "roost", cluster, data_dir=data)
    if name == "mosquitto" and mosquitto is not None:
        # In memory: Mosquitto started as root drops to its own user, which may not
        # write here, and it writes its file only at exit anyway.
        return brokers.BrokerSpec("mosquitto", mosquitto, "mosquitto")
    return None


def measure(
    spec: brokers.BrokerSpec,
    part: str,
    steps: list[int],
    logs: Path,
    nats: NatsServer | None,
    series: Series,
) -> None:
    """Start ``spec``, read RSS at 0 and after each step of ``part``, stop it."""
    tag = f"{part}-{spec.name}"
    cluster = nats if spec.name.endswith("cluster") else None
    peer = None
    if cluster is not None:
        # A second node: what the measured node's filters cost every other node
        # (its remote interest table).
        extra = (*spec.extra_config[:-1], 'node = "peer"')
        peer_spec = dataclasses.replace(spec, name="peer", extra_config=extra, data_dir="")
        peer = brokers.start(peer_spec, logs, f"{tag}-peer")
    broker = brokers.start(spec, logs, tag)
    held = Held()
    loop = asyncio.new_event_loop()

    def read(count: int, started: float) -> None:
        reading = Reading(part, spec.name, count, settled_rss(broker.pid))
        reading.seconds = round(time.monotonic() - started, 2)
        if cluster is not None:
            reading.nats_rss = rss_bytes(cluster.pid)
        if peer is not None:
            reading.peer_rss = settled_rss(peer.pid)
        if spec.data_dir and spec.kind == "roost":
            reading.disk = db_bytes(spec.data_dir)
        series.readings.append(reading)
        print(f"{tag} {count}: {_describe(reading)}", file=sys.stderr, flush=True)

    try:
        read(0, time.monotonic())
        done = 0
        for step in steps:
            started = time.monotonic()
            ids = range(done, step)
            if part == "sessions":
                opening = held.open(broker.port, ids, "sess", clean=False, subscribe=True,
                                    keep=False)  # fmt: skip
            else:
                opening = held.open(broker.port, ids, "idle", clean=True,
                                    subscribe=part == "idle+sub", keep=True)  # fmt: skip
            loop.run_until_complete(opening)
            done = step
            read(step, started)
    except (OSError, RuntimeError, TimeoutError) as exc:
        series.problems.append(f"{tag}: {exc!r}")
    finally:
        loop.run_until_complete(held.close())
        loop.close()
        logged = broker.stop().log_problems + (peer.stop().log_problems if peer else [])
        series.problems += [f"{tag}: {x}" for x in logged if MILESTONE_WARNING not in x]
        if part == "sessions" and spec.data_dir:
            # Roost checkpoints its WAL at exit; Mosquitto writes its file at exit.
            stopped = Reading(
                "sessions-file-at-exit", spec.name, done, 0, disk=db_bytes(spec.data_dir)
            )
            series.readings.append(stopped)


def _describe(r: Reading) -> str:
    text = f"RSS {r.rss / 2**20:.1f} MiB"
    if r.nats_rss is not None:
        text += f", nats-server RSS {r.nats_rss / 2**20:.1f} MiB"
    if r.peer_rss is not None:
        text += f", other node RSS {r.peer_rss / 2**20:.1f} MiB"
    if r.disk is not None:
        text += f", files {r.disk / 2**20:.2f} MiB"
    return text + f" ({r.seconds:g} s)"


def per_item(
    readings: list[Reading], key: Callable[[Reading], int | None], tail: bool = False
) -> str:
    """Bytes per connection/session: slope from the first reading to the last (or, with
    ``tail``, over the last step only, past the allocator's first arenas)."""
    first, last = readings[-2 if tail and len(readings) > 1 else 0], readings[-1]
    a, b = key(first), key(last)
    if a is None or b is None or last.count == first.count:
        return "-"
    return f"{(b - a) / (last.count - first.count):,.0f}"


def report(series: Series) -> list[str]:
    groups: dict[tuple[str, str], list[Reading]] = {}
    for r in series.readings:
        if r.part != "sessions-file-at-exit":
            groups.setdefault((r.part, r.broker), []).append(r)
    lines = [
        "| part | broker | count | RSS MiB | nats-server RSS MiB | files MiB |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in series.readings:
        if r.part == "sessions-file-at-exit":
            continue
        nats = f"{r.nats_rss / 2**20:.1f}" if r.nats_rss is not None else "-"
        disk = f"{r.disk / 2**20:.2f}" if r.disk is not None else "-"
        lines.append(
            f"| {r.part} | {r.broker} | {r.count:,} | {r.rss / 2**20:.1f} | {nats} | {disk} |"
        )
    lines += [
        "",
        (
            "| part | broker | B/item RSS | B/item RSS, last step | B/item nats-server RSS "
            "| B/item other node RSS | B/item files | B/item files at exit |"
        ),
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (part, broker), readings in groups.items():
        at_exit = next(
            (r for r in series.readings if r.part == "sessions-file-at-exit" and r.broker == broker
             and part == "sessions"), None)  # fmt: skip
        exit_cell = (
            f"{at_exit.disk / at_exit.count:,.0f}"
            if at_exit and at_exit.disk and at_exit.count
            else "-"
        )
        cells = [
            per_item(readings, lambda r: r.rss),
            per_item(readings, lambda r: r.rss, tail=True),
            per_item(readings, lambda r: r.nats_rss),
            per_item(readings, lambda r: r.peer_rss),
            per_item(readings, lambda r: r.disk),
            exit_cell,
        ]
        lines.append(f"| {part} | {broker} | " + " | ".join(cells) + " |")
    lines += ["", "Problems:" if series.problems else "Problems: none.", *series.problems]
    return lines


def run(args: argparse.Namespace) -> int:
    wanted = [b.strip() for b in args.brokers.split(",") if b.strip()]
    try:
        roost = brokers.roost_executable()
        mosquitto = brokers.mosquitto_executable(args.mosquitto)
    except brokers.BrokerError as exc:
        print(exc, file=sys.stderr)
        return 1
    largest = max([*args.idle, 0]) + FD_HEADROOM
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < largest:
        print(f"hard open-files limit {hard} < {largest}: lower --idle", file=sys.stderr)
        return 1
    loadgen.raise_open_files_limit(largest)  # for this process and the brokers it starts
    logs = Path(args.logs) if args.logs else Path(tempfile.mkdtemp(prefix="roost-bench-memory-"))
    logs.mkdir(parents=True, exist_ok=True)
    print(f"logs: {logs}", file=sys.stderr)
    series = Series()
    parts: list[tuple[str, list[int]]] = []
    if args.only in (None, "idle"):
        parts.append(("idle+sub" if args.subscribe else "idle", args.idle))
    if args.only in (None, "sessions"):
        parts.append(("sessions", args.sessions))
    try:
        with _nats(wanted, logs) as nats:
            for part, steps in parts:
                for name in wanted:
                    data = (
                        tempfile.mkdtemp(prefix=f"{name}-", dir=logs) if part == "sessions" else ""
                    )
                    spec = _spec(name, roost, mosquitto, nats, data)
                    if spec is None:
                        series.problems.append(f"{name}: not available here, skipped")
                        continue
                    measure(spec, part, steps, logs, nats, series)
    except (NatsError, brokers.BrokerError) as exc:
        series.problems.append(str(exc))
    lines = report(series)
    print("\n".join(lines))
    if args.json:
        payload = {"readings": [dataclasses.asdict(r) for r in series.readings], "report": lines}
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    return 0 if not series.problems else 2
