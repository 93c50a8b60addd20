"""Fixtures for cluster tests: a nats-server and a factory of Roost nodes using it.

nats-server is in the Makefile's DEB_PACKAGES: without it these tests fail, not skip.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cluster.nodes import NatsServer, start_node
from tests.persistence.process import BrokerProcess

NodeFactory = Callable[..., BrokerProcess]


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "jetstream")
    yield server
    server.kill()


@pytest.fixture
def make_node(
    tmp_path: Path, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[NodeFactory]:
    """Start a node: ``make_node("a")`` joins ``nats_server``; ``nats_url=`` another."""
    nodes: list[BrokerProcess] = []
    # A node that does not stop can be made to print where it is stuck (SIGABRT).
    monkeypatch.setenv("PYTHONFAULTHANDLER", "1")

    def start(
        name: str,
        nats_url: str | None = None,
        *,
        sys_interval: float = 1.0,
        extra: str = "",
        cluster: str = "",
    ) -> BrokerProcess:
        url = nats_url or nats_server.url
        node = start_node(
            tmp_path, name, url, sys_interval=sys_interval, extra=extra, cluster=cluster
        )
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        try:
            node.stop()
        except subprocess.TimeoutExpired:
            node.proc.send_signal(signal.SIGABRT)
            node.proc.wait(5)
            raise AssertionError(f"node did not stop on SIGTERM; its log:\n{node.log}") from None
