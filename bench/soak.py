"""Memory over time: a broker under mixed load for ``--minutes``, RSS every ``--interval``.

Per broker (a fresh process each), these run side by side, each a ``roost bench``:

* steady QoS 1 pairs: 10 publisher/subscriber pairs at ``--rate`` msg/s in total;
* QoS 0 fan-out: 1 publisher → 10 subscribers at a tenth of that rate;
* connection churn: 500 connections, each subscribed, held 2 s, closed; again and again;
* retained churn: 2000 retained messages stored, caught up by a subscriber, cleared;
  again and again.

A broker that leaks per connection, per session, per retained message or per message
shows a rising curve; one that does not levels off after warm-up. The report gives
the samples side by side, and per broker the start, peak and end RSS and the slope over
the second half of the run (KiB per minute).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import brokers, loadgen
from bench.load import machine_info
from bench.load_report import _table

HELP = "memory over time under mixed load (RSS every 10 s for 10 min; roost bench)"
CHURN_CONNECTIONS = 500
RETAINED_TOPICS = 2000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=10.0, help="per broker (10)")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--rate", type=int, default=2000,
                        help="QoS 1 pairs: msg/s in all (2000; fan-out gets a tenth)")  # fmt: skip
    parser.add_argument("--brokers", default="roost,mosquitto", help="(roost,mosquitto)")
    parser.add_argument("--mosquitto", metavar="PATH", help="the mosquitto binary")
    parser.add_argument("--json", metavar="FILE", help="write the samples here")
    parser.add_argument("--logs", metavar="DIR", help="broker logs (default: a new temp dir)")


@dataclass(slots=True)
class Soak:
    broker: str
    samples: list[tuple[float, int]] = field(default_factory=list)  # (seconds, RSS KiB)
    cpu_s: float = 0.0
    rounds: dict[str, int] = field(default_factory=dict)  # churn loops completed
    failures: list[str] = field(default_factory=list)

    def slope_kib_per_min(self) -> float | None:
        """Least-squares slope over the second half of the samples."""
        half = self.samples[len(self.samples) // 2 :]
        if len(half) < 2:
            return None
        n = len(half)
        mean_t = sum(t for t, _ in half) / n
        mean_r = sum(r for _, r in half) / n
        var = sum((t - mean_t) ** 2 for t, _ in half)
        if not var:
            return None
        cov = sum((t - mean_t) * (r - mean_r) for t, r in half)
        return 60 * cov / var


def _bench(roost: Path, port: int, *args: str) -> list[str]:
    return [str(roost), "bench", *args, "-p", str(port), "--quiet"]


def _status(output: str) -> str:
    for line in reversed(output.splitlines()):
        if line.startswith("RESULT "):
            return str(loadgen.parse_result(line).get("status", "?"))
    return "NO_RESULT"


def soak_one(spec: brokers.BrokerSpec, args: argparse.Namespace, roost: Path, logs: Path) -> Soak:
    seconds = args.minutes * 60
    broker = brokers.start(spec, logs, f"soak-{spec.name}")
    soak = Soak(spec.name)
    port = broker.port
    steady = [
        _bench(roost, port, "pubsub", "--shape", "pairs", "-q", "1", "-c", "10",
               "-r", str(args.rate), "-d", f"{seconds:g}"),
        _bench(roost, port, "pubsub", "--shape", "fanout", "-q", "0", "-c", "10",
               "-r", str(max(1, args.rate // 10)), "-d", f"{seconds:g}"),
    ]  # fmt: skip
    churn = {
        "conn": _bench(roost, port, "conn", "-c", str(CHURN_CONNECTIONS), "--hold", "2"),
        "retained": _bench(roost, port, "retained", "--topics", str(RETAINED_TOPICS),
                           "--drain-timeout", "5"),
    }  # fmt: skip
    running = {
        " ".join(c[2:5]): subprocess.Popen(
            c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for c in steady
    }
    loops: dict[str, subprocess.Popen[str]] = {}
    started = time.monotonic()
    cpu_start = loadgen_cpu(broker.pid)
    next_sample = started
    try:
        while (now := time.monotonic()) - started < seconds:
            if now >= next_sample:
                soak.samples.append((round(now - started, 1), _rss_kb(broker.pid)))
                next_sample += args.interval
            for name, command in churn.items():
                process = loops.get(name)
                if process is not None and process.poll() is None:
                    continue
                if process is not None:
                    out = process.stdout.read() if process.stdout else ""
                    status = _status(out)
                    soak.rounds[name] = soak.rounds.get(name, 0) + 1
                    if status != "ok":
                        soak.failures.append(f"{name} round {soak.rounds[name]}: {status}")
                loops[name] = subprocess.Popen(
                    command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
                )
            time.sleep(0.2)
        soak.samples.append((round(time.monotonic() - started, 1), _rss_kb(broker.pid)))
        soak.cpu_s = loadgen_cpu(broker.pid) - cpu_start
    finally:
        for name, process in [*running.items(), *loops.items()]:
            try:
                out, _ = process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                out, _ = process.communicate()
            if name in running and _status(out) != "ok":
                soak.failures.append(f"steady load {name}: {_status(out)}")
        exit_ = broker.stop()
        soak.failures += exit_.log_problems
    return soak


def loadgen_cpu(pid: int) -> float:
    from roost.loadtest.procstats import cpu_ns  # noqa: PLC0415

    return cpu_ns(pid) / 1e9


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def report(soaks: list[Soak]) -> list[str]:
    lines = ["RSS (MiB) over time:", ""]
    times = [t for t, _ in soaks[0].samples] if soaks else []
    rows = []
    for i, t in enumerate(times):
        cells = [f"{t:g}", ""]
        cells += [f"{s.samples[i][1] / 1024:.1f}" if i < len(s.samples) else "-" for s in soaks]
        rows.append(cells)
    lines += [*_table(["t (s)", "", *(s.broker for s in soaks)], rows), ""]
    summary = []
    for soak in soaks:
        rss = [r for _, r in soak.samples]
        slope = soak.slope_kib_per_min()
        summary.append([
            soak.broker, "",
            f"{rss[0] / 1024:.1f}", f"{max(rss) / 1024:.1f}", f"{rss[-1] / 1024:.1f}",
            "-" if slope is None else f"{slope:+.0f}",
            f"{soak.cpu_s:.0f}",
            ", ".join(f"{k} {v}" for k, v in sorted(soak.rounds.items())),
        ])  # fmt: skip
    header = ["broker", "", "start MiB", "peak MiB", "end MiB", "2nd-half slope KiB/min",
              "broker CPU s", "churn rounds"]  # fmt: skip
    lines += [*_table(header, summary), ""]
    problems = [f"{s.broker}: {f}" for s in soaks for f in s.failures]
    lines += ["Problems:" if problems else "Problems: none.", *problems]
    return lines


def run(args: argparse.Namespace) -> int:
    try:
        roost = loadgen.roost_executable()
        mosquitto = brokers.mosquitto_executable(args.mosquitto)
        specs = brokers.broker_specs(mosquitto)
    except (loadgen.LoadgenError, brokers.BrokerError) as exc:
        print(exc, file=sys.stderr)
        return 1
    wanted = [b.strip() for b in args.brokers.split(",") if b.strip()]
    logs = Path(args.logs) if args.logs else Path(tempfile.mkdtemp(prefix="roost-bench-soak-"))
    logs.mkdir(parents=True, exist_ok=True)
    soaks = []
    for spec in (s for s in specs if s.name in wanted):
        print(f"{spec.name}: {args.minutes:g} min of mixed load", file=sys.stderr, flush=True)
        soaks.append(soak_one(spec, args, roost, logs))
    lines = report(soaks)
    print("\n".join(lines))
    if args.json:
        generator = loadgen.Generator("roost-bench", roost)
        payload = {
            "meta": machine_info(generator, mosquitto) | {"minutes": args.minutes},
            "soaks": [asdict(s) for s in soaks],
            "report": lines,
        }
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    return 0 if all(not s.failures for s in soaks) else 2
