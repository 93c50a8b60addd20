"""Run the external load generator, mqttload, and read its ``RESULT`` line.

Roost does not depend on mqttload: its path comes from ``--mqttload PATH`` or the
``MQTTLOAD`` environment variable, and without either the harness says so and stops.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "MQTTLOAD"
MISSING_MESSAGE = f"""\
python -m bench load needs the mqttload load generator (a single C file, built with make).
Point the harness at the binary with --mqttload PATH or the {ENV_VAR} environment variable,
e.g.  {ENV_VAR}=/tmp/mqttload/mqttload make bench ARGS=load
(Roost will get a load tool of its own later; until then this benchmark uses mqttload.)"""

Value = int | float | str
Result = dict[str, Value]


class LoadgenError(Exception):
    """mqttload is missing or not runnable."""


def find_mqttload(explicit: str | None) -> Path:
    candidate = explicit or os.environ.get(ENV_VAR)
    if not candidate:
        raise LoadgenError(MISSING_MESSAGE)
    path = Path(candidate)
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise LoadgenError(f"mqttload not found or not executable at {path}\n\n{MISSING_MESSAGE}")
    return path


def version(path: Path) -> str:
    completed = subprocess.run(
        [str(path), "--help"], capture_output=True, text=True, check=False, timeout=10
    )
    lines = (completed.stdout or completed.stderr).splitlines()
    return lines[0].split(" - ")[0] if lines else "unknown"


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
    """One mqttload invocation: its command, exit status and parsed RESULT line."""

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
    path: Path, port: int, args: tuple[str, ...], broker_pid: int, timeout: float, tag: str
) -> LoadRun:
    command = [str(path), "-p", str(port), *args, "-b", str(broker_pid), "--tag", tag]
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    timed_out = False
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # SIGTERM still makes mqttload print a RESULT line, marked ABORTED.
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
