"""Fixtures for the password-file tests: a real Mosquitto started on demand."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.auth.real_mosquitto import Mosquitto


@pytest.fixture
def start_mosquitto(tmp_path: Path) -> Iterator[Callable[[Path], Mosquitto]]:
    """``start_mosquitto(password_file)``: a running Mosquitto, stopped after the test."""
    started: list[Mosquitto] = []

    def start(password_file: Path) -> Mosquitto:
        workdir = tmp_path / f"mosquitto-{len(started)}"
        workdir.mkdir()
        broker = Mosquitto(password_file, workdir)
        started.append(broker)
        return broker

    yield start
    for broker in started:
        broker.stop()
