"""The load scenarios: which mqttload command line each one runs, and what it measures.

Every scenario uses 10 clients and a 64-byte payload. Throughput runs publish as fast
as mqttload's flow control allows for ``duration`` seconds; the latency run publishes
1000 msg/s at QoS 1 to 10 subscribers (the mqttload README's latency example); the
connection run opens ``conns`` idle subscribers, holds them with keep-alive pings, then
checks that each one still receives its own message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["throughput", "latency", "conn"]

CLIENTS = 10
PAYLOAD_BYTES = 64
LATENCY_RATE = 1000  # msg/s in total, as in the mqttload README's latency example
DRAIN_TIMEOUT = 10  # mqttload -t: how long to wait for deliveries after publishing ends
CONNECT_TIMEOUT = 60  # mqttload --connect-timeout


@dataclass(frozen=True, slots=True)
class Settings:
    """The knobs the command line exposes; each scenario's arguments derive from them."""

    duration: float = 5.0
    # 20, not mqttload's 32: Mosquitto 2.0.11 (default max_inflight_messages 20) drops
    # incoming QoS 2 PUBLISHes beyond 20 unreleased ones from a 3.1.1 client.
    inflight: int = 20
    conns: int = 10_000
    hold: float = 5.0
    keepalive: int = 30


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    kind: Kind
    args: tuple[str, ...]  # mqttload options, without host, port and broker pid
    timeout: float  # seconds after which the harness stops mqttload

    def describe(self) -> str:
        return f"{self.name:<24} {self.kind:<10} mqttload {' '.join(self.args)}"


def _number(value: float) -> str:
    return f"{value:g}"


def build_scenarios(settings: Settings) -> tuple[Scenario, ...]:
    """Every scenario, in the order they run within one repetition."""
    duration = _number(settings.duration)
    common = ("-n", str(CLIENTS), "-S", str(PAYLOAD_BYTES), "-t", str(DRAIN_TIMEOUT))
    throughput_timeout = CONNECT_TIMEOUT + settings.duration + DRAIN_TIMEOUT + 30
    scenarios: list[Scenario] = []
    for qos in (0, 1, 2):
        for shape in ("fanin", "fanout", "pairs"):
            args: tuple[str, ...] = ("-s", shape, *common, "-q", str(qos), "-d", duration)
            if qos:
                args = (*args, "-i", str(settings.inflight))
            scenarios.append(Scenario(f"{shape}-q{qos}", "throughput", args, throughput_timeout))
    latency_args = (
        *("-s", "fanout", *common, "-q", "1", "-r", str(LATENCY_RATE), "-d", duration),
        *("-i", str(settings.inflight)),
    )
    scenarios.append(
        Scenario(f"latency-fanout-q1-r{LATENCY_RATE}", "latency", latency_args, throughput_timeout)
    )
    conn_args = (
        *("-s", "conn", "-n", str(settings.conns), "-S", str(PAYLOAD_BYTES)),
        *("-T", _number(settings.hold), "-k", str(settings.keepalive)),
        *("-t", str(DRAIN_TIMEOUT), "--connect-timeout", str(CONNECT_TIMEOUT)),
    )
    conn_timeout = CONNECT_TIMEOUT + settings.hold + DRAIN_TIMEOUT + 60
    scenarios.append(Scenario(f"conn-{settings.conns}", "conn", conn_args, conn_timeout))
    return tuple(scenarios)
