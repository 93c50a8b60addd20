"""kill -9 at random points loses no acknowledged message.

A `roost broker` process (commit policy "sync") receives QoS 1 and QoS 2 publishes,
pipelined, for a persistent subscriber that is offline, and is killed with SIGKILL
after a random number of acknowledgements, then started again on the same data
directory, several times over. Then the subscriber comes back for its messages, and
the broker is killed again at random points while it delivers them. The subscriber
behaves as the specification asks of a client with a persistent session (it keeps the
QoS 2 ids it has acknowledged with PUBREC until their PUBREL, across connections).

In the end it must have received every acknowledged QoS 1 message at least once and
every acknowledged QoS 2 message exactly once (no QoS 2 message twice at all), in the
order they were published. "Acknowledged" means PUBACK / PUBREC reached the publisher.

The random points come from a seeded generator: ROOST_CRASH_SEED=N reruns one seed.
"""

from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from roost.codec import (
    MQTT_5,
    Packet,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Subscription,
)
from tests.persistence.conftest import StartProcess
from tests.persistence.process import BrokerProcess
from tests.support.raw import RawClient, connect, persistent, subscribe

SEEDS = (
    [int(os.environ["ROOST_CRASH_SEED"])]
    if "ROOST_CRASH_SEED" in os.environ
    else [7, 1983, 2024, 31337, 4242]
)
PUBLISH_KILLS = 3  # kills while publishing
DELIVERY_KILLS = 2  # kills while the subscriber receives
WINDOW = 16  # the publisher's unacknowledged PUBLISHes
SUBSCRIBER = "crash-subscriber"
END = b"end"

CONFIG = """\
max_queued_messages = 100000
sys_interval = 0
commit_policy = "sync"
"""


@dataclass
class Publisher:
    """Pipelined QoS 1/2 publishing with a record of which messages were acknowledged."""

    rng: random.Random
    next_seq: int = 0
    acked: dict[int, int] = field(default_factory=dict)  # seq -> qos, once acknowledged

    def run(self, broker: BrokerProcess, round_no: int, acks_before_kill: int) -> None:
        client = connect(broker.port, MQTT_5, f"publisher-{round_no}")
        outstanding: dict[int, tuple[int, int]] = {}  # packet id -> (seq, qos)
        releasing: set[int] = set()  # QoS 2 ids between PUBREL and PUBCOMP
        acks = 0
        next_id = 1
        while acks < acks_before_kill:
            while len(outstanding) + len(releasing) < WINDOW:
                while next_id in outstanding or next_id in releasing:
                    next_id = next_id % 65535 + 1
                seq, qos = self.next_seq, self.rng.choice((1, 2))
                self.next_seq += 1
                topic = f"crash/q{qos}"
                client.send(Publish(topic, str(seq).encode(), qos=qos, packet_id=next_id))
                outstanding[next_id] = (seq, qos)
                next_id = next_id % 65535 + 1
            acks += self._handle(client, client.recv(), outstanding, releasing)
        broker.kill()
        # Acknowledgements the broker sent before it died count: they were promises.
        for packet in client.expect_closed():
            self._handle(client, packet, outstanding, releasing)
        client.close()

    def _handle(
        self,
        client: RawClient,
        packet: Packet,
        outstanding: dict[int, tuple[int, int]],
        releasing: set[int],
    ) -> int:
        if isinstance(packet, Puback | Pubrec):
            assert packet.reason_code < 0x80, packet
            seq, qos = outstanding.pop(packet.packet_id)
            assert qos == (1 if isinstance(packet, Puback) else 2)
            self.acked[seq] = qos
            if qos == 2:
                releasing.add(packet.packet_id)
                with contextlib.suppress(OSError):  # the broker may be gone already
                    client.send(Pubrel(packet.packet_id))
            return 1
        assert isinstance(packet, Pubcomp), packet
        releasing.discard(packet.packet_id)
        return 0


@dataclass
class Subscriber:
    """A client with a persistent session: QoS 2 ids PUBREC'd but not yet released are
    remembered across connections, so a resent QoS 2 message is not delivered again."""

    awaiting_release: set[int] = field(default_factory=set)
    delivered: list[tuple[int, bytes]] = field(default_factory=list)  # (qos, payload)

    def connect(self, broker: BrokerProcess) -> RawClient:
        return connect(broker.port, MQTT_5, SUBSCRIBER, present=True, **persistent(MQTT_5))

    def receive(self, client: RawClient, count: int | None) -> bool:
        """Handle packets until ``count`` deliveries (or the END marker); True at END."""
        got = 0
        while count is None or got < count:
            packet = client.recv()
            delivered = self.handle(client, packet)
            got += delivered
            if delivered and self.delivered[-1][1] == END:
                return True
        return False

    def handle(self, client: RawClient, packet: Packet) -> int:
        """One packet from the broker; returns 1 for a delivery to the application."""
        if isinstance(packet, Pubrel):
            self.awaiting_release.discard(packet.packet_id)
            self._reply(client, Pubcomp(packet.packet_id))
            return 0
        assert isinstance(packet, Publish), packet
        if packet.qos == 1:
            self.delivered.append((1, packet.payload))
            self._reply(client, Puback(packet.packet_id))
            return 1
        assert packet.qos == 2, packet
        new = packet.packet_id not in self.awaiting_release
        if new:
            self.awaiting_release.add(packet.packet_id)
            self.delivered.append((2, packet.payload))
        self._reply(client, Pubrec(packet.packet_id))
        return int(new)

    @staticmethod
    def _reply(client: RawClient, packet: Packet) -> None:
        with contextlib.suppress(OSError):  # killed: the broker resends after its restart
            client.send(packet)


def check(acked: dict[int, int], delivered: list[tuple[int, bytes]]) -> None:
    assert delivered[-1] == (1, END)
    received = [(qos, int(payload)) for qos, payload in delivered[:-1]]
    seen: set[int] = set()
    firsts: list[int] = []
    for qos, seq in received:
        if qos == 2:
            assert seq not in seen, f"QoS 2 message {seq} delivered twice"
        if seq not in seen:
            seen.add(seq)
            firsts.append(seq)
    lost = sorted(seq for seq in acked if seq not in seen)
    assert lost == [], f"acknowledged messages lost: {lost}"
    assert firsts == sorted(firsts), "messages out of order"
    qos_of = {seq: qos for qos, seq in received}
    assert all(qos_of[seq] == qos for seq, qos in acked.items())


@pytest.mark.parametrize("seed", SEEDS)
def test_sigkill_loses_no_acknowledged_message(
    start_process: StartProcess, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    config = tmp_path / "roost.toml"
    config.write_text(CONFIG)
    broker = start_process("-c", str(config))
    setup = connect(broker.port, MQTT_5, SUBSCRIBER, **persistent(MQTT_5))
    subscribe(setup, Subscription("crash/q1", 1), Subscription("crash/q2", 2))
    setup.close()

    publisher = Publisher(rng)
    for round_no in range(PUBLISH_KILLS):
        publisher.run(broker, round_no, rng.randint(1, 250))
        broker = start_process("-c", str(config))
    assert len(publisher.acked) >= PUBLISH_KILLS
    marker = connect(broker.port, MQTT_5, "marker")
    marker.send(Publish("crash/q1", END, qos=1, packet_id=1))
    assert marker.recv() == Puback(1)
    marker.close()

    subscriber = Subscriber()
    for _ in range(DELIVERY_KILLS):
        client = subscriber.connect(broker)
        if subscriber.receive(client, rng.randint(1, 150)):
            break
        broker.kill()
        for packet in client.expect_closed():
            subscriber.handle(client, packet)
        client.close()
        broker = start_process("-c", str(config))
    else:
        client = subscriber.connect(broker)
        assert subscriber.receive(client, None)
    client.close()
    broker.stop()

    check(publisher.acked, subscriber.delivered)
