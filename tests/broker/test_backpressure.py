"""Backpressure instead of disconnection for MQTT 3.1 and 3.1.1 publishers (issue 18).

MQTT 3.1.x has no Receive Maximum, so a correct client may keep any number of QoS 1
and 2 PUBLISHes in flight. The broker accepts up to the whole packet-id space of QoS 2
ids awaiting PUBREL, and when it owes a client ``receive_maximum`` acknowledgements
that wait for a store commit (``commit_policy = "sync"``), it stops reading from that
client until a commit sends them: the client is slowed, never cut off. MQTT 5 clients
keep the Receive Maximum they were told (``test_flow_control.py``).

Every test counts what a subscriber got: each message at least once for QoS 1, exactly
once for QoS 2. The "sqlite" cases run the SQLite store with ``commit_policy = "sync"``
and persistent sessions on both ends, so acknowledgements wait for commits.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from roost.codec import (
    MQTT_3_1,
    MQTT_3_1_1,
    Packet,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Subscription,
)
from tests.support.broker_thread import BrokerThread
from tests.support.paho import PahoClient
from tests.support.raw import (
    RawClient,
    connect,
    drain,
    persistent,
    subscribe,
    sync,
)

# Generous: a loaded machine running 2,000 QoS 2 exchanges with an fsync per commit.
LONG = 60.0

VERSIONS_3 = pytest.mark.parametrize("version", [MQTT_3_1, MQTT_3_1_1], ids=["v31", "v311"])
STORES = pytest.mark.parametrize("store", ["memory", "sqlite"])


# A publisher may outrun the subscriber: its queue must hold the whole run, or the
# queue's own limit (drop_newest) would lose messages that this file is not about.
QUEUE = 10_000


def start(
    make_broker: Callable[..., BrokerThread], store: str, tmp_path: Path, **overrides: object
) -> BrokerThread:
    overrides.setdefault("max_queued_messages", QUEUE)
    if store == "memory":
        return make_broker(**overrides)
    return make_broker(
        persistence="sqlite", data_dir=str(tmp_path), commit_policy="sync", **overrides
    )


def session_fields(store: str, version: int) -> dict[str, object]:
    """Persistent sessions with the SQLite store (their state is recorded), else clean."""
    return persistent(version) if store == "sqlite" else {}


class CountingSubscriber:
    """A raw subscriber that reads and acknowledges in a thread of its own until it has
    ``expected`` PUBLISHes, so that a publisher's flood never waits on it."""

    def __init__(self, client: RawClient, expected: int) -> None:
        self.client = client
        self.expected = expected
        self.payloads: list[bytes] = []
        self.qos: set[int] = set()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="subscriber", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        client = self.client
        try:
            while len(self.payloads) < self.expected:
                packet = client.recv(timeout=LONG)
                if isinstance(packet, Pubrel):
                    client.send(Pubcomp(packet.packet_id))
                    continue
                assert isinstance(packet, Publish), packet
                self.payloads.append(packet.payload)
                self.qos.add(packet.qos)
                if packet.qos == 1:
                    client.send(Puback(packet.packet_id))
                elif packet.qos == 2:
                    client.send(Pubrec(packet.packet_id))
        except BaseException as exc:  # noqa: BLE001  (reported to the test in finish())
            self._error = exc

    def finish(self, qos: int) -> None:
        """Wait for every message, then check that nothing more comes and that each came
        as its QoS promises."""
        self._thread.join(LONG)
        assert not self._thread.is_alive(), f"got {len(self.payloads)} of {self.expected}"
        if self._error is not None:
            raise self._error
        # The publisher's messages are all routed (it has every acknowledgement), so
        # the broker's answer to our PINGREQ comes after anything still owed to us.
        assert drain(self.client) == []
        expected = {b"%d" % i for i in range(self.expected)}
        counts = Counter(self.payloads)
        assert set(counts) == expected
        assert self.qos == {qos}
        if qos == 2:
            assert max(counts.values()) == 1, "a QoS 2 message delivered twice"


def subscriber(
    broker: BrokerThread, version: int, store: str, expected: int, qos: int
) -> CountingSubscriber:
    client = connect(broker.port, version, "sub", **session_fields(store, version))
    subscribe(client, Subscription("bp/t", qos))
    return CountingSubscriber(client, expected)


def publish_windowed(client: RawClient, count: int, qos: int, window: int) -> None:
    """Publish ``count`` messages keeping up to ``window`` unacknowledged (QoS 2: until
    PUBCOMP), as load tools and industrial clients do."""
    sent = completed = 0
    outstanding: set[int] = set()
    while completed < count:
        while sent < count and len(outstanding) < window:
            packet_id = sent + 1
            client.send(Publish("bp/t", b"%d" % sent, qos, packet_id=packet_id))
            outstanding.add(packet_id)
            sent += 1
        packet = client.recv(timeout=LONG)
        if isinstance(packet, Pubrec) and qos == 2:
            assert packet.packet_id in outstanding, packet
            client.send(Pubrel(packet.packet_id))
            continue
        assert isinstance(packet, Puback if qos == 1 else Pubcomp), packet
        outstanding.remove(packet.packet_id)
        completed += 1
    assert sync(client) == []  # still connected, and owed nothing


@VERSIONS_3
@STORES
@pytest.mark.parametrize("qos", [1, 2])
@pytest.mark.parametrize("window", [100, 200, 1000])
def test_raw_publisher_with_a_large_window_is_never_cut_off(
    make_broker: Callable[..., BrokerThread],
    tmp_path: Path,
    version: int,
    store: str,
    qos: int,
    window: int,
) -> None:
    """Twice the window of messages, each acknowledged; none lost, QoS 2 none twice."""
    broker = start(make_broker, store, tmp_path)
    count = 2 * window
    sub = subscriber(broker, version, store, count, qos)
    pub = connect(broker.port, version, "pub", **session_fields(store, version))
    publish_windowed(pub, count, qos, window)
    sub.finish(qos)


@VERSIONS_3
@STORES
@pytest.mark.parametrize("qos", [1, 2])
def test_paho_publisher_with_1000_in_flight(
    make_broker: Callable[..., BrokerThread], tmp_path: Path, version: int, store: str, qos: int
) -> None:
    """paho-mqtt with ``max_inflight_messages_set(1000)``: every message acknowledged."""
    broker = start(make_broker, store, tmp_path)
    count = 2000
    sub = subscriber(broker, version, store, count, qos)
    pub = PahoClient(broker.port, "pub", version, clean=store == "memory", max_inflight=1000)
    infos = [pub.client.publish("bp/t", b"%d" % i, qos) for i in range(count)]
    for info in infos:
        info.wait_for_publish(LONG)
        assert info.is_published()
    assert not pub.disconnected.is_set()
    sub.finish(qos)


# QoS 2 cannot deadlock: the PUBRELs that free ids come after the PUBLISHes.


def _exchange_qos2(pub: RawClient, count: int, *, wait_for_each: bool) -> None:
    ids = range(1, count + 1)
    if wait_for_each:
        # Each PUBREC before the next PUBLISH: the broker must answer the PUBLISH after
        # receive_maximum ids are unreleased, or this client never sends a PUBREL.
        for packet_id in ids:
            pub.send(Publish("bp/t", b"%d" % (packet_id - 1), 2, packet_id=packet_id))
            assert pub.recv(timeout=LONG) == Pubrec(packet_id)
        pub.send(b"".join(Pubrel(packet_id).encode(pub.version) for packet_id in ids))
        answers: list[Packet] = [pub.recv(timeout=LONG) for _ in ids]
        assert answers == [Pubcomp(packet_id) for packet_id in ids]
    else:
        # Everything at once, then read: the PUBRELs wait behind the PUBLISHes in the
        # stream, so the broker must read past its limits to reach them.
        pub.send(
            b"".join(
                Publish("bp/t", b"%d" % (i - 1), 2, packet_id=i).encode(pub.version) for i in ids
            )
            + b"".join(Pubrel(packet_id).encode(pub.version) for packet_id in ids)
        )
        answers = [pub.recv(timeout=LONG) for _ in range(2 * count)]
        assert [p for p in answers if isinstance(p, Pubrec)] == [Pubrec(i) for i in ids]
        assert [p for p in answers if isinstance(p, Pubcomp)] == [Pubcomp(i) for i in ids]
    assert sync(pub) == []


@VERSIONS_3
@STORES
@pytest.mark.parametrize("wait_for_each", [True, False], ids=["waits", "never_waits"])
def test_qos2_ids_beyond_receive_maximum_cannot_deadlock(
    make_broker: Callable[..., BrokerThread],
    tmp_path: Path,
    version: int,
    store: str,
    wait_for_each: bool,
) -> None:
    """1,000 QoS 2 ids unreleased at once (ten times receive_maximum): every PUBLISH gets
    its PUBREC, every PUBREL its PUBCOMP, and each message is delivered exactly once
    (3.1.1 [MQTT-4.3.3-2])."""
    broker = start(make_broker, store, tmp_path)
    count = 1000
    sub = subscriber(broker, version, store, count, 2)
    pub = connect(broker.port, version, "pub", **session_fields(store, version))
    _exchange_qos2(pub, count, wait_for_each=wait_for_each)
    sub.finish(2)


@pytest.mark.parametrize("qos", [1, 2])
def test_held_acknowledgements_pause_reading_not_the_connection(
    make_broker: Callable[..., BrokerThread], tmp_path: Path, qos: int
) -> None:
    """With commit_policy "sync" a 3.1.1 publisher's acknowledgements wait for commits;
    once receive_maximum (10 here) wait, the broker stops reading it until a commit sends
    them. Its 1,000-message window is slowed (the pauses are counted), never closed."""
    broker = start(make_broker, "sqlite", tmp_path, receive_maximum=10)
    count = 1000
    sub = subscriber(broker, MQTT_3_1_1, "sqlite", count, qos)
    pub = connect(broker.port, MQTT_3_1_1, "pub", **persistent(MQTT_3_1_1))
    publish_windowed(pub, count, qos, 1000)
    sub.finish(qos)
    assert broker.call(lambda: broker.broker.stats.held_back) > 0
