"""A deliberately broken broker for the load tool's own tests: it loses and duplicates.

QoS 0 only, exact-topic subscriptions, one asyncio loop in a thread on port 0. Every
``drop_every``-th PUBLISH it routes is not delivered and every ``dup_every``-th one is
delivered twice, so the tool's loss and duplicate counts can be checked exactly.
"""

from __future__ import annotations

import asyncio
import threading

from roost.codec import Connack, Connect, PacketReader, Publish, Suback, Subscribe


class LossyBroker:
    def __init__(self, drop_every: int, dup_every: int) -> None:
        self.drop_every = drop_every
        self.dup_every = dup_every
        self.routed = self.dropped = self.duplicated = 0
        self.port = 0
        self._subscribers: dict[str, list[asyncio.Transport]] = {}
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> LossyBroker:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the lossy broker did not start")
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            self._loop.create_server(lambda: _Connection(self), "127.0.0.1", 0)
        )
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            self._loop.run_until_complete(server.wait_closed())
            self._loop.close()

    def subscribe(self, topic: str, transport: asyncio.Transport) -> None:
        self._subscribers.setdefault(topic, []).append(transport)

    def route(self, packet: Publish) -> None:
        self.routed += 1
        if self.routed % self.drop_every == 0:
            self.dropped += 1
            return
        data = Publish(packet.topic, packet.payload).encode()
        copies = 1
        if self.routed % self.dup_every == 0:
            self.duplicated += 1
            copies = 2
        for transport in self._subscribers.get(packet.topic, []):
            transport.write(data * copies)


class _Connection(asyncio.Protocol):
    def __init__(self, broker: LossyBroker) -> None:
        self.broker = broker
        self.reader = PacketReader()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.reader.feed(data)
        while (packet := self.reader.next_packet()) is not None:
            if isinstance(packet, Connect):
                self.transport.write(Connack().encode())
            elif isinstance(packet, Subscribe):
                for sub in packet.subscriptions:
                    self.broker.subscribe(sub.topic_filter, self.transport)
                codes = tuple(0 for _ in packet.subscriptions)
                self.transport.write(Suback(packet.packet_id, codes).encode())
            elif isinstance(packet, Publish):
                self.broker.route(packet)
