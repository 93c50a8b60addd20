"""Codec micro-benchmarks: packets per second for decode and encode, on one core.

Decoding reads one buffer holding ``--count`` copies of a packet back to back, with
``read_packet`` and an offset as a transport's ``data_received`` would, or through a
``PacketReader`` fed in 64 KiB chunks. Encoding calls ``packet.encode(version)`` the
same number of times. Each repetition runs enough passes to last ``--min-time``
seconds; the table gives the best and the median rate of ``--repeat`` repetitions.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from roost.codec import (
    MQTT_3_1_1,
    MQTT_5,
    PROTOCOL_MAX_PACKET_SIZE,
    Connect,
    Packet,
    PacketReader,
    Publish,
    Subscribe,
    Subscription,
    Will,
    read_packet,
)

HELP = "codec micro-benchmarks: decode and encode rates in packets/s"

TOPIC = "sensors/building-1/floor-2/temperature"
PAYLOAD = bytes(range(64))
CHUNK_SIZE = 64 * 1024
VERSION_NAMES = {MQTT_3_1_1: "3.1.1", MQTT_5: "5.0"}

Pass = Callable[[], object]


@dataclass(frozen=True, slots=True)
class Case:
    """One row of the table: ``run`` does one pass over ``packets`` packets."""

    operation: str
    version: int
    packet_bytes: int
    packets: int
    run: Pass


@dataclass(frozen=True, slots=True)
class Result:
    operation: str
    version: str
    packet_bytes: int
    best: float
    median: float
    rates: tuple[float, ...]


# The packets measured.


def publish_qos0() -> Publish:
    return Publish(TOPIC, PAYLOAD)


def publish_qos1_v5() -> Publish:
    return Publish(TOPIC, PAYLOAD, qos=1, packet_id=4321, user_properties=(("unit", "celsius"),))


def subscribe(version: int) -> Subscribe:
    if version == MQTT_5:
        subscriptions = (
            Subscription("sensors/building-1/+/temperature", qos=1, no_local=True),
            Subscription("alerts/#", qos=2, retain_as_published=True),
            Subscription("devices/device-42/commands", qos=0, retain_handling=1),
        )
        return Subscribe(17, subscriptions, subscription_identifier=7)
    subscriptions = (
        Subscription("sensors/building-1/+/temperature", qos=1),
        Subscription("alerts/#", qos=2),
        Subscription("devices/device-42/commands", qos=0),
    )
    return Subscribe(17, subscriptions)


def connect(version: int) -> Connect:
    will = Will("devices/device-42/status", b"offline", qos=1, retain=True)
    if version != MQTT_5:
        return Connect(
            "device-42", version, True, 30, username="device-42", password=b"s3cret", will=will
        )
    will.will_delay_interval = 5
    will.message_expiry_interval = 3600
    will.content_type = "text/plain"
    return Connect(
        "device-42",
        version,
        False,
        30,
        username="device-42",
        password=b"s3cret",
        will=will,
        session_expiry_interval=3600,
        receive_maximum=100,
        topic_alias_maximum=10,
        user_properties=(("region", "eu-west"),),
    )


# The passes.


def decode_pass(buf: bytes | memoryview, version: int) -> Pass:
    """Every packet of ``buf``, read from an offset as a transport would."""

    def run() -> int:
        offset = 0
        count = 0
        while True:
            result = read_packet(buf, version, PROTOCOL_MAX_PACKET_SIZE, offset)
            if result is None:
                return count
            _packet, used = result
            offset += used
            count += 1

    return run


def reader_pass(buf: bytes, version: int) -> Pass:
    """Every packet of ``buf``, fed to a PacketReader in CHUNK_SIZE chunks."""
    chunks = [buf[start : start + CHUNK_SIZE] for start in range(0, len(buf), CHUNK_SIZE)]

    def run() -> int:
        reader = PacketReader(version)
        feed = reader.feed
        next_packet = reader.next_packet
        count = 0
        for chunk in chunks:
            feed(chunk)
            while next_packet() is not None:
                count += 1
        return count

    return run


def encode_pass(packet: Packet, version: int, count: int) -> Pass:
    def run() -> int:
        encode = packet.encode
        for _ in range(count):
            encode(version)
        return count

    return run


def check(condition: bool, what: str) -> None:
    if not condition:
        raise RuntimeError(f"benchmark self-check failed: {what}")


def build_cases(count: int) -> list[Case]:
    """The table's rows; each packet is round-tripped once first so we time real work."""
    cases: list[Case] = []

    def add_decode_encode(name: str, packet: Packet, version: int, *, reader: bool = False) -> None:
        wire = packet.encode(version)
        result = read_packet(wire, version)
        check(result is not None and result == (packet, len(wire)), f"{name} round trip")
        buf = wire * count
        decode = decode_pass(buf, version)
        check(decode() == count, f"{name} decode count")
        cases.append(Case(f"decode {name}", version, len(wire), count, decode))
        if reader:
            read = reader_pass(buf, version)
            check(read() == count, f"{name} reader count")
            cases.append(Case(f"decode {name}, PacketReader", version, len(wire), count, read))
        cases.append(
            Case(f"encode {name}", version, len(wire), count, encode_pass(packet, version, count))
        )

    add_decode_encode("PUBLISH QoS 0", publish_qos0(), MQTT_3_1_1, reader=True)
    add_decode_encode("PUBLISH QoS 0", publish_qos0(), MQTT_5, reader=True)
    add_decode_encode("PUBLISH QoS 1 +user prop", publish_qos1_v5(), MQTT_5)
    for version in (MQTT_3_1_1, MQTT_5):
        add_decode_encode("SUBSCRIBE 3 filters", subscribe(version), version)
    for version in (MQTT_3_1_1, MQTT_5):
        add_decode_encode("CONNECT +will", connect(version), version)
    return cases


def measure(case: Case, repeat: int, min_time: float) -> Result:
    """Calibrate passes per repetition to last ``min_time``, then time ``repeat`` of them."""
    run = case.run
    start = time.perf_counter()
    run()  # also the warm-up
    once = time.perf_counter() - start
    passes = max(1, math.ceil(min_time / max(once, 1e-9)))
    rates = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(passes):
            run()
        elapsed = time.perf_counter() - start
        rates.append(case.packets * passes / elapsed)
    return Result(
        case.operation,
        VERSION_NAMES[case.version],
        case.packet_bytes,
        max(rates),
        statistics.median(rates),
        tuple(rates),
    )


def format_table(results: Sequence[Result]) -> str:
    headers = ("operation", "version", "bytes", "packets/s best", "packets/s median")
    rows = [
        (r.operation, r.version, str(r.packet_bytes), f"{r.best:,.0f}", f"{r.median:,.0f}")
        for r in results
    ]
    widths = [max(len(row[i]) for row in (headers, *rows)) for i in range(len(headers))]
    lines = []
    for row in (headers, *rows):
        cells = [
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def environment() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "system": platform.system(),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--count", type=int, default=10_000, help="packets per buffer and per pass (10000)"
    )
    parser.add_argument("--repeat", type=int, default=5, help="timed repetitions per row (5)")
    parser.add_argument(
        "--min-time", type=float, default=0.2, help="seconds per repetition, at least (0.2)"
    )
    parser.add_argument("--only", metavar="TEXT", help="run only rows whose operation has TEXT")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    if args.count < 1 or args.repeat < 1 or args.min_time <= 0:
        sys.stderr.write("--count and --repeat must be >= 1 and --min-time > 0\n")
        return 2
    cases = build_cases(args.count)
    if args.only:
        cases = [case for case in cases if args.only.lower() in case.operation.lower()]
    results = [measure(case, args.repeat, args.min_time) for case in cases]
    if args.json:
        document = {
            "environment": environment(),
            "settings": {"count": args.count, "repeat": args.repeat, "min_time": args.min_time},
            "results": [
                {
                    "operation": r.operation,
                    "version": r.version,
                    "packet_bytes": r.packet_bytes,
                    "best": round(r.best),
                    "median": round(r.median),
                    "rates": [round(rate) for rate in r.rates],
                }
                for r in results
            ],
        }
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        env = environment()
        sys.stdout.write(
            f"roost codec benchmark: {env['implementation']} {env['python']} on {env['machine']},"
            f" best and median of {args.repeat} repetitions of >= {args.min_time} s\n\n"
        )
        sys.stdout.write(format_table(results))
    return 0
