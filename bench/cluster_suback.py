"""SUBACK latency for filters new to a node: a broker alone against a node of a two-node
cluster (where the SUBACK waits until the other node knows the filter, docs/clustering.md
"Subscriptions take effect before their SUBACK").

Run from a checkout (it starts its own brokers and nats-server with the test suite's
helpers): ``PYTHONPATH=. .venv/bin/python bench/cluster_suback.py [COUNT]``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.cluster.nodes import NatsServer, linked, start_node
from tests.persistence.process import BrokerProcess
from tests.support.paho import PahoClient

from roost.codec import MQTT_5


def suback_times(port: int, label: str, count: int) -> None:
    client = PahoClient(port, f"timer-{label}", MQTT_5)
    times = []
    for index in range(count):
        started = time.perf_counter()
        client.subscribe(f"fresh/{label}/{index}/+", 1)  # returns on the SUBACK
        times.append(time.perf_counter() - started)
    client.stop()
    times.sort()
    p50, p99 = statistics.median(times) * 1e3, times[int(count * 0.99)] * 1e3
    print(f"{label}: {count} SUBACKs, p50 {p50:.2f} ms, p99 {p99:.2f} ms")


def main(count: int) -> None:
    tmp = Path(tempfile.mkdtemp())
    alone = BrokerProcess(tmp / "alone")
    try:
        suback_times(alone.port, "alone", count)
    finally:
        alone.stop()
    nats = NatsServer(tmp / "jetstream")
    a, b = start_node(tmp, "a", nats.url), start_node(tmp, "b", nats.url)
    try:
        publisher = PahoClient(a.port, "publisher", MQTT_5)
        subscriber = PahoClient(b.port, "subscriber", MQTT_5)
        subscriber.subscribe("ready/#", 0)
        linked(publisher, subscriber, "ready/probe")
        time.sleep(2)  # both nodes have heard each other's heartbeat
        suback_times(b.port, "cluster-node", count)
        publisher.stop()
        subscriber.stop()
    finally:
        a.stop()
        b.stop()
        nats.kill()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
