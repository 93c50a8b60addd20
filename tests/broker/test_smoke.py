"""The broker end to end with the simplest exchanges, over real sockets."""

from __future__ import annotations

from roost.codec import MQTT_5, Connack, Publish, Suback, Subscribe, Subscription
from tests.support.broker_thread import BrokerThread
from tests.support.raw import RawClient


def test_raw_subscribe_then_publish_is_delivered(broker: BrokerThread) -> None:
    sub = RawClient(broker.port, MQTT_5)
    assert sub.connect("sub") == Connack(
        False,
        0,
        receive_maximum=100,
        retain_available=1,
        maximum_packet_size=1_048_576,
        topic_alias_maximum=10,
        wildcard_subscription_available=1,
        subscription_identifier_available=1,
        shared_subscription_available=1,
    )
    sub.send(Subscribe(1, (Subscription("a/+", 1),)))
    assert sub.recv() == Suback(1, (1,))
    pub = RawClient(broker.port)
    assert pub.connect("pub") == Connack(False, 0)
    pub.send(Publish("a/b", b"hello"))
    assert sub.recv() == Publish("a/b", b"hello")
    pub.close()
    sub.close()
