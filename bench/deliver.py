"""Delivery micro-benchmark: the broker's cost per message handed to one session.

``Session.deliver`` to a connection that only counts what it is given, on one core,
with no socket: the per-subscriber part of a fan-out (template lookup, packet id,
in-flight bookkeeping) and, with topic aliases (MQTT 5 clients that state a Topic
Alias Maximum), the alias map's share of it. Each row delivers ``--count`` messages
per pass; the table gives the best and the median time per delivery over
``--repeat`` passes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from roost.broker.config import BrokerConfig
from roost.broker.message import Message
from roost.broker.sessions import Session
from roost.broker.topic_aliases import OutgoingAliases
from roost.codec import MQTT_5

HELP = "delivery micro-benchmark: ns per message to one session, with and without topic aliases"

TOPIC = "sensors/building-7/floor-3/room-12/temperature"
PAYLOAD = b"x" * 64


class _CountingConnection:
    """Just enough of a connection (``sessions.Sink``) to be sent to."""

    version = MQTT_5
    send_quota = 1 << 30
    maximum_packet_size = 1 << 20
    writable = True

    def __init__(self, aliases: OutgoingAliases | None) -> None:
        self.topic_aliases = aliases
        self.sent = 0

    def send(self, data: bytes) -> None:
        self.sent += 1

    def take_over(self) -> None:
        pass

    def hold(self, batch: int, gate: int = 0) -> None:
        pass

    def release(self, committed: int, gate: int = 0) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    aliases: int  # the connection's alias maximum; 0: none
    topics: int  # distinct topics delivered in turn


ROWS = (
    Row("plain", 0, 1),
    Row("alias known (steady state)", 10, 1),
    Row("aliases, 8 topics in turn", 10, 8),
    Row("alias reassigned every time", 1, 2),
)


def _pass(row: Row, qos: int, count: int) -> Callable[[], None]:
    session = Session("bench", BrokerConfig())
    session.connection = _CountingConnection(OutgoingAliases(row.aliases) if row.aliases else None)
    messages = [Message(f"{TOPIC}/{n}", PAYLOAD, qos, False) for n in range(row.topics)]
    inflight = session.inflight

    def run() -> None:
        for n in range(count):
            session.deliver(messages[n % row.topics], qos, False)
            if qos:
                inflight.clear()  # as if acknowledged, without the acknowledgement's cost

    return run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=100_000, help="deliveries per pass (100000)")
    parser.add_argument("--repeat", type=int, default=5, help="timed passes per row (5)")


def run(args: argparse.Namespace) -> int:
    if args.count < 1 or args.repeat < 1:
        sys.stderr.write("--count and --repeat must be >= 1\n")
        return 2
    print(f"{'delivery':32} {'QoS':>3} {'best ns':>8} {'median ns':>9}")
    for qos in (0, 1):
        for row in ROWS:
            one_pass = _pass(row, qos, args.count)
            one_pass()  # warm up: templates cached, aliases set
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                one_pass()
                times.append((time.perf_counter() - start) / args.count * 1e9)
            print(f"{row.name:32} {qos:>3} {min(times):8.0f} {statistics.median(times):9.0f}")
    return 0
