"""Another process's CPU time and memory from /proc (Linux), and this one's file limit.

``--broker-pid PID`` makes the load tool report the broker's CPU over the measured
window (the sum of every thread's ``schedstat`` run time, in ns, so it is exact, not
tick-sampled) and its VmRSS / VmHWM at the end.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class ProcSample:
    """One reading of a process's CPU time and memory, to diff across a window."""

    cpu_ns: int
    rss_kb: int
    hwm_kb: int


def cpu_ns(pid: int) -> int:
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # the thread ended between listing and reading
    return total


def memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in KiB."""
    rss = hwm = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    return rss, hwm


def sample(pid: int | None) -> ProcSample | None:
    if pid is None:
        return None
    try:
        rss, hwm = memory_kb(pid)
        return ProcSample(cpu_ns(pid), rss, hwm)
    except OSError:
        return None


def cpu_pct(before: ProcSample | None, after: ProcSample | None, seconds: float) -> float | None:
    """CPU between two samples; 100 = one core busy for the whole window."""
    if before is None or after is None or seconds <= 0:
        return None
    return round(100 * (after.cpu_ns - before.cpu_ns) / 1e9 / seconds, 1)


def raise_open_files_limit(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards ``wanted`` (up to the hard limit); return it.

    Child processes inherit it, which is how the worker processes and a broker started
    from the same shell get their descriptors.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft if soft != resource.RLIM_INFINITY else wanted
