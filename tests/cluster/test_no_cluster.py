"""A broker without [cluster] loads none of the cluster code, nor nats-py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.cluster.nodes import NatsServer

PROGRAM = """
import asyncio, sys
from roost.broker import Broker, BrokerConfig, ListenerConfig
from roost.broker.config import ClusterConfig

url = sys.argv[1]
cluster = ClusterConfig([url]) if url else None

async def main() -> None:
    config = BrokerConfig(listeners=[ListenerConfig(port=0)], cluster=cluster)
    async with Broker(config) as broker:
        assert (broker.cluster is None) == (cluster is None)
        assert (broker.router.peers is None) == (cluster is None)

asyncio.run(main())
print(sorted(m for m in sys.modules if m.startswith(("roost.cluster", "nats"))))
"""


def loaded_modules(nats_url: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, nats_url],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.strip()


def test_without_cluster_nothing_of_it_is_imported(nats_server: NatsServer) -> None:
    assert loaded_modules("") == "[]"
    # The same check sees them when there is a [cluster].
    with_cluster = loaded_modules(nats_server.url)
    assert "'roost.cluster.node'" in with_cluster
    assert "'nats'" in with_cluster


def test_cluster_without_nats_py_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "roost.toml"
    config.write_text('[cluster]\nnats_url = "nats://127.0.0.1:4222"\n', encoding="utf-8")
    # As if nats-py were not installed: importing it fails.
    program = (
        "import sys; sys.modules['nats'] = None\n"
        "from roost.cli.main import main\n"
        f"sys.exit(main(['broker', '-c', {str(config)!r}, '-p', '0', '--no-persistence']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 2, done.stderr
    assert "roost broker: [cluster]: needs nats-py" in done.stderr
    assert "install roost[cluster]" in done.stderr
