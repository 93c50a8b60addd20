"""/metrics parsed with prometheus-client's own parser, its values checked against
what the test did with real clients; /healthz and /readyz."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from roost.broker.config import HttpConfig
from roost.codec import MQTT_5
from tests.http.client import Api, http_port
from tests.support.broker_thread import BrokerThread
from tests.support.paho import PahoClient
from tests.support.waiting import wait_offline, wait_until

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(api: Api) -> Samples:
    reply = api.get("/metrics")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(reply.body.decode()):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[name, frozenset(labels.items())]


def test_metrics_count_what_clients_did(make_broker: Callable[..., BrokerThread]) -> None:
    broker = make_broker(
        http=HttpConfig(port=0), sys_interval=0, max_connections=2, max_queued_messages=1
    )
    api = Api(http_port(broker))
    port = broker.port
    slow = PahoClient(port, "slow", MQTT_5, clean=False, session_expiry=600)
    slow.subscribe("m/#", 1)
    slow.disconnect()
    wait_offline(broker, "slow")
    sub = PahoClient(port, "sub", MQTT_5)
    sub.subscribe("m/#", 2)
    pub = PahoClient(port, "pub", MQTT_5)
    for _ in range(2):
        pub.publish("m/zero", b"12345", 0)
    for _ in range(3):
        pub.publish("m/one", b"0123456789", 1)
    pub.publish("m/two", b"abcdefg", 2, retain=True)
    assert len(sub.take(6)) == 6
    # Over max_connections: refused with CONNACK 0x97 Quota exceeded.
    refused = PahoClient(port, "fourth", MQTT_5)
    assert refused.connect_reason.value == 0x97
    refused.stop()

    samples = scrape(api)
    assert value(samples, "roost_info", version=__import__("roost").__version__) == 1
    for qos, count, size in ((0, 2, 10), (1, 3, 30), (2, 1, 7)):
        assert value(samples, "roost_messages_received_total", qos=str(qos)) == count
        assert value(samples, "roost_messages_received_bytes_total", qos=str(qos)) == size
    # "sub" got all six at their own QoS; "slow" (offline, granted QoS 1) was handed the
    # three QoS 1 messages and the QoS 2 one at QoS 1, and the two QoS 0 ones.
    assert value(samples, "roost_messages_delivered_total", qos="0") == 4
    assert value(samples, "roost_messages_delivered_total", qos="1") == 7
    assert value(samples, "roost_messages_delivered_total", qos="2") == 1
    assert value(samples, "roost_messages_delivered_bytes_total", qos="1") == 30 + 30 + 7
    # Offline with room for one: the first QoS 1 message queued, the next three dropped.
    assert value(samples, "roost_messages_dropped_total", reason="queue_full") == 3
    assert value(samples, "roost_messages_dropped_total", reason="slow_client") == 0
    assert value(samples, "roost_queued_messages") == 1
    assert value(samples, "roost_inflight_messages") == 0
    assert value(samples, "roost_sessions", state="online") == 2
    assert value(samples, "roost_sessions", state="offline") == 1
    assert value(samples, "roost_subscriptions") == 2
    assert value(samples, "roost_retained_messages") == 1
    assert value(samples, "roost_client_connects_total") == 3  # slow, sub, pub
    label = broker.call(lambda: broker.broker.listeners[0].label)
    wait_until(lambda: value(scrape(api), "roost_connections", listener=label) == 2)
    assert value(samples, "roost_connections_refused_total", reason="quota_exceeded") == 1
    assert value(samples, "roost_bytes_received_total") > 6 * 5
    assert value(samples, "roost_bytes_sent_total") > 6 * 5
    assert value(samples, "roost_event_loop_lag_seconds") >= 0
    assert value(samples, "roost_uptime_seconds") >= 0
    assert value(samples, "process_resident_memory_bytes") > 0
    assert value(samples, "process_cpu_seconds_total") > 0
    # The kick shows among the closes.
    assert api.delete("/api/v1/clients/sub").status == 204
    wait_until(
        lambda: (
            scrape(api).get(
                (
                    "roost_connections_closed_by_broker_total",
                    frozenset({("reason", "administrative_action")}),
                ),
            )
            == 1
        )
    )


def test_store_commit_histograms(make_broker: Callable[..., BrokerThread], tmp_path: Path) -> None:
    broker = make_broker(
        http=HttpConfig(port=0), sys_interval=0, persistence="sqlite", data_dir=str(tmp_path)
    )
    api = Api(http_port(broker))
    client = PahoClient(broker.port, "durable", MQTT_5, clean=False, session_expiry=600)
    client.subscribe("d/#", 1)  # recorded: a commit before the SUBACK
    client.publish("d/x", b"kept", 1, retain=True)
    samples = scrape(api)
    commits = value(samples, "roost_store_commit_seconds_count")
    assert commits >= 2
    assert value(samples, "roost_store_commit_seconds_sum") > 0
    assert value(samples, "roost_store_commit_seconds_bucket", le="+Inf") == commits
    buckets = sorted(
        (float(dict(labels)["le"]), count)
        for (name, labels), count in samples.items()
        if name == "roost_store_commit_seconds_bucket"
    )
    assert [count for _le, count in buckets] == sorted(count for _le, count in buckets)
    assert value(samples, "roost_store_batch_changes_count") == commits
    assert value(samples, "roost_store_batch_changes_sum") >= commits  # a row at least each


def test_health_and_readiness(http_broker: BrokerThread, api: Api) -> None:
    assert api.data("/healthz") == {"status": "ok"}
    assert api.data("/readyz") == {"status": "ready"}
    # A listener that stops listening makes the broker not ready (alive all the same).
    listener = http_broker.broker.listeners[0]
    http_broker.call(listener.close)
    reply = api.get("/readyz")
    assert reply.status == 503
    assert reply.json()["status"] == "unavailable"
    assert "not listening" in reply.json()["problems"][0]
    assert api.data("/healthz") == {"status": "ok"}


def test_no_metrics_without_a_store_histogram_for_memory(api: Api) -> None:
    names = {name for name, _labels in scrape(api)}
    assert "roost_sessions" in names
    assert not any(name.startswith("roost_store_") for name in names)
