"""The sans-IO client state machine, driven with bytes and a fake clock (no sockets)."""

from __future__ import annotations

import pytest

from roost.codec import (
    MQTT_5,
    Connack,
    Connect,
    Disconnect,
    MalformedPacket,
    Packet,
    Pingreq,
    Pingresp,
    ProtocolError,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Subscription,
    TopicAliasInvalid,
    Unsuback,
    Unsubscribe,
    read_packet,
)
from roost.protocol.client_conn import ClientConnection
from roost.protocol.client_events import (
    ConnackRefused,
    Connected,
    DisconnectReceived,
    KeepAliveTimeout,
    MessageReceived,
    NoPacketIdentifier,
    PublishCompleted,
    ReceiveMaximumExceeded,
    Refused,
    SubscribeCompleted,
    UnsubscribeCompleted,
)
from roost.protocol.client_states import TRANSITIONS, ClientState, Trigger


def sent(conn: ClientConnection, now: float = 0.0) -> list[Packet]:
    data = conn.data_to_send(now)
    packets = []
    pos = 0
    while pos < len(data):
        result = read_packet(data, conn.version, offset=pos)
        assert result is not None
        packet, used = result
        packets.append(packet)
        pos += used
    return packets


def feed(conn: ClientConnection, *packets: Packet, now: float = 0.0) -> list[object]:
    data = b"".join(packet.encode(conn.version) for packet in packets)
    return list(conn.receive_data(data, now))


def connected(version: int = MQTT_5, keep_alive: int = 60, **connack: object) -> ClientConnection:
    conn = ClientConnection()
    conn.connect(Connect("c", version, keep_alive=keep_alive, receive_maximum=5), 0.0)
    assert isinstance(sent(conn)[0], Connect)
    events = feed(conn, Connack(**connack))  # type: ignore[arg-type]
    assert isinstance(events[0], Connected)
    sent(conn)
    return conn


def test_connack_success_and_refusal() -> None:
    conn = connected()
    assert conn.state is ClientState.CONNECTED
    refused = ClientConnection()
    refused.connect(Connect("c", 5), 0.0)
    events = feed(refused, Connack(reason_code=0x86))
    assert isinstance(events[0], ConnackRefused)
    assert events[0].connack.reason_code == 0x86
    assert refused.state is ClientState.DISCONNECTED


def test_calls_the_transition_table_does_not_allow_raise_and_change_nothing() -> None:
    conn = ClientConnection()
    conn.connect(Connect("c", 5), 0.0)
    with pytest.raises(RuntimeError, match=r"connect\(\) while CONNECTING"):
        conn.connect(Connect("c", 5), 0.0)
    with pytest.raises(RuntimeError, match=r"server_verified\(\) while CONNECTING"):
        conn.server_verified(0.0)
    assert conn.state is ClientState.CONNECTING
    conn = connected()
    with pytest.raises(RuntimeError, match=r"connect\(\) while CONNECTED"):
        conn.connect(Connect("c", 5), 0.0)
    assert conn.state is ClientState.CONNECTED


def test_the_end_of_a_connection_leads_to_disconnected_from_every_state() -> None:
    for state in ClientState:
        assert TRANSITIONS[state][Trigger.CLOSED] is ClientState.DISCONNECTED
    # And every state can be reached from DISCONNECTED.
    reached = {ClientState.DISCONNECTED}
    while True:
        more = {target for state in reached for target in TRANSITIONS[state].values()}
        if more <= reached:
            break
        reached |= more
    assert reached == set(ClientState)


def test_packet_ids_are_allocated_skipping_those_in_use() -> None:
    conn = connected()
    ids = [conn.publish(Publish("t", b"", qos=1)) for _ in range(3)]
    assert ids == [1, 2, 3]
    feed(conn, Puback(2))
    assert conn.subscribe([Subscription("a")]) == 4
    conn._next_id = 1  # wrap around: 1 and 3 are still in use, 2 is free again
    assert conn.publish(Publish("t", b"", qos=1)) == 2


def test_all_packet_ids_in_use() -> None:
    conn = connected(receive_maximum=65535)
    for _ in range(65535):
        conn.publish(Publish("t", b"", qos=1))
    with pytest.raises(NoPacketIdentifier):
        conn.publish(Publish("t", b"", qos=1))


def test_qos1_flow() -> None:
    conn = connected()
    packet_id = conn.publish(Publish("t", b"x", qos=1))
    (publish,) = sent(conn)
    assert isinstance(publish, Publish)
    assert (publish.packet_id, publish.dup) == (packet_id, False)
    assert conn.inflight == 1
    events = feed(conn, Puback(packet_id, 0x10))
    assert events == [PublishCompleted(packet_id, 1, 0x10)]
    assert conn.inflight == 0
    assert feed(conn, Puback(packet_id)) == []  # a stray acknowledgement is ignored


def test_qos2_flow_and_failed_pubrec() -> None:
    conn = connected()
    packet_id = conn.publish(Publish("t", b"x", qos=2))
    sent(conn)
    assert feed(conn, Pubrec(packet_id)) == []
    assert sent(conn) == [Pubrel(packet_id)]
    assert feed(conn, Pubcomp(packet_id)) == [PublishCompleted(packet_id, 2)]
    failing = conn.publish(Publish("t", b"x", qos=2))
    sent(conn)
    events = feed(conn, Pubrec(failing, 0x87, reason_string="no"))
    assert events == [PublishCompleted(failing, 2, 0x87, "no")]
    assert sent(conn) == []  # no PUBREL after a failure PUBREC


def test_incoming_qos2_is_delivered_once() -> None:
    conn = connected()
    message = Publish("t", b"x", qos=2, packet_id=7)
    events = feed(conn, message)
    assert [type(e) for e in events] == [MessageReceived]
    assert sent(conn) == [Pubrec(7)]
    duplicate = Publish("t", b"x", qos=2, packet_id=7, dup=True)
    assert feed(conn, duplicate) == []  # not delivered again before PUBREL
    assert sent(conn) == [Pubrec(7)]
    feed(conn, Pubrel(7))
    assert sent(conn) == [Pubcomp(7)]
    feed(conn, Pubrel(7))
    assert sent(conn) == [Pubcomp(7, 0x92)]  # unknown now: Packet Identifier not found


def test_incoming_qos1_is_acknowledged() -> None:
    conn = connected(version=4)
    events = feed(conn, Publish("t", b"x", qos=1, packet_id=3))
    assert isinstance(events[0], MessageReceived)
    assert sent(conn) == [Puback(3)]


def test_our_receive_maximum_is_enforced() -> None:
    conn = connected()  # receive_maximum=5 in CONNECT
    feed(conn, *(Publish("t", b"", qos=2, packet_id=i) for i in range(1, 6)))
    with pytest.raises(ReceiveMaximumExceeded):
        feed(conn, Publish("t", b"", qos=2, packet_id=6))
    assert sent(conn)[-1] == Disconnect(
        0x93, reason_string="the server exceeded our Receive Maximum"
    )
    assert conn.state is ClientState.DISCONNECTED


def test_server_receive_maximum_limits_inflight() -> None:
    conn = connected(receive_maximum=2)
    ids = [conn.publish(Publish("t", b"", qos=1)) for _ in range(4)]
    assert [p.packet_id for p in sent(conn) if isinstance(p, Publish)] == ids[:2]
    feed(conn, Puback(ids[0]))
    assert [p.packet_id for p in sent(conn) if isinstance(p, Publish)] == [ids[2]]
    assert conn.inflight == 2


def test_resend_with_dup_when_the_session_is_present() -> None:
    conn = connected()
    first = conn.publish(Publish("t", b"1", qos=1))
    second = conn.publish(Publish("t", b"2", qos=2))
    sent(conn)
    feed(conn, Pubrec(second))
    sent(conn)
    conn.connection_lost()
    queued = conn.publish(Publish("t", b"3", qos=1))  # taken while disconnected
    conn.connect(Connect("c", 5, clean_start=False), 1.0)
    sent(conn)
    events = feed(conn, Connack(session_present=True))
    assert isinstance(events[0], Connected)
    assert sent(conn) == [
        Publish("t", b"1", qos=1, packet_id=first, dup=True),
        Pubrel(second),
        Publish("t", b"3", qos=1, packet_id=queued),
    ]


def test_without_session_messages_are_sent_again_as_new() -> None:
    conn = connected()
    first = conn.publish(Publish("t", b"1", qos=1))
    second = conn.publish(Publish("t", b"2", qos=2))
    sent(conn)
    feed(conn, Pubrec(second))
    feed(conn, Publish("in", b"", qos=2, packet_id=9))
    sent(conn)
    conn.connection_lost()
    conn.connect(Connect("c", 5), 1.0)
    sent(conn)
    (event,) = feed(conn, Connack(session_present=False))
    assert isinstance(event, Connected)
    # PUBREC had come: the server had the message, so it counts as delivered.
    assert event.completed == (PublishCompleted(second, 2),)
    assert sent(conn) == [Publish("t", b"1", qos=1, packet_id=first)]
    # The QoS 2 receive state went with the session: packet id 9 is new again.
    assert len(feed(conn, Publish("in", b"", qos=2, packet_id=9))) == 1


def test_pending_requests_are_sent_after_reconnecting() -> None:
    conn = connected()
    sub_id = conn.subscribe([Subscription("a/#", 1)])
    sent(conn)
    conn.connection_lost()
    unsub_id = conn.unsubscribe(["b"])
    assert sent(conn) == []
    conn.connect(Connect("c", 5), 1.0)
    sent(conn)
    feed(conn, Connack())
    assert sent(conn) == [
        Subscribe(sub_id, (Subscription("a/#", 1),)),
        Unsubscribe(unsub_id, ("b",)),
    ]
    events = feed(conn, Suback(sub_id, (1,)), Unsuback(unsub_id, (0,)))
    assert [type(e) for e in events] == [SubscribeCompleted, UnsubscribeCompleted]


def test_keep_alive_ping_and_timeout() -> None:
    conn = connected(keep_alive=10)
    assert conn.next_deadline() == 10.0
    conn.publish(Publish("t", b""))
    conn.data_to_send(4.0)  # sending anything resets the keep-alive clock
    assert conn.next_deadline() == 14.0
    conn.handle_timer(13.9)
    assert sent(conn, 13.9) == []
    conn.handle_timer(14.0)
    assert sent(conn, 14.0) == [Pingreq()]
    assert conn.next_deadline() == 24.0  # the PINGRESP is due within the keep-alive
    feed(conn, Pingresp())
    assert conn.next_deadline() == 24.0  # back to "ping when idle", from the PINGREQ
    conn.handle_timer(24.0)
    sent(conn, 24.0)
    with pytest.raises(KeepAliveTimeout):
        conn.handle_timer(34.0)
    assert conn.state is ClientState.DISCONNECTED


def test_server_keep_alive_overrides_ours() -> None:
    conn = connected(keep_alive=60, server_keep_alive=5)
    assert conn.keep_alive == 5
    assert conn.next_deadline() == 5.0
    assert connected(keep_alive=0).next_deadline() is None


def test_incoming_topic_alias() -> None:
    conn = ClientConnection()
    conn.connect(Connect("c", 5, topic_alias_maximum=2), 0.0)
    feed(conn, Connack())
    (first,) = feed(conn, Publish("long/topic", b"1", topic_alias=1))
    (second,) = feed(conn, Publish("", b"2", topic_alias=1))
    assert isinstance(first, MessageReceived)
    assert isinstance(second, MessageReceived)
    assert second.publish.topic == "long/topic"
    with pytest.raises(TopicAliasInvalid):
        feed(conn, Publish("x", b"", topic_alias=3))


def test_limits_from_connack_refuse_locally() -> None:
    conn = connected(maximum_qos=1, retain_available=0, maximum_packet_size=50)
    with pytest.raises(Refused) as qos:
        conn.publish(Publish("t", b"", qos=2))
    assert qos.value.reason_code == 0x9B
    with pytest.raises(Refused) as retain:
        conn.publish(Publish("t", b"", retain=True))
    assert retain.value.reason_code == 0x9A
    with pytest.raises(Refused) as size:
        conn.publish(Publish("t", b"x" * 100))
    assert size.value.reason_code == 0x95
    with pytest.raises(Refused) as alias:
        conn.publish(Publish("t", b"", topic_alias=1))
    assert alias.value.reason_code == 0x94


def test_outgoing_topic_alias_is_dropped_on_resend() -> None:
    conn = connected(topic_alias_maximum=5)
    conn.publish(Publish("long/topic", b"1", qos=0, topic_alias=2))
    packet_id = conn.publish(Publish("", b"2", qos=1, topic_alias=2))
    assert sent(conn)[1] == Publish("", b"2", qos=1, packet_id=packet_id, topic_alias=2)
    conn.connection_lost()
    conn.connect(Connect("c", 5, clean_start=False), 1.0)
    sent(conn)
    feed(conn, Connack(session_present=True))
    # Aliases belong to one network connection: the resend names the topic.
    assert sent(conn) == [Publish("long/topic", b"2", qos=1, packet_id=packet_id, dup=True)]


def test_protocol_errors_close_with_a_reason() -> None:
    conn = connected()
    with pytest.raises(ProtocolError):
        feed(conn, Connack())  # a second CONNACK
    assert isinstance(sent(conn)[0], Disconnect)
    conn = connected()
    with pytest.raises(MalformedPacket):
        conn.receive_data(b"\x00\x00", 0.0)
    not_yet = ClientConnection()
    not_yet.connect(Connect("c", 4), 0.0)
    sent(not_yet)
    with pytest.raises(ProtocolError):
        feed(not_yet, Publish("t", b""))


def test_server_disconnect_event() -> None:
    conn = connected()
    events = feed(conn, Disconnect(0x8B, reason_string="bye"), Publish("t", b""))
    assert events == [DisconnectReceived(Disconnect(0x8B, reason_string="bye"))]
    assert conn.state is ClientState.DISCONNECTED


def manual(version: int = MQTT_5) -> ClientConnection:
    conn = ClientConnection(manual_ack=True)
    conn.connect(Connect("c", version, receive_maximum=2), 0.0)
    sent(conn)
    feed(conn, Connack())
    sent(conn)
    return conn


def test_manual_ack_sends_nothing_until_the_caller_acknowledges() -> None:
    conn = manual(version=4)
    events = feed(
        conn, Publish("t", b"a", qos=1, packet_id=3), Publish("t", b"b", qos=2, packet_id=4)
    )
    assert [type(e) for e in events] == [MessageReceived, MessageReceived]
    assert sent(conn) == []
    conn.acknowledge(4, 2, same_connection=True)
    conn.acknowledge(3, 1, same_connection=True)
    assert sent(conn) == [Pubrec(4), Puback(3)]
    feed(conn, Pubrel(4))
    assert sent(conn) == [Pubcomp(4)]


def test_manual_ack_qos2_resend_is_not_delivered_twice() -> None:
    conn = manual()
    assert len(feed(conn, Publish("t", b"x", qos=2, packet_id=7))) == 1
    # Resent before the caller acknowledged: neither delivered nor acknowledged.
    assert feed(conn, Publish("t", b"x", qos=2, packet_id=7, dup=True)) == []
    assert sent(conn) == []
    conn.acknowledge(7, 2, same_connection=True)
    assert sent(conn) == [Pubrec(7)]
    # Acknowledged: a resend is answered again, still not delivered.
    assert feed(conn, Publish("t", b"x", qos=2, packet_id=7, dup=True)) == []
    assert sent(conn) == [Pubrec(7)]


def test_manual_ack_counts_unacknowledged_qos2_against_our_receive_maximum() -> None:
    conn = manual()
    feed(conn, Publish("t", b"1", qos=2, packet_id=1), Publish("t", b"2", qos=2, packet_id=2))
    with pytest.raises(ReceiveMaximumExceeded):
        feed(conn, Publish("t", b"3", qos=2, packet_id=3))


def test_manual_ack_of_qos1_from_an_earlier_connection_is_not_sent() -> None:
    conn = manual(version=4)
    feed(conn, Publish("t", b"x", qos=1, packet_id=5))
    conn.connection_lost()
    conn.connect(Connect("c", 4), 0.0)
    sent(conn)
    feed(conn, Connack(session_present=True))
    sent(conn)
    # The id may name another message now; the server resends this one anyway.
    conn.acknowledge(5, 1, same_connection=False)
    assert sent(conn) == []


def test_manual_ack_of_qos2_goes_out_on_a_later_connection() -> None:
    conn = manual(version=4)
    feed(conn, Publish("t", b"x", qos=2, packet_id=6))
    conn.connection_lost()
    conn.acknowledge(6, 2, same_connection=False)  # while disconnected: nothing to send
    assert sent(conn) == []
    conn.connect(Connect("c", 4), 0.0)
    sent(conn)
    feed(conn, Connack(session_present=True))
    sent(conn)
    assert feed(conn, Publish("t", b"x", qos=2, packet_id=6, dup=True)) == []
    assert sent(conn) == [Pubrec(6)]
