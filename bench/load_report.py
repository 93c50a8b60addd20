"""Summaries of load runs: medians per (scenario, broker), Roost/Mosquitto ratios, tables.

Tables are Markdown, so the output can go straight into docs/performance.md. Medians
include every run that produced a RESULT line, ok or not; the ``ok`` column and the
problem list say which were not clean.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bench.loadgen import Result

GEN_CPU_LIMIT = 90.0  # mqttload README: above ~90% generator CPU, treat results as a floor
ROOST = "roost"


@dataclass(slots=True)
class Run:
    """One (repetition, scenario, broker) run, as the report needs it."""

    scenario: str
    kind: str
    broker: str
    rep: int
    status: str
    result: Result | None
    problems: list[str] = field(default_factory=list)  # broker log lines, early exits


def number(result: Result | None, key: str) -> float | None:
    if result is None:
        return None
    value = result.get(key)
    return float(value) if isinstance(value, int | float) else None


def rss_per_conn_kb(result: Result | None) -> float | None:
    end = number(result, "broker_rss_kb")
    start = number(result, "broker_rss_start_kb")
    connected = number(result, "connected")
    if end is None or start is None or not connected:
        return None
    return (end - start) / connected


Metric = Callable[[Result | None], float | None]


def key_metric(key: str) -> Metric:
    return lambda result: number(result, key)


METRICS: dict[str, Metric] = {
    "msgs/s": key_metric("msgs_per_s"),
    "p50 µs": key_metric("p50_us"),
    "p99 µs": key_metric("p99_us"),
    "broker CPU %": key_metric("broker_cpu_pct"),
    "gen CPU %": key_metric("gen_cpu_pct"),
    # /proc/stat of the whole machine, tick-sampled: good for busy runs, coarse for the
    # latency run (many short wakeups). Well above broker + gen: something else ran.
    "machine CPU %": key_metric("machine_cpu_pct"),
    "RSS MiB": lambda result: _mib(number(result, "broker_rss_kb")),
    "conn/s": key_metric("conn_per_s"),
    "connected": key_metric("connected"),
    "RSS start MiB": lambda result: _mib(number(result, "broker_rss_start_kb")),
    "RSS/conn KiB": rss_per_conn_kb,
    "connack p99 µs": key_metric("connack_p99_us"),
}

# Which medians each kind of scenario shows, and which of them get a Roost/Mosquitto
# ratio (for latencies and memory a ratio above 1 means Roost is worse).
COLUMNS = {
    "throughput": (
        *("msgs/s", "p50 µs", "p99 µs", "broker CPU %", "gen CPU %", "machine CPU %", "RSS MiB"),
    ),
    "latency": ("msgs/s", "p50 µs", "p99 µs", "broker CPU %", "gen CPU %", "RSS MiB"),
    "conn": ("conn/s", "connected", "RSS start MiB", "RSS MiB", "RSS/conn KiB", "broker CPU %"),
}
RATIO_METRICS = {
    "throughput": ("msgs/s",),
    "latency": ("p50 µs", "p99 µs"),
    "conn": ("conn/s", "RSS/conn KiB"),
}


def _mib(kib: float | None) -> float | None:
    return None if kib is None else kib / 1024


def median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _groups(runs: Sequence[Run]) -> dict[tuple[str, str], list[Run]]:
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.scenario, run.broker), []).append(run)
    return groups


def _ordered(runs: Sequence[Run]) -> tuple[list[str], list[str], dict[str, str]]:
    scenarios: list[str] = []
    brokers: list[str] = []
    kinds: dict[str, str] = {}
    for run in runs:
        if run.scenario not in kinds:
            scenarios.append(run.scenario)
            kinds[run.scenario] = run.kind
        if run.broker not in brokers:
            brokers.append(run.broker)
    brokers.sort(key=lambda name: (name != ROOST, name))
    return scenarios, brokers, kinds


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(header[i]), *(len(row[i]) for row in rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        padded = (
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join(("-" * (w + 1) + ":") if i >= 2 else "-" * (w + 2) for i, w in enumerate(widths))
        + "|"
    )
    return [line(header), rule, *(line(row) for row in rows)]


def results_tables(runs: Sequence[Run]) -> list[str]:
    """One Markdown table per kind of scenario: medians over repetitions per broker."""
    scenarios, brokers, kinds = _ordered(runs)
    groups = _groups(runs)
    out: list[str] = []
    for kind in ("throughput", "latency", "conn"):
        names = [s for s in scenarios if kinds[s] == kind]
        if not names:
            continue
        columns = COLUMNS[kind]
        header = ["scenario", "broker", *columns, "range" if kind != "conn" else "alive", "ok"]
        rows: list[list[str]] = []
        for name in names:
            for broker in brokers:
                group = groups.get((name, broker), [])
                if not group:
                    continue
                results = [run.result for run in group]
                cells = [fmt(median([METRICS[c](r) for r in results])) for c in columns]
                gen = [number(r, "gen_cpu_pct") for r in results]
                if kind != "conn" and any(g is not None and g > GEN_CPU_LIMIT for g in gen):
                    cells[columns.index("gen CPU %")] += "*"
                if kind == "conn":
                    alive = median([number(r, "alive") for r in results])
                    extra = fmt(alive)
                else:
                    rates = [v for v in (number(r, "msgs_per_s") for r in results) if v is not None]
                    extra = f"{fmt(min(rates))}..{fmt(max(rates))}" if rates else "-"
                ok = sum(run.status == "ok" for run in group)
                rows.append([name, broker, *cells, extra, f"{ok}/{len(group)}"])
        out += [f"{kind}:", "", *_table(header, rows), ""]
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def ratio_table(runs: Sequence[Run]) -> list[str]:
    """Roost / each Mosquitto variant: the ratio of medians, and the range of per-rep ratios."""
    scenarios, brokers, kinds = _ordered(runs)
    others = [b for b in brokers if b != ROOST]
    if ROOST not in brokers or not others:
        return []
    groups = _groups(runs)
    header = ["scenario", "metric", *(f"roost / {b}" for b in others)]
    rows: list[list[str]] = []
    for name in scenarios:
        for metric_name in RATIO_METRICS[kinds[name]]:
            metric = METRICS[metric_name]
            roost = {run.rep: metric(run.result) for run in groups.get((name, ROOST), [])}
            cells: list[str] = []
            for other in others:
                theirs = {run.rep: metric(run.result) for run in groups.get((name, other), [])}
                value = _ratio(median(list(roost.values())), median(list(theirs.values())))
                paired = [_ratio(roost[rep], theirs[rep]) for rep in roost if rep in theirs]
                spread = [p for p in paired if p is not None]
                cell = f"{value:.2f}" if value is not None else "-"
                if len(spread) > 1:
                    cell += f" ({min(spread):.2f}..{max(spread):.2f})"
                cells.append(cell)
            rows.append([name, metric_name, *cells])
    return _table(header, rows)


def problem_lines(runs: Sequence[Run]) -> list[str]:
    """Every run that was not clean: mqttload status, loss and dup, broker log problems."""
    lines: list[str] = []
    for run in runs:
        if run.status == "ok" and not run.problems:
            continue
        r = run.result
        detail = ", ".join(
            f"{key}={r[key]}"
            for key in ("lost", "dup", "reorder", "stalls", "failed", "proto_err", "bad_ack")
            if r is not None and key in r and r[key] not in (0, "0")
        )
        lines.append(f"rep {run.rep} {run.scenario} {run.broker}: status={run.status} {detail}")
        lines.extend(f"    {problem}" for problem in run.problems)
    return lines
