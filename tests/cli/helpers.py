"""Running `roost pub/sub/rr` and Mosquitto's clients as subprocesses, without sleeps.

A subscriber started in the background is known to be subscribed when its debug output
(-d) shows the SUBACK: ``start_sub`` reads up to that line before returning.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

ROOST = (sys.executable, "-m", "roost")
TIMEOUT = 10.0


@dataclass
class Result:
    returncode: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout.decode()


async def run(*command: str, stdin: bytes | None = None, timeout: float = TIMEOUT) -> Result:
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await process.communicate(stdin)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return Result(process.returncode, out, err.decode(errors="replace"))


async def roost(tool: str, port: int, *args: str, stdin: bytes | None = None) -> Result:
    return await run(*ROOST, tool, "-h", "127.0.0.1", "-p", str(port), *args, stdin=stdin)


@dataclass
class Background:
    process: asyncio.subprocess.Process

    async def finish(self, timeout: float = TIMEOUT) -> Result:
        async with asyncio.timeout(timeout):
            out, err = await self.process.communicate()
        assert self.process.returncode is not None
        return Result(self.process.returncode, out, err.decode(errors="replace"))


async def _read_until(stream: asyncio.StreamReader, marker: bytes) -> bytes:
    seen = b""
    async with asyncio.timeout(TIMEOUT):
        while marker not in seen:
            line = await stream.readline()
            if not line:
                raise AssertionError(f"stream ended before {marker!r}; saw {seen!r}")
            seen += line
    return seen


@asynccontextmanager
async def start_sub(*command: str, mosquitto: bool = False) -> AsyncIterator[Background]:
    """Start a subscriber with -d; return once its SUBACK has been received."""
    if mosquitto:
        # mosquitto_sub's debug lines sit in stdio's pipe buffer unless it is line-buffered.
        command = ("stdbuf", "-oL", *command)
    process = await asyncio.create_subprocess_exec(
        *command,
        "-d",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        # mosquitto_sub prints its debug lines on stdout, roost sub on stderr.
        stream = process.stdout if mosquitto else process.stderr
        assert stream is not None
        await _read_until(stream, b"received SUBACK")
        yield Background(process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.communicate()


@asynccontextmanager
async def roost_sub(port: int, *args: str) -> AsyncIterator[Background]:
    async with start_sub(*ROOST, "sub", "-h", "127.0.0.1", "-p", str(port), *args) as sub:
        yield sub


def sub_lines(result: Result) -> list[str]:
    """Output lines of mosquitto_sub -d without its debug lines."""
    debug = ("Client ", "Subscribed (mid")
    return [line for line in result.text.splitlines() if not line.startswith(debug)]
