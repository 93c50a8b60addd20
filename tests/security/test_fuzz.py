"""Fuzzing a running `roost broker` process over real sockets.

Each Hypothesis example (``hostile.attacks``) opens a connection, sends its bytes in
pieces, half-closes, and reads until the broker closes. Then:

* whatever the broker answered after a valid CONNECT is well formed at that protocol
  level, and a DISCONNECT, if any, is its last packet and carries an error code;
* the broker process is alive;
* a well-behaved client (paho, connected all along) still publishes and receives its
  own message, and a new client can still connect;
* the broker's log shows no traceback and no "Internal error".

At the end the broker shuts down cleanly on SIGTERM (exit status 0).

In CI the run is fixed: 150 examples, derandomized. For a longer, random run set
ROOST_FUZZ_EXAMPLES (docs/security.md)::

    ROOST_FUZZ_EXAMPLES=5000 .venv/bin/pytest tests/security/test_fuzz.py -s
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from roost.codec import MQTT_3_1_1, Connack, Connect, Disconnect, read_packet
from tests.security.broker_process import BrokerProcess
from tests.security.hostile import Attack, attacks
from tests.support.paho import Bystander
from tests.support.raw import TIMEOUT, RawClient

LONG_RUN = "ROOST_FUZZ_EXAMPLES" in os.environ
EXAMPLES = int(os.environ.get("ROOST_FUZZ_EXAMPLES", "150"))
CLOSE_WAIT = 10.0  # after our half-close, the broker closes too: it has this long

# Small limits, so that the random packets run into them as well.
CONFIG = """\
max_packet_size = 65536
max_topic_length = 24
max_topic_levels = 4
max_subscriptions_per_client = 8
receive_maximum = 5
topic_alias_maximum = 4
"""


def attack_once(port: int, attack: Attack) -> bytes:
    """Send the attack, half-close, and return everything the broker sent before closing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            for piece in attack.pieces():
                sock.sendall(piece)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the broker closed (or reset) first: what it sent is still to be read
        received = b""
        deadline = time.monotonic() + CLOSE_WAIT
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"the broker did not close the connection; got {received!r}"
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return received
            if not chunk:
                return received
            received += chunk
    finally:
        sock.close()


def check_replies(data: bytes, version: int) -> None:
    """The broker's answers to a connection that began with a valid CONNECT."""
    replies = []
    while data:
        result = read_packet(data, version)
        assert result is not None, f"a truncated packet from the broker: {data!r}"
        replies.append(result[0])
        data = data[result[1] :]
    for index, packet in enumerate(replies):
        if isinstance(packet, Disconnect):
            assert version == 5, replies
            assert index == len(replies) - 1, replies  # [MQTT-4.13.1-1]: then it closes
            assert packet.reason_code >= 0x80, replies
    if replies:
        assert isinstance(replies[0], Connack), replies


def new_client_connects(port: int) -> None:
    client = RawClient(port, MQTT_3_1_1)
    try:
        client.send(Connect("roost-fuzz-newcomer", MQTT_3_1_1))
        assert client.recv() == Connack(False, 0)
        client.send(Disconnect())
    finally:
        client.close()


# The suite's per-test timeout is for the fixed budget; a long run takes what it takes.
@pytest.mark.timeout(0 if LONG_RUN else 120)
def test_hostile_input_never_harms_the_broker(tmp_path: Path) -> None:
    config = tmp_path / "fuzz.toml"
    config.write_text(CONFIG)
    broker = BrokerProcess(config)
    examples = 0
    try:
        bystander = Bystander(broker.port, topics=(), client_id="roost-fuzz-bystander")

        @settings(
            max_examples=EXAMPLES,
            derandomize=not LONG_RUN,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(attack=attacks())
        def check(attack: Attack) -> None:
            nonlocal examples
            examples += 1
            replies = attack_once(broker.port, attack)
            if attack.connected:
                check_replies(replies, attack.version)
            assert broker.alive, "the broker process died"
            bystander.round_trip()
            new_client_connects(broker.port)
            assert broker.trouble() == []

        check()
        bystander.close()
        rss = broker.rss_kib()
    finally:
        status = broker.stop()
    assert status == 0
    assert broker.trouble() == []
    assert broker.count("Broker stopped.") == 1
    violations = broker.count("protocol violation")
    assert violations > 0  # the fuzz did reach the broker's checks
    if LONG_RUN:
        print(
            f"\nfuzz: {examples} examples, {violations} protocol violations logged, "
            f"broker RSS {rss} KiB at the end, exited {status}, no trouble in its log"
        )
