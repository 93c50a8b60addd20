"""The spool on its own (docs/clustering.md, "The spool"): messages JetStream did not
store are put in the node's store, and their publishers' acknowledgements, held on the
stream's gate, go only once those rows are committed."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from roost.broker.config import BrokerConfig
from roost.broker.core import BrokerCore
from roost.broker.message import Message
from roost.broker.persistence import MemoryStore, SqliteStore
from roost.broker.persistence.store import Store
from roost.cluster import envelope
from roost.cluster.durable import GATE, QosStream
from roost.cluster.qos_consumer import QosConsumer


class Conn:
    """A connection's gates as the transport keeps them: what it waits for on gate 1,
    and how far gate 1 has passed."""

    def __init__(self) -> None:
        self.waits_for = 0
        self.passed = 0

    def hold(self, batch: int, gate: int = 0) -> None:
        assert gate == GATE
        self.waits_for = batch

    def release(self, committed: int, gate: int = 0) -> bool:
        assert gate == GATE
        self.passed = max(self.passed, committed)
        return self.passed < self.waits_for

    @property
    def acknowledged(self) -> bool:
        return self.passed >= self.waits_for > 0


@dataclass
class Answer:
    """A JetStream PubAck as nats-py hands it to the answers' subscription."""

    subject: str
    data: bytes = b'{"stream":"ROOST_QOS","seq":1}'


def published(store: Store, count: int) -> tuple[QosStream, Conn]:
    """A stream that answers, ``count`` messages sent to it, and a publisher waiting."""
    stream = QosStream(store)
    stream.ready = True
    for i in range(count):
        stream.publish(f"roost.q.t.{i}", b"m-%d" % i, f"a/1/{i}")
    conn = Conn()
    stream.hold(conn)
    assert conn.waits_for == count
    return stream, conn


def test_acknowledgements_put_back_wait_for_the_spool_commit(tmp_path: Path) -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        store = SqliteStore(str(tmp_path))
        store.open(loop)
        stream, conn = published(store, 3)

        stream.lost()  # NATS gone: the three go to the spool, in the store's batch
        assert stream.spooled == 3
        assert not conn.acknowledged  # the rows are not committed yet
        await store.flush()
        assert conn.acknowledged

        # Sent again once the stream answers: same ids, in order; each row goes once
        # JetStream has the message.
        stream.ready = True
        stream._unspool()
        assert stream.spooled == 0
        for ticket in (4, 5):
            await stream._answered(Answer(f"{stream._inbox}.{ticket}"))
        await store.close()

        again = SqliteStore(str(tmp_path))
        state = again.open(loop)
        await again.close()
        assert [(e.subject, e.data, e.msg_id) for e in state.spool] == [
            ("roost.q.t.2", b"m-2", "a/1/2")
        ]

    asyncio.run(run())


def test_new_messages_spooled_while_unready_come_after_those_put_back(tmp_path: Path) -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        store = SqliteStore(str(tmp_path))
        store.open(loop)
        stream, _conn = published(store, 2)
        stream.lost()
        stream.publish("roost.q.new", b"later", "a/1/9")  # while NATS is away
        await stream.stop(0)
        await store.close()

        again = SqliteStore(str(tmp_path))
        state = again.open(loop)
        restored = QosStream(again)
        restored.restore(state.spool)
        restored.publish("roost.q.newest", b"newest", "b/2/1")  # before the stream answers
        restored.ready = True
        restored._unspool()
        sent = [restored._pending[ticket].msg_id for ticket in restored._queue]
        assert sent == ["a/1/0", "a/1/1", "a/1/9", "b/2/1"]
        await again.close()

    asyncio.run(run())


def test_without_persistence_acknowledgements_go_at_once() -> None:
    async def run() -> None:
        stream, conn = published(MemoryStore(), 2)
        stream.lost()
        assert conn.acknowledged
        assert stream.spooled == 2

    asyncio.run(run())


class StreamMessage:
    """What the consumer reads of a message fetched from ``ROOST_QOS``."""

    def __init__(self, stream_seq: int, data: bytes) -> None:
        self.data = data
        self.metadata = SimpleNamespace(sequence=SimpleNamespace(stream=stream_seq))


def test_a_copy_stored_twice_in_the_stream_is_applied_once() -> None:
    """A spooled message resent after JetStream's duplicate window is stored twice; the
    receiving consumer skips the second copy by its origin and sequence number."""

    async def run() -> None:
        delivered: list[bytes] = []

        class Router:
            def publish(self, message: Message, now: float, forward: bool = True) -> int:
                delivered.append(message.payload)
                return 1

        core = SimpleNamespace(router=Router(), store=MemoryStore(), meta={})
        consumer = QosConsumer(core, "b", "ROOST_QOS")  # type: ignore[arg-type]

        def sent(seq: int, origin: bytes = b"a/0001") -> bytes:
            return envelope.encode(origin, seq, Message("t", b"m-%d" % seq, 2, False), 0.0)

        first = [StreamMessage(n, sent(n)) for n in (1, 2, 3)]
        # 2 and 3 again (their answers were lost), then 4; another origin's 2 is new.
        again = [StreamMessage(4, sent(2)), StreamMessage(5, sent(3)), StreamMessage(6, sent(4))]
        other = [StreamMessage(7, sent(2, b"c/0001"))]
        assert consumer._apply(first) == 3  # type: ignore[arg-type]
        assert consumer._apply(again) == 1  # type: ignore[arg-type]
        assert consumer._apply(other) == 1  # type: ignore[arg-type]
        assert delivered == [b"m-1", b"m-2", b"m-3", b"m-4", b"m-2"]
        assert consumer.duplicates == 2

    asyncio.run(run())


def test_a_message_spooled_during_its_publish_holds_the_publishers_acknowledgement(
    tmp_path: Path,
) -> None:
    """The PUBLISH handler holds the PUBACK/PUBREC when ``BrokerCore.changes`` moved: the
    spool row must count, and ``hold`` must wait for its commit."""

    async def run() -> None:
        core = BrokerCore(BrokerConfig(persistence="sqlite", data_dir=str(tmp_path)))
        core.open_state(asyncio.get_running_loop())
        stream = QosStream(core.store)
        core.ack_gate = stream
        before = core.changes()
        stream.publish("roost.q.t", b"while away", "a/1/1")  # the stream is not ready
        assert core.changes() != before

        committed: list[int] = []

        class Held:
            def hold(self, batch: int, gate: int = 0) -> None:
                committed.append(-batch)

            def release(self, batch: int, gate: int = 0) -> bool:
                committed.append(batch)
                return False

        core.hold(Held())
        assert committed[0] < 0  # held for a batch...
        await core.store.flush()
        assert committed[1] >= -committed[0]  # ...and let go once it is committed
        await core.store.close()

    asyncio.run(run())
