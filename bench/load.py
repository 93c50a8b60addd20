"""Load benchmark: Roost against Mosquitto (Nagle on, and off) under a load generator.

Every (repetition, scenario, broker) run starts a fresh broker process on a free port,
runs one generator scenario against it with ``-b <broker pid>`` (so the broker's CPU and
RSS are sampled), and stops the broker. Brokers take turns within each scenario, and
the order rotates every repetition, so slow drift on the machine is shared. The table
gives medians over repetitions and the Roost / Mosquitto ratio of those medians.

The generator is mqttload when one is given (``--mqttload PATH`` or ``$MQTTLOAD``; an
external C tool), else Roost's own ``roost bench``; the report says which (loadgen.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import brokers, loadgen
from bench.load_report import Run, problem_lines, ratio_table, results_tables
from bench.scenarios import Scenario, Settings, build_scenarios

HELP = "load scenarios against Roost and Mosquitto: msgs/s, latency, CPU, RSS"

QUICK = Settings(duration=2.0, conns=1000, hold=2.0)
QUICK_REPS = 1
DEFAULT_REPS = 3
FD_HEADROOM = 200  # descriptors beyond one per connection (listeners, logs, stdio)
REPO = Path(__file__).resolve().parent.parent


def _positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, not {text}")
        return value

    return parse


def _regex(text: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"not a regular expression: {exc}") from exc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    default = Settings()
    parser.add_argument(
        "--mqttload",
        metavar="PATH",
        help=f"generate the load with this mqttload binary (or ${loadgen.ENV_VAR}); "
        "default: roost bench",
    )
    parser.add_argument(
        "--gen-processes",
        type=_positive(int),
        default=1,
        metavar="N",
        help="roost bench: worker processes (default 1)",
    )
    parser.add_argument(
        "--mosquitto", metavar="PATH", help="the mosquitto binary (default: from PATH)"
    )
    parser.add_argument(
        "--brokers",
        default="roost,mosquitto,mosquitto-nodelay",
        help="comma-separated brokers to run (default: %(default)s)",
    )
    parser.add_argument(
        "--nats-url",
        metavar="URL",
        help="adds broker roost-cluster: Roost with [cluster] on this NATS server",
    )
    parser.add_argument(
        "--only", metavar="PATTERN", type=_regex, help="regular expression on scenario names"
    )
    parser.add_argument("--reps", type=_positive(int), help=f"repetitions (default {DEFAULT_REPS})")
    parser.add_argument(
        "--duration",
        type=_positive(float),
        help=f"seconds per throughput/latency run (default {default.duration:g})",
    )
    parser.add_argument(
        "--conns",
        type=_positive(int),
        help=f"connections in the conn scenario (default {default.conns})",
    )
    parser.add_argument(
        "--hold",
        type=_positive(float),
        help=f"conn: seconds to hold them (default {default.hold:g})",
    )
    parser.add_argument(
        "--inflight",
        type=_positive(int),
        help=f"QoS>0 unacknowledged PUBLISHes per publisher (default {default.inflight})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"short run: {QUICK_REPS} rep, {QUICK.duration:g} s runs, "
        f"{QUICK.conns} connections held {QUICK.hold:g} s",
    )
    parser.add_argument(
        "--json", metavar="FILE", help="write every run's raw RESULT and the summary here"
    )
    parser.add_argument(
        "--logs", metavar="DIR", help="broker logs and configs (default: a new temp dir)"
    )
    parser.add_argument(
        "--roost-config",
        metavar="FILE",
        help="TOML lines added to Roost's config (e.g. [[hooks]], to measure their cost)",
    )
    parser.add_argument("--list", action="store_true", help="print the scenarios and exit")


@dataclass(slots=True)
class Record:
    """Everything about one run, as written to --json."""

    rep: int
    scenario: str
    kind: str
    broker: str
    status: str
    port: int | None = None
    broker_pid: int | None = None
    broker_command: list[str] = field(default_factory=list)
    broker_log: str | None = None
    generator_command: list[str] = field(default_factory=list)
    returncode: int | None = None
    timed_out: bool = False
    summary: str = ""
    result: loadgen.Result | None = None
    generator_stderr: str = ""
    # Busy CPU of the whole machine over the generator run (100 = one core): broker and
    # generator together, plus anything else running (the box is not reserved).
    machine_cpu_pct: float | None = None
    broker_returncode: int | None = None
    broker_killed: bool = False
    broker_died_early: bool = False
    broker_log_problems: list[str] = field(default_factory=list)
    error: str | None = None

    def problems(self) -> list[str]:
        notes = list(self.broker_log_problems)
        if self.generator_stderr:
            notes.insert(0, f"generator stderr: {self.generator_stderr.splitlines()[-1]}")
        if self.timed_out:
            notes.insert(0, "the generator did not finish in time and was stopped")
        if self.broker_returncode not in (0, None) and not self.broker_killed:
            notes.insert(0, f"broker exit status {self.broker_returncode}")
        if self.broker_died_early:
            notes.insert(0, f"broker exited during the run (status {self.broker_returncode})")
        if self.broker_killed:
            notes.insert(0, "broker did not stop on SIGTERM and was killed")
        if self.error:
            notes.insert(0, self.error)
        return notes


def settings_from(args: argparse.Namespace) -> tuple[Settings, int]:
    base = QUICK if args.quick else Settings()
    settings = Settings(
        duration=args.duration if args.duration is not None else base.duration,
        inflight=args.inflight if args.inflight is not None else base.inflight,
        conns=args.conns if args.conns is not None else base.conns,
        hold=args.hold if args.hold is not None else base.hold,
        keepalive=base.keepalive,
    )
    reps = args.reps if args.reps is not None else (QUICK_REPS if args.quick else DEFAULT_REPS)
    return settings, reps


def _command_output(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=10)
    except OSError:
        return ""
    return (done.stdout or done.stderr).strip()


def machine_info(generator: loadgen.Generator, mosquitto: str | None) -> dict[str, object]:
    cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.MULTILINE)
    try:
        uvloop_version = importlib.metadata.version("uvloop")
    except importlib.metadata.PackageNotFoundError:
        uvloop_version = "not installed (stdlib asyncio)"
    mosquitto_version = _command_output([mosquitto, "-h"]).splitlines()[:1] if mosquitto else []
    dirty = _command_output(["git", "-C", str(REPO), "status", "--porcelain", "--", "src"])
    # The package the broker processes will import: the checkout, unless PYTHONPATH
    # points them at another copy (e.g. a snapshot of a commit).
    roost_module = _command_output([sys.executable, "-c", "import roost; print(roost.__file__)"])
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu_model": model.group(1) if model else "unknown",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "uvloop": uvloop_version,
        "mosquitto": mosquitto_version[0] if mosquitto_version else None,
        "generator": generator.name,
        "generator_version": generator.version(),
        # These describe the checkout; they say nothing when roost_module is elsewhere.
        "checkout_commit": _command_output(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]
        ),
        "checkout_src_uncommitted_changes": len(dirty.splitlines()),
        "roost_from_checkout": roost_module.startswith(str(REPO / "src")),
        "roost_module": roost_module,
        "pythonpath": os.environ.get("PYTHONPATH", ""),
    }


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from the first line of /proc/stat."""
    with Path("/proc/stat").open(encoding="ascii") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def machine_cpu_pct(before: tuple[int, int], after: tuple[int, int]) -> float | None:
    """Busy CPU of the whole machine between two samples; 100 = one core, like the RESULTs."""
    total = after[1] - before[1]
    if total <= 0:
        return None
    return round(100 * (os.cpu_count() or 1) * (after[0] - before[0]) / total, 1)


def run_one(
    spec: brokers.BrokerSpec,
    scenario: Scenario,
    rep: int,
    generator: loadgen.Generator,
    logs: Path,
) -> Record:
    tag = f"r{rep}-{scenario.name}-{spec.name}"
    name, kind = scenario.name, scenario.kind
    try:
        broker = brokers.start(spec, logs, tag)
    except brokers.BrokerError as exc:
        return Record(rep, name, kind, spec.name, "BROKER_START_FAILED", error=str(exc))
    try:
        before = _cpu_times()
        load = loadgen.run(generator, broker.port, scenario.load, broker.pid, scenario.timeout, tag)
        machine = machine_cpu_pct(before, _cpu_times())
    finally:
        exit_ = broker.stop()
    return Record(
        rep,
        name,
        kind,
        spec.name,
        load.status,
        port=broker.port,
        broker_pid=broker.pid,
        broker_command=broker.command,
        broker_log=str(broker.log_path),
        generator_command=load.command,
        returncode=load.returncode,
        timed_out=load.timed_out,
        summary=load.summary,
        result=load.result,
        generator_stderr=load.stderr,
        machine_cpu_pct=machine,
        broker_returncode=exit_.returncode,
        broker_killed=exit_.killed,
        broker_died_early=exit_.died_early,
        broker_log_problems=exit_.log_problems,
    )


def _progress(done: int, total: int, record: Record) -> None:
    result = record.result or {}
    if record.kind == "conn":
        figure = f"{result.get('conn_per_s', '?')} conn/s, {result.get('connected', '?')} connected"
    else:
        figure = f"{result.get('msgs_per_s', '?')} msg/s, p99 {result.get('p99_us', '?')} us"
    cpu = (
        f"cpu broker {result.get('broker_cpu_pct', '?')}% gen {result.get('gen_cpu_pct', '?')}%"
        f" machine {record.machine_cpu_pct}%"
    )
    flag = "" if record.status == "ok" and not record.problems() else "  <-- see problems"
    print(
        f"[{done}/{total}] rep {record.rep} {record.scenario} {record.broker}: "
        f"{record.status}, {figure}, {cpu}{flag}",
        file=sys.stderr,
        flush=True,
    )


def with_machine_cpu(record: Record) -> loadgen.Result | None:
    if record.result is None or record.machine_cpu_pct is None:
        return record.result
    return {**record.result, "machine_cpu_pct": record.machine_cpu_pct}


def report(records: list[Record]) -> list[str]:
    runs = [
        Run(r.scenario, r.kind, r.broker, r.rep, r.status, with_machine_cpu(r), r.problems())
        for r in records
    ]
    lines = [
        "Medians over repetitions (range: min..max msgs/s; * generator CPU > 90% in a run).",
        "",
    ]
    lines += results_tables(runs)
    ratios = ratio_table(runs)
    if ratios:
        lines += ["Roost / Mosquitto, ratio of medians (per-repetition range):", "", *ratios, ""]
    problems = problem_lines(runs)
    lines += [
        "Problems:" if problems else "Problems: none (every run status=ok, clean broker logs).",
        *problems,
    ]
    return lines


def run(args: argparse.Namespace) -> int:
    settings, reps = settings_from(args)
    scenarios = build_scenarios(settings)
    if args.only:
        pattern: re.Pattern[str] = args.only
        scenarios = tuple(s for s in scenarios if pattern.search(s.name))
    try:
        generator = loadgen.find_generator(args.mqttload, args.gen_processes)
    except loadgen.LoadgenError as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.list:
        for scenario in scenarios:
            print(scenario.describe(generator.name))
        return 0
    if not scenarios:
        print(f"no scenario matches {args.only.pattern!r}; see --list", file=sys.stderr)
        return 1
    print(f"load generator: {generator.version()}", file=sys.stderr)
    try:
        mosquitto = brokers.mosquitto_executable(args.mosquitto)
        all_specs = brokers.broker_specs(mosquitto, args.nats_url)
    except brokers.BrokerError as exc:
        print(exc, file=sys.stderr)
        return 1
    wanted = [name.strip() for name in args.brokers.split(",") if name.strip()]
    unknown = set(wanted) - {
        "roost",
        "roost-quiet",
        "roost-cluster",
        "roost-workers2",
        "mosquitto",
        "mosquitto-nodelay",
    }
    if unknown:
        print(f"unknown broker(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 1
    specs = [spec for spec in all_specs if spec.name in wanted]
    if args.roost_config:
        extra = tuple(Path(args.roost_config).read_text(encoding="utf-8").splitlines())
        specs = [
            dataclasses.replace(spec, extra_config=spec.extra_config + extra)
            if spec.kind == "roost"
            else spec
            for spec in specs
        ]
    missing = set(wanted) - {spec.name for spec in specs}
    if missing:
        print(
            f"skipping {', '.join(sorted(missing))}: not available (mosquitto: not found,"
            " --mosquitto PATH; roost-cluster: needs --nats-url URL)",
            file=sys.stderr,
        )
    if not specs:
        return 1

    limit = loadgen.raise_open_files_limit(settings.conns + FD_HEADROOM)
    if any(s.kind == "conn" for s in scenarios) and limit < settings.conns + FD_HEADROOM:
        print(
            f"warning: open-files limit is {limit}; {settings.conns} connections may fail",
            file=sys.stderr,
        )
    logs = Path(args.logs) if args.logs else Path(tempfile.mkdtemp(prefix="roost-bench-load-"))
    logs.mkdir(parents=True, exist_ok=True)
    meta = machine_info(generator, mosquitto)
    meta |= {
        "settings": asdict(settings),
        "reps": reps,
        "open_files_limit": limit,
        "scenarios": {s.name: s.describe(generator.name) for s in scenarios},
        "brokers": {
            spec.name: spec.mosquitto_config(0).splitlines()[2:]
            if spec.kind == "mosquitto"
            else spec.executable
            for spec in specs
        },
    }
    print(f"broker logs and configs: {logs}", file=sys.stderr)

    records: list[Record] = []
    total = reps * len(scenarios) * len(specs)
    started = time.monotonic()
    try:
        for rep in range(1, reps + 1):
            shift = (rep - 1) % len(specs)
            order = specs[shift:] + specs[:shift]
            for scenario in scenarios:
                for spec in order:
                    record = run_one(spec, scenario, rep, generator, logs)
                    records.append(record)
                    _progress(len(records), total, record)
    except KeyboardInterrupt:
        print("interrupted; reporting the runs so far", file=sys.stderr)
    meta["elapsed_s"] = round(time.monotonic() - started, 1)

    lines = [f"Load generator: {meta['generator_version']}.", "", *report(records)]
    print("\n".join(lines))
    if args.json:
        payload = {"meta": meta, "runs": [asdict(r) for r in records], "report": lines}
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
        print(f"raw results: {args.json}", file=sys.stderr)
    clean = len(records) == total and all(r.status == "ok" and not r.problems() for r in records)
    return 0 if clean else 2
