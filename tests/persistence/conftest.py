"""Fixtures for the persistence tests: broker processes that never outlive their test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.persistence.process import BrokerProcess

StartProcess = Callable[..., BrokerProcess]


@pytest.fixture
def start_process(tmp_path: Path) -> Iterator[StartProcess]:
    """``start_process(*args)``: a `roost broker` on ``tmp_path / "data"``; any still
    running when the test ends is killed."""
    started: list[BrokerProcess] = []

    def start(*args: str) -> BrokerProcess:
        process = BrokerProcess(tmp_path / "data", *args)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.proc.poll() is None:
            process.kill()
