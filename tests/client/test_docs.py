"""The examples in docs/client.md are complete programs: run each against a broker."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.cli.helpers import run
from tests.client.servers import Server

DOC = Path(__file__).resolve().parents[2] / "docs" / "client.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
PROGRAMS = [block for block in BLOCKS if "asyncio.run(main())" in block]
ADDRESS = 'HOST, PORT = "localhost", 1883'


def test_the_examples_are_found() -> None:
    assert len(PROGRAMS) >= 4
    assert all(ADDRESS in program for program in PROGRAMS)


@pytest.mark.parametrize("index", range(len(PROGRAMS)))
async def test_example_runs(roost: Server, index: int) -> None:
    program = PROGRAMS[index].replace(ADDRESS, f'HOST, PORT = "127.0.0.1", {roost.port}')
    result = await run(sys.executable, "-c", program)
    assert result.returncode == 0, result.stderr
    assert result.stdout, "every example prints what it received"
