"""What QoS 1 for a shared group across nodes costs (docs/clustering.md, "Shared
subscriptions"): a two-node cluster, a member of ``$share/g/shared/#`` on each node and
the publisher on node a, against a plain subscriber on node b (the ``ROOST_QOS`` path)
and a topic nobody else wants (no stream at all).

For each: PUBACK round trips of ``COUNT`` QoS 1 PUBLISHes sent one after the other
(p50/p99), then ``COUNT`` sent at once (paho's window) and the time until the last one
reached its subscriber(s).

Run from a checkout (it starts its own brokers and nats-server with the test suite's
helpers): ``PYTHONPATH=. .venv/bin/python bench/cluster_shared_qos.py [COUNT]``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.cluster.nodes import PROBE, NatsServer, linked, start_node
from tests.support.paho import PahoClient

from roost.codec import MQTT_5


def received(clients: list[PahoClient], count: int, timeout: float = 120.0) -> int:
    """Take messages (probes aside) from ``clients`` until ``count`` came; how many did."""
    got = 0
    deadline = time.monotonic() + timeout
    while got < count and time.monotonic() < deadline:
        for client in clients:
            while not client.messages.empty():
                if not bytes(client.messages.get_nowait().payload).startswith(PROBE):
                    got += 1
        time.sleep(0.001)
    return got


def run(publisher: PahoClient, topic: str, label: str, count: int, sinks: list[PahoClient]) -> None:
    times = []
    for index in range(count):
        started = time.perf_counter()
        publisher.publish(topic, b"x%d" % index, 1)  # returns on the PUBACK
        times.append(time.perf_counter() - started)
    received(sinks, count if sinks else 0)
    times.sort()
    p50, p99 = statistics.median(times) * 1e3, times[int(count * 0.99)] * 1e3
    started = time.perf_counter()
    publisher.publish_all(topic, [b"y%d" % i for i in range(count)], 1)
    acked = time.perf_counter() - started
    got = received(sinks, count) if sinks else count
    done = time.perf_counter() - started
    print(
        f"{label}: PUBACK p50 {p50:.2f} ms, p99 {p99:.2f} ms; {count} at once: all acked in"
        f" {acked:.2f} s, {got} received in {done:.2f} s ({count / done:,.0f} msg/s)"
    )


def main(count: int) -> None:
    tmp = Path(tempfile.mkdtemp())
    nats = NatsServer(tmp / "jetstream")
    a, b = start_node(tmp, "a", nats.url), start_node(tmp, "b", nats.url)
    clients: list[PahoClient] = []
    try:
        publisher = PahoClient(a.port, "publisher", MQTT_5)
        member_a = PahoClient(a.port, "member-a", MQTT_5)
        member_b = PahoClient(b.port, "member-b", MQTT_5)
        plain = PahoClient(b.port, "plain", MQTT_5)
        clients = [publisher, member_a, member_b, plain]
        member_a.subscribe("$share/g/shared/#", 1)
        member_b.subscribe("$share/g/shared/#", 1)
        plain.subscribe("plain/#", 1)
        linked(publisher, plain, "plain/probe")
        time.sleep(2)  # node a has node b's group record too
        run(publisher, "alone/x", "no other subscriber", count, [])
        run(publisher, "plain/x", "plain subscriber on b", count, [plain])
        run(publisher, "shared/x", "shared group on a and b", count, [member_a, member_b])
    finally:
        for client in clients:
            client.stop()
        a.stop()
        b.stop()
        nats.kill()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
