"""$SYS/broker/... topics in Mosquitto's naming, published every sys_interval."""

from __future__ import annotations

from collections.abc import Callable

from roost import __version__
from roost.codec import Publish, Subscribe, Subscription
from tests.support.broker_thread import BrokerThread
from tests.support.mosquitto_tools import mosquitto_sub
from tests.support.raw import RawClient, open_client


def read_sys(client: RawClient, wanted: set[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    while not wanted <= values.keys():
        packet = client.recv()
        assert isinstance(packet, Publish)
        values[packet.topic] = packet.payload.decode()
    return values


def test_sys_topics_report_version_clients_and_messages(
    make_broker: Callable[..., BrokerThread],
) -> None:
    broker = make_broker(sys_interval=1.0)
    watcher = open_client(broker.port)
    watcher.connect("watcher")
    watcher.send(Subscribe(1, (Subscription("$SYS/broker/#"),)))
    watcher.recv()  # SUBACK
    first = read_sys(watcher, {"$SYS/broker/version", "$SYS/broker/clients/connected"})
    assert first["$SYS/broker/version"] == f"roost version {__version__}"
    publisher = open_client(broker.port)
    publisher.connect("publisher")
    for _ in range(3):
        publisher.send(Publish("some/topic", b"x"))
    # Values change within a few intervals: connected clients and received messages.
    later: dict[str, str] = {}
    expected = {"$SYS/broker/messages/received": "3", "$SYS/broker/clients/connected": "2"}
    while any(later.get(topic) != value for topic, value in expected.items()):
        packet = watcher.recv(timeout=5)
        assert isinstance(packet, Publish)
        later[packet.topic] = packet.payload.decode()
    publisher.close()
    watcher.close()


def test_sys_topics_are_not_matched_by_a_leading_wildcard(broker: BrokerThread) -> None:
    """[MQTT-4.7.2-1]: '#' alone does not match $SYS topics."""
    result = mosquitto_sub(broker.port, "-t", "#", "-W", "2", "-v", check=False)
    assert "$SYS" not in result.stdout


def test_sys_version_is_retained_for_mosquitto_sub(broker: BrokerThread) -> None:
    result = mosquitto_sub(
        broker.port, "-t", "$SYS/broker/version", "-C", "1", "-W", "5", check=False
    )
    assert result.stdout.strip() == f"roost version {__version__}"
