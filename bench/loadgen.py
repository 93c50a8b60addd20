"""Run a load generator and read its ``RESULT`` line: mqttload, or Roost's own.

mqttload is an external C tool that Roost does not depend on: its path comes from
``--mqttload PATH`` or the ``MQTTLOAD`` environment variable. Without either, the
harness uses ``roost bench`` (roost.loadtest), whose RESULT line has the same keys.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.scenarios import Load

ENV_VAR = "MQTTLOAD"
MISSING_MESSAGE = f"""\
mqttload is given with --mqttload PATH or the {ENV_VAR} environment variable,
e.g.  {ENV_VAR}=/tmp/mqttload/mqttload make bench ARGS=load"""

Value = int | float | str
Result = dict[str, Value]


class LoadgenError(Exception):
    """The load generator is missing or not runnable."""


@dataclass(frozen=True, slots=True)
class Generator:
    """Which load generator runs the scenarios, and how to call it."""

    name: str  # "mqttload" or "roost-bench"
    executable: Path
    processes: int = 1  # roost bench -j

    def command(self, port: int, load: Load, broker_pid: int, tag: str) -> list[str]:
        if self.name == "mqttload":
            args = load.mqttload_args()
            return [
                str(self.executable),
                "-p",
                str(port),
                *args,
                "-b",
                str(broker_pid),
                "--tag",
                tag,
            ]
        args = load.roost_bench_args()
        return [
            *(str(self.executable), "bench", *args, "-p", str(port), "-b", str(broker_pid)),
            *("-j", str(self.processes), "--quiet"),
        ]

    def version(self) -> str:
        if self.name != "mqttload":
            done = subprocess.run(
                [str(self.executable), "--version"], capture_output=True, text=True, check=False
            )
            return f"roost bench ({done.stdout.strip()}, {self.processes} worker process(es))"
        completed = subprocess.run(
            [str(self.executable), "--help"],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
        lines = (completed.stdout or completed.stderr).splitlines()
        return lines[0].split(" - ")[0] if lines else "unknown"


def find_mqttload(explicit: str | None) -> Path | None:
    """mqttload's path from the option or the environment; None when neither names one."""
    candidate = explicit or os.environ.get(ENV_VAR)
    if not candidate:
        return None
    path = Path(candidate)
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise LoadgenError(f"mqttload not found or not executable at {path}\n\n{MISSING_MESSAGE}")
    return path


def roost_executable() -> Path:
    """The ``roost`` script of the running interpreter's environment."""
    beside = Path(sys.executable).parent / "roost"
    if beside.exists():
        return beside
    found = shutil.which("roost")
    if found is None:
        raise LoadgenError("cannot find the roost command; install the project (make bench)")
    return Path(found)


def find_generator(mqttload: str | None, processes: int = 1) -> Generator:
    """mqttload when one is given, else roost bench."""
    path = find_mqttload(mqttload)
    if path is not None:
        return Generator("mqttload", path)
    return Generator("roost-bench", roost_executable(), processes)


def raise_open_files_limit(wanted: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE (children inherit it); return the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def _convert(text: str) -> Value:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def parse_result(line: str) -> Result:
    """``RESULT key=value key=value ...`` -> {key: int | float | str}; NA stays a string."""
    fields = line.split()
    if not fields or fields[0] != "RESULT":
        raise ValueError(f"not a RESULT line: {line!r}")
    result: Result = {}
    for item in fields[1:]:
        key, _, value = item.partition("=")
        result[key] = _convert(value)
    return result


@dataclass(slots=True)
class LoadRun:
    """One generator invocation: its command, exit status and parsed RESULT line."""

    command: list[str]
    returncode: int
    timed_out: bool
    summary: str  # the human-readable line
    result: Result | None
    stderr: str

    @property
    def status(self) -> str:
        if self.result is None:
            return "NO_RESULT"
        return str(self.result.get("status", "NO_STATUS"))


def run(
    generator: Generator, port: int, load: Load, broker_pid: int, timeout: float, tag: str
) -> LoadRun:
    return run_command(generator.command(port, load, broker_pid, tag), timeout)


def run_command(command: list[str], timeout: float) -> LoadRun:
    """Run a generator command line to its end (SIGTERM after ``timeout``); parse RESULT."""
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    timed_out = False
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # SIGTERM still makes mqttload print a RESULT line, marked ABORTED; roost bench
        # prints one for an interrupted run too.
        timed_out = True
        process.send_signal(signal.SIGTERM)
        try:
            stdout, stderr = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
    result: Result | None = None
    summary = ""
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            result = parse_result(line)
        elif line.strip():
            summary = line.strip()
    return LoadRun(command, process.returncode, timed_out, summary, result, stderr.strip())
