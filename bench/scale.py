"""Scale benchmark: idle connections, retained catch-up, routing with many subscriptions.

Like ``bench load``, every (repetition, scenario, broker) run gets a fresh broker on a
free port and the load comes from one ``roost bench`` command with ``-b <broker pid>``.

* ``idle-N``: N connections (each subscribed to its own topic) held for ``--hold``
  seconds with a keep-alive of ``--keepalive``; the generator pings after keepalive/2
  of silence, so with the defaults (10 s, 25 s) every connection pings about 4 times.
  Then one message to each. Measures connect rate, CONNACK latency, RSS per connection.
  More than ~25 000 connections to one address and port run out of source ports, so
  the generator then connects from several loopback addresses (127.0.0.1, .2, ...).
* ``retained-N``: N retained messages stored (QoS 1), then one subscriber to all of
  them at QoS 1: time from SUBSCRIBE to the last one, RSS before/after storing. Both
  brokers get a queue limit above N, or both would drop most of them by design.
* ``routing-N``: fan-in at QoS 0 (10 publishers, 1 wildcard subscriber) while the
  broker also holds N - 1 subscriptions that match nothing published (wildcard
  filters beside the published topics, see roost.loadtest.plan.filler_filters).
  ``routing-10`` against ``routing-100000``: routing must not pay for the rest.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import resource
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from bench import brokers, loadgen
from bench.load import machine_info
from bench.load_report import _table, fmt, median

HELP = "scale: 10k/50k idle connections, 100k retained, 100k subscriptions (roost bench)"
Kind = Literal["idle", "retained", "routing"]
FD_HEADROOM = 200
PORTS_PER_ADDRESS = 25_000  # of the 28 232 ephemeral ports (32768-60999) on Linux
QUEUE_FOR_RETAINED = 200_000


@dataclass(frozen=True, slots=True)
class ScaleScenario:
    name: str
    kind: Kind
    args: tuple[str, ...]  # roost bench arguments, without -p and -b
    connections: int
    timeout: float
    roost_config: tuple[str, ...] = ()
    mosquitto_config: tuple[str, ...] = ()


def _sources(connections: int) -> tuple[str, ...]:
    addresses = -(-connections // PORTS_PER_ADDRESS)
    if addresses <= 1:
        return ()
    return ("--source", f"127.0.0.1-127.0.0.{addresses}")


def build(args: argparse.Namespace) -> list[ScaleScenario]:
    scenarios: list[ScaleScenario] = []
    for conns in args.idle:
        idle = (
            *("conn", "-c", str(conns), "--hold", f"{args.hold:g}", "-k", str(args.keepalive)),
            *("--conn-parallel", "100", *_sources(conns)),
        )
        timeout = 120 + conns / 500 + args.hold
        scenarios.append(ScaleScenario(f"idle-{conns}", "idle", idle, conns + 1, timeout))
    for topics in args.retained:
        retained = ("retained", "--topics", str(topics), "-q", "1", "--drain-timeout", "10")
        queue = max(QUEUE_FOR_RETAINED, 2 * topics)
        scenarios.append(
            ScaleScenario(
                f"retained-{topics}",
                "retained",
                retained,
                3,
                120 + topics / 500,
                # Roost keeps at most 100 000 retained messages by default (its $SYS
                # topics count too); Mosquitto has no limit.
                roost_config=(
                    f"max_queued_messages = {queue}",
                    f"max_retained_messages = {queue}",
                ),
                mosquitto_config=(f"max_queued_messages {queue}",),
            )
        )
    for subscriptions in sorted({10, *args.subscriptions}):
        extra = subscriptions - 1
        holders = max(1, min(100, extra // 1000))
        routing = (
            *("pubsub", "--shape", "fanin", "-c", "10", "-q", "0", "-d", f"{args.duration:g}"),
            *("--extra-subscriptions", str(extra), "--extra-clients", str(holders)),
        )
        timeout = 120 + args.duration + subscriptions / 1000
        scenarios.append(
            ScaleScenario(f"routing-{subscriptions}", "routing", routing, 12 + holders, timeout)
        )
    return scenarios


def _counts(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError("counts must be > 0")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--idle", type=_counts, default=[10_000, 50_000], metavar="N,N",
                        help="idle connection counts (10000,50000)")  # fmt: skip
    parser.add_argument("--hold", type=float, default=25.0,
                        help="idle: seconds to hold the connections (25)")  # fmt: skip
    parser.add_argument("--keepalive", type=int, default=10, help="idle: keep-alive (10)")
    parser.add_argument("--retained", type=_counts, default=[100_000], metavar="N",
                        help="retained messages (100000)")  # fmt: skip
    parser.add_argument("--subscriptions", type=_counts, default=[100_000], metavar="N",
                        help="routing: subscriptions held (100000; 10 runs too)")  # fmt: skip
    parser.add_argument("--duration", type=float, default=5.0, help="routing: seconds (5)")
    parser.add_argument("--reps", type=int, default=1, help="repetitions (1)")
    parser.add_argument("--brokers", default="roost,mosquitto",
                        help="comma-separated (roost,mosquitto)")  # fmt: skip
    parser.add_argument("--mosquitto", metavar="PATH", help="the mosquitto binary")
    parser.add_argument("--gen-processes", type=int, default=2, metavar="N",
                        help="roost bench worker processes (2)")  # fmt: skip
    parser.add_argument("--only", metavar="PATTERN", help="regular expression on scenario names")
    parser.add_argument("--json", metavar="FILE", help="write every run's RESULT here")
    parser.add_argument("--logs", metavar="DIR", help="broker logs (default: a new temp dir)")
    parser.add_argument("--list", action="store_true", help="print the scenarios and exit")


@dataclass(slots=True)
class ScaleRun:
    rep: int
    scenario: str
    kind: str
    broker: str
    status: str
    command: list[str] = field(default_factory=list)
    result: loadgen.Result | None = None
    problems: list[str] = field(default_factory=list)


def _spec_for(spec: brokers.BrokerSpec, scenario: ScaleScenario) -> brokers.BrokerSpec:
    extra = scenario.roost_config if spec.kind == "roost" else scenario.mosquitto_config
    return dataclasses.replace(spec, extra_config=spec.extra_config + extra)


def run_one(
    spec: brokers.BrokerSpec,
    scenario: ScaleScenario,
    rep: int,
    generator: loadgen.Generator,
    logs: Path,
) -> ScaleRun:
    tag = f"r{rep}-{scenario.name}-{spec.name}"
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    wanted = scenario.connections + FD_HEADROOM
    if hard != resource.RLIM_INFINITY and hard < wanted:
        reason = (
            f"hard open-files limit {hard} < {wanted}: one broker process cannot hold "
            f"{scenario.connections} sockets here (raise it as root, e.g. ulimit -Hn)"
        )
        return ScaleRun(rep, scenario.name, scenario.kind, spec.name, "SKIPPED", problems=[reason])
    loadgen.raise_open_files_limit(wanted)
    try:
        broker = brokers.start(_spec_for(spec, scenario), logs, tag)
    except brokers.BrokerError as exc:
        return ScaleRun(rep, scenario.name, scenario.kind, spec.name, "BROKER_START_FAILED",
                        problems=[str(exc)])  # fmt: skip
    command = [
        *(str(generator.executable), "bench", *scenario.args, "-p", str(broker.port)),
        *("-b", str(broker.pid), "-j", str(generator.processes), "--quiet"),
    ]
    try:
        load = loadgen.run_command(command, scenario.timeout)
    finally:
        exit_ = broker.stop()
    problems = list(exit_.log_problems)
    if load.stderr:
        problems.insert(0, f"generator stderr: {load.stderr.splitlines()[-1]}")
    if exit_.died_early:
        problems.insert(0, f"broker exited during the run (status {exit_.returncode})")
    return ScaleRun(rep, scenario.name, scenario.kind, spec.name, load.status, command,
                    load.result, problems)  # fmt: skip


def _value(result: loadgen.Result | None, key: str, scale: float = 1.0) -> float | None:
    if result is None:
        return None
    value = result.get(key)
    return float(value) * scale if isinstance(value, int | float) else None


COLUMNS: dict[str, tuple[tuple[str, str, float], ...]] = {
    # (heading, RESULT key, scale)
    "idle": (
        ("connected", "connected", 1),
        ("conn/s", "conn_per_s", 1),
        ("CONNACK p50 ms", "connack_p50_us", 1e-3),
        ("CONNACK p99 ms", "connack_p99_us", 1e-3),
        ("RSS start MiB", "broker_rss_start_kb", 1 / 1024),
        ("RSS held MiB", "broker_rss_kb", 1 / 1024),
        ("RSS/conn KiB", "broker_rss_per_conn_kb", 1),
        ("broker CPU % (connect)", "broker_cpu_pct", 1),
        ("pings", "pings", 1),
        ("pongs", "pongs", 1),
        ("alive", "alive", 1),
        ("verify recv", "unique", 1),
    ),
    "retained": (
        ("store s", "store_secs", 1),
        ("first ms", "first_secs", 1e3),
        ("SUBSCRIBE→last s", "deliver_secs", 1),
        ("msgs/s", "deliver_msgs_per_s", 1),
        ("received", "unique", 1),
        ("RSS start MiB", "broker_rss_start_kb", 1 / 1024),
        ("RSS stored MiB", "broker_rss_stored_kb", 1 / 1024),
        ("RSS after MiB", "broker_rss_kb", 1 / 1024),
        ("B/retained", "broker_bytes_per_retained", 1),
        ("broker CPU %", "broker_cpu_pct", 1),
    ),
    "routing": (
        ("subscriptions", "subscriptions", 1),
        ("subscribe s", "connect_secs", 1),
        ("msgs/s", "msgs_per_s", 1),
        ("p50 µs", "p50_us", 1),
        ("p99 µs", "p99_us", 1),
        ("broker CPU %", "broker_cpu_pct", 1),
        ("gen CPU %", "gen_cpu_pct", 1),
        ("RSS MiB", "broker_rss_kb", 1 / 1024),
    ),
}
RATIOS = {
    "idle": ("conn/s", "RSS/conn KiB", "CONNACK p99 ms"),
    "retained": ("SUBSCRIBE→last s", "B/retained"),
    "routing": ("msgs/s",),
}


def report(runs: list[ScaleRun]) -> list[str]:
    lines: list[str] = []
    groups: dict[tuple[str, str], list[ScaleRun]] = {}
    order: list[str] = []
    brokers_seen: list[str] = []
    for run in runs:
        groups.setdefault((run.scenario, run.broker), []).append(run)
        if run.scenario not in order:
            order.append(run.scenario)
        if run.broker not in brokers_seen:
            brokers_seen.append(run.broker)
    kinds = {run.scenario: run.kind for run in runs}
    medians: dict[tuple[str, str, str], float | None] = {}
    for kind in ("idle", "retained", "routing"):
        names = [n for n in order if kinds[n] == kind]
        if not names:
            continue
        columns = COLUMNS[kind]
        rows = []
        for name in names:
            for broker in brokers_seen:
                group = groups.get((name, broker), [])
                if not group:
                    continue
                cells = []
                for heading, key, scale in columns:
                    value = median([_value(r.result, key, scale) for r in group])
                    medians[(name, broker, heading)] = value
                    cells.append(fmt(value))
                ok = sum(r.status == "ok" for r in group)
                status = group[0].status if ok == 0 else f"{ok}/{len(group)} ok"
                rows.append([name, broker, *cells, status])
        lines += [
            f"{kind}:",
            "",
            *_table(["scenario", "broker", *(c[0] for c in columns), "status"], rows),
            "",
        ]
    ratio_rows = []
    for name in order:
        for heading in RATIOS[kinds[name]]:
            roost = medians.get((name, "roost", heading))
            for other in (b for b in brokers_seen if b != "roost"):
                theirs = medians.get((name, other, heading))
                if roost is not None and theirs:
                    ratio_rows.append(
                        [name, f"{heading}, roost / {other}", f"{roost / theirs:.2f}"]
                    )
    if ratio_rows:
        lines += [
            "Roost / Mosquitto (medians):",
            "",
            *_table(["scenario", "metric", "ratio"], ratio_rows),
            "",
        ]
    routing = sorted(
        (n for n in order if kinds[n] == "routing"), key=lambda n: int(n.split("-")[1])
    )
    if len(routing) > 1:
        base, heavy = routing[0], routing[-1]
        rows = []
        for broker in brokers_seen:
            a = medians.get((base, broker, "msgs/s"))
            b = medians.get((heavy, broker, "msgs/s"))
            if a and b is not None:
                rows.append([broker, f"{heavy} / {base}", f"{b / a:.2f}"])
        lines += ["Routing cost of unrelated subscriptions (msgs/s ratio; 1.00 = none):", "",
                  *_table(["broker", "runs", "ratio"], rows), ""]  # fmt: skip
    problems = [
        f"rep {r.rep} {r.scenario} {r.broker}: status={r.status}; " + "; ".join(r.problems)
        for r in runs
        if r.status != "ok" or r.problems
    ]
    lines += ["Problems:" if problems else "Problems: none.", *problems]
    return lines


def run(args: argparse.Namespace) -> int:
    scenarios = build(args)
    if args.only:
        pattern = re.compile(args.only)
        scenarios = [s for s in scenarios if pattern.search(s.name)]
    if args.list:
        for s in scenarios:
            print(f"{s.name:<18} roost bench {' '.join(s.args)}")
        return 0
    try:
        generator = loadgen.Generator("roost-bench", loadgen.roost_executable(), args.gen_processes)
        mosquitto = brokers.mosquitto_executable(args.mosquitto)
        specs = brokers.broker_specs(mosquitto)
    except (loadgen.LoadgenError, brokers.BrokerError) as exc:
        print(exc, file=sys.stderr)
        return 1
    wanted = [b.strip() for b in args.brokers.split(",") if b.strip()]
    specs = tuple(s for s in specs if s.name in wanted)
    logs = Path(args.logs) if args.logs else Path(tempfile.mkdtemp(prefix="roost-bench-scale-"))
    logs.mkdir(parents=True, exist_ok=True)
    print(f"broker logs: {logs}", file=sys.stderr)
    meta = machine_info(generator, mosquitto) | {
        "open_files_limit": resource.getrlimit(resource.RLIMIT_NOFILE),
        "scenarios": {s.name: " ".join(s.args) for s in scenarios},
    }
    runs: list[ScaleRun] = []
    started = time.monotonic()
    try:
        for rep in range(1, args.reps + 1):
            for scenario in scenarios:
                order = specs if rep % 2 else specs[::-1]
                for spec in order:
                    run_ = run_one(spec, scenario, rep, generator, logs)
                    runs.append(run_)
                    summary = " ".join(
                        f"{k}={(run_.result or {}).get(k)}"
                        for k in (
                            "conn_per_s",
                            "broker_rss_per_conn_kb",
                            "deliver_secs",
                            "msgs_per_s",
                        )
                        if run_.result and k in run_.result
                    )
                    print(f"[{len(runs)}] {scenario.name} {spec.name}: {run_.status} {summary}",
                          file=sys.stderr, flush=True)  # fmt: skip
    except KeyboardInterrupt:
        print("interrupted; reporting the runs so far", file=sys.stderr)
    meta["elapsed_s"] = round(time.monotonic() - started, 1)
    lines = [f"Load generator: {meta['generator_version']}.", "", *report(runs)]
    print("\n".join(lines))
    if args.json:
        payload = {"meta": meta, "runs": [asdict(r) for r in runs], "report": lines}
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    return 0 if all(r.status == "ok" for r in runs) else 2
