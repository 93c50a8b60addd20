"""A persistent session moving between nodes while messages flow to it: every QoS 1
message acknowledged to its publisher (on a third node) reaches the subscriber, before,
during and after each takeover (docs/clustering.md, "Persistent sessions").

Before the takeover was ordered (the new owner receives first, the old one hands over
only once its QoS consumer has caught up), a tenth of a second of messages could fall
between the two nodes at each move."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest

from roost.codec import MQTT_3_1_1, MQTT_5
from tests.cluster.conftest import NodeFactory
from tests.cluster.nodes import linked
from tests.support.paho import PahoClient
from tests.support.waiting import wait_until

MOVES = 10
PAUSE = 0.3  # seconds of publishing between two moves
ARRIVAL = 15.0  # seconds for the last messages to arrive


def _ranges(numbers: list[int]) -> list[tuple[int, int]]:
    ranges: list[list[int]] = []
    for number in numbers:
        if ranges and ranges[-1][1] == number - 1:
            ranges[-1][1] = number
        else:
            ranges.append([number, number])
    return [(first, last) for first, last in ranges]


@pytest.mark.parametrize("version", [MQTT_3_1_1, MQTT_5], ids=["3.1.1", "5.0"])
def test_no_acknowledged_message_is_lost_while_a_session_moves_between_nodes(
    make_node: NodeFactory, version: int
) -> None:
    a, b, c = (make_node(name) for name in "abc")
    expiry = 300 if version == MQTT_5 else None

    def connect(port: int) -> PahoClient:
        return PahoClient(port, "mover", version, clean=False, session_expiry=expiry)

    subscriber = connect(a.port)
    subscriber.subscribe("move/#", 1)
    publisher = PahoClient(c.port, "publisher", MQTT_5)
    linked(publisher, subscriber, "move/probe")
    stop = threading.Event()
    acknowledged: list[int] = []

    def publish() -> None:
        number = 0
        while not stop.is_set():
            publisher.publish("move/x", b"%d" % number, 1)  # returns on the PUBACK
            acknowledged.append(number)
            number += 1

    thread = threading.Thread(target=publish, name="publisher")
    thread.start()
    clients = [subscriber]
    try:
        for move in range(MOVES):
            time.sleep(PAUSE)
            clients.append(connect((b, a)[move % 2].port))  # takes the session over
        time.sleep(PAUSE)
    finally:
        stop.set()
        thread.join()
    received: set[int] = set()

    def all_arrived() -> bool:
        for client in clients:
            while not client.messages.empty():
                message = client.messages.get_nowait()
                if message.topic == "move/x":
                    received.add(int(message.payload))
        return received >= set(acknowledged)

    with contextlib.suppress(AssertionError):  # the assertion below says what is missing
        wait_until(all_arrived, timeout=ARRIVAL)
    missing = sorted(set(acknowledged) - received)
    assert len(acknowledged) > MOVES * 10  # messages flowed across every move
    assert not missing, (len(acknowledged), len(missing), _ranges(missing))
