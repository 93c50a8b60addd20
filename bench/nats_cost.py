"""NATS cost of cross-node delivery: NATS messages and bytes per MQTT message.

Starts a nats-server with JetStream and its monitoring port (or, with ``--servers 3``,
three routed into one JetStream cluster on loopback, node ``a`` on the first, ``b`` on
the second, ``c`` on the third: then the counters are summed over the servers, so a
message crossing a route counts where it leaves and where it arrives), and three Roost
nodes (``a``, ``b``, ``c``) with ``[cluster]`` on it. For each case, subscribers connect to
``b`` (and ``c``), a probe from ``a`` proves the path, then ``--count`` messages of a
known size are published on ``a`` at ``--rate`` msg/s, and the nats-servers'
``/varz`` counters (in_msgs, out_msgs, in_bytes, out_bytes) are read before and after.
The background (JetStream heartbeats, pings) is measured over a quiet window first and
reported, not subtracted: at the default count it is well under 1 % of the case.

NATS counts payload bytes (Roost's envelope included) in in_bytes/out_bytes, not its
protocol lines (``PUB <subject> <len>``/``MSG ...``) nor TCP; the report adds the
subject to show the wire cost per message. See docs/scaling.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import brokers
from bench.memory import MILESTONE_WARNING
from bench.natsproc import NatsError, NatsServer, cpu_seconds, start_cluster, total
from roost.client import MQTT_3_1_1, Client, Message

HELP = "nats-cost: NATS messages and bytes per MQTT message between cluster nodes"
PROBE = b"probe:"
LINK_TIMEOUT = 15.0
QUIET = 3.0  # seconds of the background window


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    qos: int
    size: int
    subscribers: dict[str, int]  # node -> subscribers of the topic there


CASES = (
    Case("q0-64B-1sub-b", 0, 64, {"b": 1}),
    Case("q1-64B-1sub-b", 1, 64, {"b": 1}),
    Case("q0-1024B-1sub-b", 0, 1024, {"b": 1}),
    Case("q0-64B-10sub-b", 0, 64, {"b": 10}),
    Case("q0-64B-1sub-b-1sub-c", 0, 64, {"b": 1, "c": 1}),
    Case("q1-64B-1sub-b-1sub-c", 1, 64, {"b": 1, "c": 1}),
    Case("q0-64B-local-only", 0, 64, {"a": 1}),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=20_000, help="messages per case (20000)")
    parser.add_argument("--rate", type=int, default=5_000,
                        help="publish rate, msg/s (5000: below where nodes drop)")  # fmt: skip
    parser.add_argument("--servers", type=int, choices=(1, 3), default=1,
                        help="1 nats-server, or 3 in a JetStream cluster on loopback with "
                        "node a, b, c each on its own server (1)")  # fmt: skip
    parser.add_argument("--only", metavar="SUBSTRING", help="cases whose name contains this")
    parser.add_argument("--json", metavar="FILE", help="write the results here")
    parser.add_argument("--logs", metavar="DIR", help="logs (default: a new temp dir)")


@dataclass(slots=True)
class Outcome:
    case: str
    qos: int
    size: int
    subject_len: int
    published: int
    received: dict[str, int]
    seconds: float
    delta: dict[str, int]
    background_per_s: dict[str, float]
    cpu_us: dict[str, float]  # CPU microseconds per published message, per process

    def per_message(self, key: str) -> float:
        return self.delta[key] / self.published


class Counter:
    """A subscriber that counts the real messages it receives and notes probes."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.count = 0
        self.probed = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for message in self.client.messages():
                self._take(message)

    def _take(self, message: Message) -> None:
        if message.payload.startswith(PROBE):
            self.probed.set()
        else:
            self.count += 1


async def _client(port: int, name: str) -> Client:
    client = Client("127.0.0.1", port, version=MQTT_3_1_1, client_id=name, keep_alive=60)
    await client.connect()
    return client


def _cpu(pids: dict[str, int]) -> dict[str, float]:
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


async def run_case(
    case: Case,
    ports: dict[str, int],
    servers: list[NatsServer],
    pids: dict[str, int],
    count: int,
    rate: int,
) -> Outcome:
    topic = f"cost/{case.name}"
    publisher = await _client(ports["a"], f"pub-{case.name}")
    counters: list[tuple[str, Counter]] = []
    try:
        for node, subs in case.subscribers.items():
            for i in range(subs):
                client = await _client(ports[node], f"sub-{case.name}-{node}-{i}")
                await client.subscribe(topic, case.qos)
                counters.append((node, Counter(client)))
        deadline = time.monotonic() + LINK_TIMEOUT
        while not all(c.probed.is_set() for _, c in counters):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{case.name}: no probe crossed")
            await publisher.publish(topic, PROBE, case.qos)
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # the last probes land before the counters are read
        quiet_before = total(servers)
        await asyncio.sleep(QUIET)
        before = total(servers)
        background = {k: (before[k] - quiet_before[k]) / QUIET for k in before}
        cpu_before = _cpu(pids)
        started = time.monotonic()
        payload = b"x" * case.size
        batch = max(1, rate // 100)
        for sent in range(0, count, batch):
            n = min(batch, count - sent)
            await asyncio.gather(*(publisher.publish(topic, payload, case.qos) for _ in range(n)))
            ahead = started + (sent + n) / rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
        deadline = time.monotonic() + 30
        while any(c.count < count for _, c in counters) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        seconds = time.monotonic() - started
        cpu_after = _cpu(pids)
        await asyncio.sleep(0.5)
        after = total(servers)
    finally:
        await publisher.disconnect()
        for _, counter in counters:
            await counter.client.disconnect()
            counter.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await counter.task
    received: dict[str, int] = {}
    for node, counter in counters:
        received[node] = received.get(node, 0) + counter.count
    subject_len = len("roost.m." + topic.replace("/", "."))
    delta = {k: after[k] - before[k] for k in after}
    cpu_us = {k: round((cpu_after[k] - cpu_before[k]) * 1e6 / count, 2) for k in cpu_after}
    return Outcome(case.name, case.qos, case.size, subject_len, count, received,
                   round(seconds, 2), delta, background, cpu_us)  # fmt: skip


def report(outcomes: list[Outcome]) -> list[str]:
    lines = [
        (
            "| case | QoS | payload B | published | received (per node) | NATS in msgs/msg "
            "| NATS out msgs/msg | NATS in bytes/msg | NATS out bytes/msg | subject B |"
        ),
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for o in outcomes:
        received = ", ".join(f"{node}: {n:,}" for node, n in o.received.items())
        lines.append(
            f"| {o.case} | {o.qos} | {o.size} | {o.published:,} | {received} | "
            f"{o.per_message('in_msgs'):.3f} | {o.per_message('out_msgs'):.3f} | "
            f"{o.per_message('in_bytes'):.1f} | {o.per_message('out_bytes'):.1f} | "
            f"{o.subject_len} |"
        )
    names = list(outcomes[0].cpu_us) if outcomes else []
    lines += [
        "",
        (
            "CPU µs per published message (clock ticks of each process over the case, idle "
            "time at this rate included):"
        ),
        "",
        "| case | " + " | ".join(names) + " |",
        "| --- |" + " ---: |" * len(names),
    ]
    for o in outcomes:
        lines.append(f"| {o.case} | " + " | ".join(f"{o.cpu_us[n]:.1f}" for n in names) + " |")
    lines += ["", "Background (quiet window before each case, per second):", ""]
    for o in outcomes:
        bg = ", ".join(f"{k} {v:.1f}" for k, v in o.background_per_s.items())
        lines.append(f"- {o.case}: {bg}")
    return lines


def _node_spec(roost: str, nats: NatsServer, node: str) -> brokers.BrokerSpec:
    cluster = ("sys_interval = 60", "[cluster]", f'nats_url = "{nats.url}"', f'node = "{node}"')
    return brokers.BrokerSpec(f"roost-{node}", roost, "roost", cluster)


def run(args: argparse.Namespace) -> int:
    logs = Path(args.logs) if args.logs else Path(tempfile.mkdtemp(prefix="roost-bench-nats-"))
    logs.mkdir(parents=True, exist_ok=True)
    print(f"logs: {logs}", file=sys.stderr)
    cases = [c for c in CASES if not args.only or args.only in c.name]
    outcomes: list[Outcome] = []
    problems: list[str] = []
    try:
        roost = brokers.roost_executable()
        servers = start_cluster(logs, args.servers)
    except (NatsError, brokers.BrokerError) as exc:
        print(exc, file=sys.stderr)
        return 1
    nodes: dict[str, brokers.RunningBroker] = {}
    try:
        for i, node in enumerate(("a", "b", "c")):
            server = servers[i % len(servers)]
            nodes[node] = brokers.start(_node_spec(roost, server, node), logs, f"node-{node}")
        ports = {name: broker.port for name, broker in nodes.items()}
        pids = {f"node {name}": broker.pid for name, broker in nodes.items()}
        pids |= {f"nats s{i + 1}": server.pid for i, server in enumerate(servers)}
        for case in cases:
            outcome = asyncio.run(run_case(case, ports, servers, pids, args.count, args.rate))
            outcomes.append(outcome)
            print(f"{case.name}: {outcome.delta} received {outcome.received}", file=sys.stderr)
    except (OSError, TimeoutError, brokers.BrokerError) as exc:
        problems.append(repr(exc))
    finally:
        for name, broker in nodes.items():
            logged = broker.stop().log_problems
            problems += [f"node {name}: {x}" for x in logged if MILESTONE_WARNING not in x]
        for server in servers:
            server.stop()
    lines = [*report(outcomes), "", "Problems:" if problems else "Problems: none.", *problems]
    print("\n".join(lines))
    if args.json:
        payload = {"outcomes": [asdict(o) for o in outcomes], "report": lines}
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    return 0 if not problems else 2
