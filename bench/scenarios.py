"""The load scenarios: what each one asks of the generator, and what it measures.

Each scenario renders to a command line for either generator: mqttload (external, C)
or ``roost bench`` (Roost's own, see roost.loadtest).

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
class Load:
    """What one run asks of the generator, in terms both generators understand."""

    shape: str  # fanin, fanout, pairs or conn
    clients: int
    qos: int = 0
    duration: float = 0.0
    inflight: int = 0  # 0: the generator's default (QoS 0 runs)
    rate: int = 0  # messages per second in total; 0 = throughput mode
    hold: float = 0.0
    keepalive: int = 0

    def mqttload_args(self) -> tuple[str, ...]:
        args: tuple[str, ...] = ("-s", self.shape, "-n", str(self.clients))
        args += ("-S", str(PAYLOAD_BYTES))
        if self.shape == "conn":
            args += ("-T", _number(self.hold), "-k", str(self.keepalive))
            return (*args, "-t", str(DRAIN_TIMEOUT), "--connect-timeout", str(CONNECT_TIMEOUT))
        args += ("-t", str(DRAIN_TIMEOUT), "-q", str(self.qos))
        if self.rate:
            args += ("-r", str(self.rate))
        args += ("-d", _number(self.duration))
        if self.inflight:
            args += ("-i", str(self.inflight))
        return args

    def roost_bench_args(self) -> tuple[str, ...]:
        """The same run as ``roost bench`` arguments (see src/roost/cli/bench.py)."""
        common = ("-c", str(self.clients), "-s", str(PAYLOAD_BYTES))
        timeouts = (
            "--drain-timeout",
            str(DRAIN_TIMEOUT),
            "--connect-timeout",
            str(CONNECT_TIMEOUT),
        )
        if self.shape == "conn":
            return (
                *("conn", *common, "--hold", _number(self.hold), "-k", str(self.keepalive)),
                *timeouts,
            )
        args: tuple[str, ...] = ("pubsub", "--shape", self.shape, *common, "-q", str(self.qos))
        args += ("-d", _number(self.duration), *timeouts)
        if self.rate:
            args += ("-r", str(self.rate))
        if self.inflight:
            args += ("-i", str(self.inflight))
        return args


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    kind: Kind
    load: Load
    timeout: float  # seconds after which the harness stops the generator

    @property
    def args(self) -> tuple[str, ...]:
        """mqttload's arguments (kept for the --json records and --list)."""
        return self.load.mqttload_args()

    def describe(self, generator: str = "mqttload") -> str:
        args = self.load.roost_bench_args() if generator != "mqttload" else self.args
        return f"{self.name:<24} {self.kind:<10} {generator} {' '.join(args)}"


def _number(value: float) -> str:
    return f"{value:g}"


def build_scenarios(settings: Settings) -> tuple[Scenario, ...]:
    """Every scenario, in the order they run within one repetition."""
    throughput_timeout = CONNECT_TIMEOUT + settings.duration + DRAIN_TIMEOUT + 30
    scenarios: list[Scenario] = []
    for qos in (0, 1, 2):
        for shape in ("fanin", "fanout", "pairs"):
            load = Load(shape, CLIENTS, qos, settings.duration, settings.inflight if qos else 0)
            scenarios.append(Scenario(f"{shape}-q{qos}", "throughput", load, throughput_timeout))
    latency = Load("fanout", CLIENTS, 1, settings.duration, settings.inflight, LATENCY_RATE)
    scenarios.append(
        Scenario(f"latency-fanout-q1-r{LATENCY_RATE}", "latency", latency, throughput_timeout)
    )
    conn = Load("conn", settings.conns, hold=settings.hold, keepalive=settings.keepalive)
    conn_timeout = CONNECT_TIMEOUT + settings.hold + DRAIN_TIMEOUT + 60
    scenarios.append(Scenario(f"conn-{settings.conns}", "conn", conn, conn_timeout))
    return tuple(scenarios)
