"""What a bridge needs of the client: the caller's packet ids (``publish(packet_id=)``,
``dup``), the client's own ids kept to a range, and manual release (QoS 2 stops at
PUBREC until ``release``, which also resumes an exchange the client does not know).
Sans-IO first, then against Roost and Mosquitto."""

from __future__ import annotations

import asyncio

import pytest

from roost.client import Client, PublishError
from roost.codec import (
    MQTT_5,
    Connack,
    Connect,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Subscription,
)
from roost.protocol.client_conn import ClientConnection
from roost.protocol.client_events import Connected, NoPacketIdentifier, PublishCompleted
from tests.client.servers import Server
from tests.client.test_client_conn import feed, sent

TIMEOUT = 5.0


def connection(**options: object) -> ClientConnection:
    conn = ClientConnection(**options)  # type: ignore[arg-type]
    conn.connect(Connect("c", MQTT_5, receive_maximum=5), 0.0)
    sent(conn)
    assert isinstance(feed(conn, Connack())[0], Connected)
    return conn


def test_the_callers_packet_id_and_dup() -> None:
    conn = connection(packet_ids=(100, 101))
    assert conn.publish(Publish("t", b"a", 1), 7) == 7
    assert conn.publish(Publish("t", b"b", 2, dup=True), 8) == 8
    first, second = sent(conn)
    assert isinstance(first, Publish)
    assert isinstance(second, Publish)
    assert [(p.packet_id, p.dup) for p in (first, second)] == [(7, False), (8, True)]
    with pytest.raises(ValueError, match="in use"):
        conn.publish(Publish("t", b"c", 1), 7)
    # The client's own ids stay in its range: with 100 and 101 busy there is none,
    # though 1-6 and 9 upward are free (they are the caller's).
    assert [conn.publish(Publish("t", b"", 1)) for _ in range(2)] == [100, 101]
    with pytest.raises(NoPacketIdentifier):
        conn.subscribe([Subscription("s", 1)])


def test_own_ids_never_leave_their_range() -> None:
    conn = connection(packet_ids=(65534, 65535))
    ids = [conn.publish(Publish("t", b"", 1)) for _ in range(2)]
    assert ids == [65534, 65535]
    feed(conn, *(Puback(i) for i in ids))
    assert conn.subscribe([Subscription("s", 1)]) == 65534


def test_manual_release_stops_at_pubrec() -> None:
    conn = connection(manual_release=True)
    conn.publish(Publish("t", b"x", 2), 9)
    sent(conn)
    events = feed(conn, Pubrec(9))
    assert events == [PublishCompleted(9, 2, received=True)]
    assert sent(conn) == []  # the PUBREL waits for the caller
    conn.publish(Publish("t", b"y", 2), 10)
    assert [p.packet_id for p in sent(conn)] == [10]  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="no PUBREC"):
        conn.release(10)
    conn.release(9)
    assert sent(conn) == [Pubrel(9)]
    conn.release(9)  # already released: nothing more
    assert sent(conn) == []
    assert feed(conn, Pubcomp(9)) == [PublishCompleted(9, 2)]


def test_release_of_an_unknown_id_resumes_at_pubrel() -> None:
    conn = connection(manual_release=True)
    conn.release(300)  # an earlier client's exchange, which the server may hold
    assert sent(conn) == [Pubrel(300)]
    with pytest.raises(ValueError, match="in use"):
        conn.publish(Publish("t", b"x", 1), 300)
    assert feed(conn, Pubcomp(300)) == [PublishCompleted(300, 2)]


def test_manual_release_across_reconnects() -> None:
    conn = connection(manual_release=True)
    conn.publish(Publish("t", b"x", 2), 1)
    conn.publish(Publish("t", b"y", 2), 2)
    sent(conn)
    feed(conn, Pubrec(1), Pubrec(2))
    conn.release(2)
    sent(conn)
    conn.connection_lost()
    conn.connect(Connect("c", MQTT_5), 0.0)
    sent(conn)
    # Session present: PUBREL again for the one released; the other waits for release.
    feed(conn, Connack(session_present=True))
    assert sent(conn) == [Pubrel(2)]
    conn.connection_lost()
    conn.connect(Connect("c", MQTT_5), 0.0)
    sent(conn)
    # No session: both count as delivered (their PUBREC came).
    events = feed(conn, Connack())
    assert isinstance(events[0], Connected)
    assert events[0].completed == (PublishCompleted(2, 2),)
    assert sent(conn) == []


@pytest.mark.parametrize("version", [4, 5])
async def test_a_bridge_style_qos2_exchange(server: Server, version: int) -> None:
    """publish_nowait with the caller's id ends at PUBREC; release ends at PUBCOMP; a
    second client releasing an id it never sent completes too (the server answers)."""
    async with (
        Client("127.0.0.1", server.port, version=version) as receiver,
        Client(
            "127.0.0.1",
            server.port,
            version=version,
            manual_release=True,
            packet_ids=(60000, 65535),
        ) as sender,
    ):
        await receiver.subscribe("ids/#", qos=2)
        stream = receiver.messages()
        async with asyncio.timeout(TIMEOUT):
            result = await sender.publish_nowait("ids/x", b"x", 2, packet_id=42)
            assert result.packet_id == 42
            await sender.release(42)
            got = await anext(stream)
        assert (got.topic, got.payload) == ("ids/x", b"x")
        async with asyncio.timeout(TIMEOUT):
            # An id this client does not know: the server completes it all the same
            # (PUBCOMP, or MQTT 5's 0x92 "not found" as a PublishError).
            outcome = await asyncio.gather(sender.release(43), return_exceptions=True)
        if isinstance(outcome[0], PublishError):
            assert outcome[0].reason_code == 0x92
