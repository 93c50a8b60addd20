"""The lingering close: after its last packet the broker shuts its write side down and
reads (and throws away) what the client still sends, for a bounded time and number of
bytes, before it closes. A client still writing when the broker ends its connection
reads the DISCONNECT (MQTT 5) or an orderly end of stream (3.1.1), not a reset that
could destroy what it was sent; a client that never stops writing is cut off."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pytest

from roost.broker import connection as broker_connection
from roost.codec import (
    MQTT_3_1_1,
    MQTT_5,
    Connect,
    Disconnect,
    Pingreq,
    Publish,
    Pubrec,
    Pubrel,
)
from tests.support.broker_thread import BrokerThread
from tests.support.raw import TIMEOUT, RawClient, connect
from tests.support.waiting import wait_until

GENEROUS = 20.0  # seconds: a bound is asserted only as "closed eventually"
# The byte bound, raised where a test sends more than the broker reads at once (what
# leaves bytes unread at a close, and makes an abrupt one a reset) but means no harm.
LOTS = 8 * 1024 * 1024


def open_connections(broker: BrokerThread) -> int:
    return broker.call(lambda: len(broker.broker.connections))


def read_to_the_end(client: RawClient) -> list[object]:
    """Every packet until the broker's end of stream; a reset fails the test."""
    packets: list[object] = []
    client.sock.settimeout(TIMEOUT)
    while True:
        while (taken := client._take()) is not None:
            packets.append(taken[0])
        chunk = client.sock.recv(65536)  # ConnectionResetError here: not orderly
        if not chunk:
            return packets
        client.buffer += chunk


def keep_writing(client: RawClient, first: bytes, then: bytes) -> threading.Thread:
    """Send ``first``, then ``then`` (until the broker stops taking it), from a thread."""

    def write() -> None:
        try:
            client.sock.sendall(first)
            client.sock.sendall(then)
        except OSError:
            pass  # cut off: the broker's bounds (or its close) did that

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    return writer


def test_a_client_writing_past_receive_maximum_reads_the_disconnect_5(
    make_broker: Callable[..., BrokerThread], monkeypatch: pytest.MonkeyPatch
) -> None:
    """MQTT 5, Receive Maximum 2: the client sends a burst of QoS 2 PUBLISHes and,
    behind them in the same write, PUBRELs and PINGREQs that the broker never reads
    as MQTT. It still reads its PUBRECs, the DISCONNECT 0x93, then an orderly end."""
    monkeypatch.setattr(broker_connection, "LINGER_BYTES", LOTS)
    broker = make_broker(receive_maximum=2)
    client = connect(broker.port, MQTT_5, "eager")
    burst = b"".join(
        Publish("t", b"x" * 100, 2, packet_id=pid).encode(MQTT_5) for pid in range(1, 6)
    )
    after = b"".join(Pubrel(pid).encode(MQTT_5) for pid in range(1, 6))
    after += Pingreq().encode(MQTT_5) * 2000  # 4 KB the broker has to drain
    # Megabytes of it, from another thread as this one reads: closed at once with
    # them unread, the broker's kernel would answer with a reset.
    writer = keep_writing(client, burst + after, after * 100)
    packets = read_to_the_end(client)
    writer.join(TIMEOUT)
    assert packets[:2] == [Pubrec(1, 0x10), Pubrec(2, 0x10)]  # 0x10: no subscribers
    assert isinstance(packets[-1], Disconnect)
    assert packets[-1].reason_code == 0x93
    client.close()
    wait_until(lambda: open_connections(broker) == 0)


def test_a_protocol_violation_at_3_1_1_ends_in_an_orderly_close(
    broker: BrokerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """3.1.1 cannot be told why: its connection just ends, but with an end of stream
    the client reads, not a reset, though bytes it sent were still unread."""
    monkeypatch.setattr(broker_connection, "LINGER_BYTES", LOTS)
    client = connect(broker.port, MQTT_3_1_1, "twice")
    more = Pingreq().encode(MQTT_3_1_1) * 200_000
    writer = keep_writing(client, Connect("twice", MQTT_3_1_1).encode(MQTT_3_1_1), more)
    assert read_to_the_end(client) == []
    writer.join(TIMEOUT)
    client.close()
    wait_until(lambda: open_connections(broker) == 0)


def test_a_client_that_keeps_the_socket_open_is_closed_after_linger_time(
    broker: BrokerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the end of stream, a client that neither writes nor closes is closed by
    the broker once LINGER_TIME has passed."""
    monkeypatch.setattr(broker_connection, "LINGER_TIME", 0.5)
    client = connect(broker.port, MQTT_3_1_1, "idle")
    client.send(Connect("idle", MQTT_3_1_1))
    assert read_to_the_end(client) == []
    wait_until(lambda: open_connections(broker) == 0, GENEROUS)
    client.close()


def test_a_client_that_never_stops_writing_is_cut_off(
    broker: BrokerThread, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The byte bound: with the time bounds out of the way, a client writing without
    end after the broker's close is closed once it has sent LINGER_BYTES more."""
    caplog.set_level(logging.DEBUG, logger="roost")
    monkeypatch.setattr(broker_connection, "LINGER_TIME", 600.0)
    monkeypatch.setattr(broker_connection, "CLOSE_TIMEOUT", 600.0)
    client = connect(broker.port, MQTT_5, "firehose")
    client.send(Connect("firehose", MQTT_5))
    stop = threading.Event()
    failed: list[BaseException] = []

    def write_forever() -> None:
        chunk = Pingreq().encode(MQTT_5) * 8192
        try:
            while not stop.is_set():
                client.sock.sendall(chunk)
        except OSError as exc:  # EPIPE or a reset: cut off
            failed.append(exc)

    writer = threading.Thread(target=write_forever, daemon=True)
    writer.start()
    try:
        wait_until(lambda: open_connections(broker) == 0, GENEROUS)
        writer.join(GENEROUS)
        assert failed, "the writer was never cut off"
    finally:
        stop.set()
        client.close()
    assert any(
        f"sent over {broker_connection.LINGER_BYTES} bytes after it was closed" in r.getMessage()
        for r in caplog.records
    )
