"""Broker CPU per message over WebSocket: Roost next to Mosquitto, same load, same run.

Neither load generator speaks WebSocket, so the load here is ``roost.client`` in this
process: one publisher and ``--subscribers`` subscribers, all over ``ws://``, sending
``--messages`` messages of ``--size`` bytes at QoS 0 and at QoS 1. The client is slower
than either broker, so throughput says more about the client than the broker; what
this measures is the broker's own CPU time (user + system, from ``/proc``) per message
delivered, which the client's speed does not change much. The publisher keeps within
500 messages of the slowest subscriber, so that neither broker's queue limit (1000 per
subscriber) drops anything: a run that loses messages says so in the ``lost`` column.
Both brokers send one MQTT packet per WebSocket frame, so the ratio compares like with
like.

The ratio is Roost's CPU per message divided by Mosquitto's: lower is better.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import brokers
from bench.load_report import _table
from roost.client import Client
from roost.loadtest.procstats import cpu_ns

HELP = "broker CPU per message over WebSocket, 1 publisher -> N subscribers (roost.client)"
WINDOW = 50  # QoS 1 publishes in flight at once
SLACK = 500  # messages a subscriber may be behind the publisher (half the queue limit)
DRAIN_TIMEOUT = 30.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--messages", type=int, default=20_000, help="per run (20000)")
    parser.add_argument("--subscribers", type=int, default=4, help="WebSocket subscribers (4)")
    parser.add_argument("--size", type=int, default=64, help="payload bytes (64)")
    parser.add_argument("--qos", type=int, nargs="+", default=[0, 1], choices=[0, 1, 2])
    parser.add_argument("--reps", type=int, default=3, help="repetitions per broker (3)")
    parser.add_argument("--brokers", nargs="+", help="only these (roost, mosquitto, ...)")
    parser.add_argument("--mosquitto", help="path of the mosquitto binary")
    parser.add_argument("--json", type=Path, help="also write the results here")


@dataclass(slots=True)
class Run:
    broker: str
    qos: int
    delivered: int
    expected: int
    cpu_us_per_message: float
    messages_per_second: float


async def _subscriber(
    port: int, qos: int, expected: int, ready: asyncio.Event, counts: list[int], index: int
) -> int:
    async with Client("127.0.0.1", port, transport="websockets", max_queued_messages=0) as client:
        await client.subscribe("bench/ws", qos=qos)
        stream = client.messages()
        ready.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_TIMEOUT):
                async for _message in stream:
                    counts[index] += 1
                    if counts[index] == expected:
                        break
    return counts[index]


async def _keep_pace(sent: int, counts: list[int]) -> None:
    """Wait until every subscriber is within SLACK messages of the publisher.

    Both brokers queue at most 1000 messages per subscriber (max_queued_messages) and
    drop beyond: a publisher faster than its subscribers would measure drops, not
    deliveries. The subscribers here are the slowest part, so the publisher waits.
    """
    async with asyncio.timeout(DRAIN_TIMEOUT):
        while sent - min(counts) > SLACK:
            await asyncio.sleep(0.001)


async def _load(
    port: int, pid: int, args: argparse.Namespace, qos: int
) -> tuple[int, float, float]:
    """(messages delivered, broker CPU seconds, seconds) for one run."""
    readies = [asyncio.Event() for _ in range(args.subscribers)]
    counts = [0] * args.subscribers
    subscribers = [
        asyncio.create_task(_subscriber(port, qos, args.messages, ready, counts, index))
        for index, ready in enumerate(readies)
    ]
    async with asyncio.timeout(DRAIN_TIMEOUT):
        for ready, task in zip(readies, subscribers, strict=True):
            waiting = asyncio.ensure_future(ready.wait())
            await asyncio.wait((waiting, task), return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                task.result()  # a subscriber that failed to start: its error, not a hang
    payload = b"x" * args.size
    cpu_before = cpu_ns(pid)
    started = time.perf_counter()
    async with (
        asyncio.timeout(DRAIN_TIMEOUT * 4),
        Client("127.0.0.1", port, transport="websockets") as publisher,
    ):
        for start in range(0, args.messages, WINDOW):
            count = min(WINDOW, args.messages - start)
            if qos == 0:
                for _ in range(count):
                    await publisher.publish("bench/ws", payload, qos=0)
            else:
                await asyncio.gather(
                    *(publisher.publish("bench/ws", payload, qos=qos) for _ in range(count))
                )
            await _keep_pace(start + count, counts)
        delivered = sum(await asyncio.gather(*subscribers))
    elapsed = time.perf_counter() - started
    return delivered, (cpu_ns(pid) - cpu_before) / 1e9, elapsed


def run_one(spec: brokers.BrokerSpec, args: argparse.Namespace, qos: int, workdir: Path) -> Run:
    spec = dataclasses.replace(spec, websocket_port=brokers.free_port())
    broker = brokers.start(spec, workdir, f"{spec.name}-ws-q{qos}")
    try:
        # start() waits for the TCP listener; the WebSocket one may open a moment later.
        deadline = time.monotonic() + brokers.READY_TIMEOUT
        while not brokers.accepts(spec.websocket_port):
            if time.monotonic() > deadline:
                raise brokers.BrokerError(f"{spec.name}: no WebSocket listener")
            time.sleep(0.05)
        delivered, cpu, elapsed = asyncio.run(_load(spec.websocket_port, broker.pid, args, qos))
    finally:
        ended = broker.stop()
    for line in ended.log_problems:
        print(f"  {spec.name}: {line}")
    per_message = cpu / delivered * 1e6 if delivered else float("nan")
    return Run(
        spec.name,
        qos,
        delivered,
        args.messages * args.subscribers,
        per_message,
        delivered / elapsed if elapsed else 0.0,
    )


def report(runs: list[Run]) -> list[str]:
    names = list(dict.fromkeys(run.broker for run in runs))
    rows = []
    for qos in sorted({run.qos for run in runs}):
        medians: dict[str, float] = {}
        for name in names:
            mine = [r for r in runs if r.broker == name and r.qos == qos]
            if not mine:
                continue
            medians[name] = statistics.median(r.cpu_us_per_message for r in mine)
            spread = ", ".join(f"{r.cpu_us_per_message:.2f}" for r in mine)
            lost = sum(r.expected - r.delivered for r in mine)
            rate = statistics.median(r.messages_per_second for r in mine)
            rows.append(
                [
                    f"ws-fanout-q{qos}",
                    name,
                    f"{medians[name]:.2f} ({spread})",
                    f"{rate:,.0f}",
                    str(lost),
                ]
            )
        roost = medians.get("roost")
        for name, value in medians.items():
            if name != "roost" and roost is not None and value:
                rows.append(
                    [f"ws-fanout-q{qos}", f"roost / {name}", f"{roost / value:.2f}", "", ""]
                )
    header = ["scenario", "broker", "broker CPU µs/msg (reps)", "delivered/s", "lost"]
    return _table(header, rows)


def run(args: argparse.Namespace) -> int:
    specs = brokers.broker_specs(brokers.mosquitto_executable(args.mosquitto))
    # Variants (roost-quiet, ...) only when named.
    wanted = args.brokers or ("roost", "mosquitto", "mosquitto-nodelay")
    specs = tuple(spec for spec in specs if spec.name in wanted)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="roost-bench-ws-") as tmp:
        for qos in args.qos:
            for _rep in range(args.reps):
                # Interleaved, so that the machine's drift touches every broker alike.
                for spec in specs:
                    result = run_one(spec, args, qos, Path(tmp))
                    print(
                        f"  {result.broker} q{qos}: {result.cpu_us_per_message:.2f} µs/msg, "
                        f"{result.delivered}/{result.expected} delivered"
                    )
                    runs.append(result)
    for line in report(runs):
        print(line)
    if args.json is not None:
        args.json.write_text(json.dumps([dataclasses.asdict(r) for r in runs], indent=2))
    return 0
