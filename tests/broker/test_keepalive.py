"""Keep-alive over real sockets: the 1.5x rule, PINGREQ/PINGRESP, keep-alive 0, and the
server's maximum (MQTT 5 Server Keep Alive; 3.1.1 refusal as Mosquitto does it).

The broker's sweep runs every 0.5 s, so a keep-alive of 1 s is enforced within about
2 s; the bounds below are generous on purpose and nothing asserts a lower bound.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from roost.codec import (
    MQTT_3_1_1,
    MQTT_5,
    Connack,
    Connect,
    Disconnect,
    Pingreq,
    Publish,
    Subscription,
    Will,
)
from tests.support.broker_thread import BrokerThread
from tests.support.paho import PahoClient
from tests.support.raw import RawClient, connect, open_client, subscribe, without_reason_string

LEVELS = [MQTT_3_1_1, MQTT_5]
PINGRESP = b"\xd0\x00"  # type 13, remaining length 0 (3.1.1 and 5.0 section 3.13)
CLOSE_BOUND = 6.0  # seconds: keep-alive 1 s x 1.5 + the sweep, with a wide margin


def ping(client: RawClient) -> None:
    """[MQTT-3.12.4-1]: the server MUST answer PINGREQ with PINGRESP, exactly 0xD0 0x00."""
    client.send(Pingreq())
    assert client.recv_bytes(2) == PINGRESP


def assert_keep_alive_close(client: RawClient, version: int) -> None:
    """Closed for silence: 5.0 says why first with DISCONNECT 0x8D (Keep Alive timeout)."""
    packets = client.expect_closed(timeout=CLOSE_BOUND)
    if version == MQTT_5:
        assert [without_reason_string(p) for p in packets] == [Disconnect(0x8D)]
    else:
        assert packets == []


@pytest.mark.parametrize("version", LEVELS)
def test_silent_client_is_disconnected_and_its_will_published(
    broker: BrokerThread, version: int
) -> None:
    """No control packet within 1.5x the Keep Alive: the server MUST close the connection
    as if the network had failed (3.1.1 [MQTT-3.1.2-24], 5.0 [MQTT-3.1.2-22]); with no
    Server Keep Alive the client's value is the one used [MQTT-3.2.2-22]. The connection
    did not end with DISCONNECT, so the will is published (3.1.1 section 3.1.2.5 lists
    this case; [MQTT-3.1.2-8])."""
    watcher = connect(broker.port, MQTT_3_1_1, "ka-watch", keep_alive=0)
    subscribe(watcher, Subscription("ka/will", 0))
    silent = open_client(broker.port, version)
    connack = silent.connect("ka-silent", keep_alive=1, will=Will("ka/will", b"timed out"))
    assert isinstance(connack, Connack)
    assert connack.server_keep_alive is None
    assert_keep_alive_close(silent, version)
    assert watcher.recv() == Publish("ka/will", b"timed out")


def test_any_control_packet_keeps_the_connection_alive(broker: BrokerThread) -> None:
    """Keep Alive counts any control packet from the client (3.1.1 section 3.1.2.10): here
    PINGREQ and QoS 0 PUBLISH alternate every 0.5 s for 3 s, twice 1.5x the keep-alive.
    Both levels run side by side to share the wait."""
    clients = {
        version: connect(broker.port, version, f"ka-busy-{version}", keep_alive=1)
        for version in LEVELS
    }
    for round_ in range(6):
        for client in clients.values():
            # Silence from the server shows it neither closed nor sent DISCONNECT.
            client.expect_silence(0.25)
            if round_ % 2:
                client.send(Publish("ka/nobody", b"still here"))
            else:
                ping(client)


def test_paho_pings_and_stays_connected(broker: BrokerThread) -> None:
    """paho-mqtt sends PINGREQ on its own and is never disconnected. Keep-alive 2, not 1:
    paho checks its timer about once a second, which would leave too thin a margin."""
    client = PahoClient(broker.port, "paho-ka", MQTT_3_1_1, keepalive=2)
    try:
        # An absence: paho reports no disconnection for longer than 1.5x its keep-alive.
        assert not client.disconnected.wait(4.0)
        client.subscribe("paho/ka", qos=0)
        client.client.publish("paho/ka", b"alive")
        assert client.next_message().payload == b"alive"
    finally:
        client.disconnect()


@pytest.mark.parametrize("version", LEVELS)
def test_pingresp_is_exact(broker: BrokerThread, version: int) -> None:
    """[MQTT-3.12.4-1]: each PINGREQ gets a PINGRESP (0xD0 0x00), pipelined ones included."""
    client = connect(broker.port, version, f"pingresp-{version}")
    ping(client)
    client.send(Pingreq().encode() * 3)
    assert client.recv_bytes(6) == PINGRESP * 3
    client.expect_silence(0.1)


def test_keep_alive_zero_means_no_timeout(broker: BrokerThread) -> None:
    """Keep Alive 0 turns the mechanism off (3.1.1 and 5.0 section 3.1.2.10): silent clients
    of both levels are still connected well after any 1.5x deadline could have passed."""
    clients = [connect(broker.port, version, f"ka0-{version}", keep_alive=0) for version in LEVELS]
    clients[0].expect_silence(2.5)  # covers both: they were silent over the same window
    for client in clients:
        client.expect_silence(0.01)
        ping(client)


def test_server_keep_alive_lowers_the_client_value_5(
    make_broker: Callable[..., BrokerThread],
) -> None:
    """5.0 section 3.2.2.3.14: a server may answer with a Server Keep Alive, which the client
    MUST use instead of its own ([MQTT-3.2.2-21], [MQTT-3.1.2-21]), and which the server
    enforces with the 1.5x rule ([MQTT-3.1.2-22]). A request within the maximum is kept
    as is and no Server Keep Alive is sent ([MQTT-3.2.2-22]). Keep Alive 0 (no limit) is
    also above a server maximum, as Mosquitto reads it."""
    broker = make_broker(max_keep_alive=1)
    clients = []
    for requested, answered in [(60, 1), (0, 1), (1, None)]:
        client = open_client(broker.port, MQTT_5)
        connack = client.connect(f"ska-{requested}", keep_alive=requested)
        assert isinstance(connack, Connack)
        assert (connack.reason_code, connack.server_keep_alive) == (0, answered)
        clients.append(client)
    for client in clients:
        assert_keep_alive_close(client, MQTT_5)


def test_paho_follows_the_server_keep_alive(make_broker: Callable[..., BrokerThread]) -> None:
    """paho-mqtt adopts Server Keep Alive 2 although it asked for 60, and so stays connected
    ([MQTT-3.2.2-21] on the client side)."""
    broker = make_broker(max_keep_alive=2)
    client = PahoClient(broker.port, "paho-ska", MQTT_5, keepalive=60)
    try:
        assert client.connack_properties.ServerKeepAlive == 2
        assert not client.disconnected.wait(4.0)
    finally:
        client.disconnect()


@pytest.mark.parametrize("requested", [60, 0])
def test_keep_alive_above_the_maximum_is_refused_3_1_1(
    make_broker: Callable[..., BrokerThread], requested: int
) -> None:
    """3.1.1 cannot tell a client another keep-alive; like Mosquitto, the broker refuses
    with CONNACK 0x02 (identifier rejected) and closes (3.1.1 section 3.1.4 point 3,
    [MQTT-3.2.2-4], [MQTT-3.2.2-5]). Within the maximum the client is accepted."""
    broker = make_broker(max_keep_alive=30)
    client = open_client(broker.port, MQTT_3_1_1)
    client.send(Connect("ka-over", MQTT_3_1_1, keep_alive=requested))
    assert client.recv_bytes(4) == b"\x20\x02\x00\x02"
    assert client.expect_closed() == []
    within = open_client(broker.port, MQTT_3_1_1)
    assert within.connect("ka-within", keep_alive=30) == Connack(False, 0)
