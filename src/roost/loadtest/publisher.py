"""One publishing client: PUBLISH templates, the in-flight window, rate and flow control.

A PUBLISH is encoded once per topic by roost.codec; each message then only fills in
the packet identifier and the 16-byte payload header (publisher id, sequence number,
send time) with ``struct``. Messages are sent in bursts, one ``write`` per burst.

What holds a publisher back, checked before every message:
* QoS 1/2: at most ``inflight`` unacknowledged messages (and the broker's Receive
  Maximum under MQTT 5);
* the transport's write buffer (``pause_writing``);
* throughput mode: the window, i.e. no subscriber of this publisher's stream may be
  ``window`` or more messages behind. Subscribers may live in other worker processes,
  so sent and received counts live in shared memory (one int64 per client) and a
  blocked publisher looks again every millisecond;
* rate mode: the schedule (message j of publisher k of K at t0 + (j*K + k) / rate).
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from roost.codec import MQTT_5, PUBCOMP, PUBREC, Publish
from roost.loadtest.connection import HEADER_SIZE, BenchConnection

if TYPE_CHECKING:
    from roost.loadtest.shared import Counters

BURST = 64  # messages per write at most: big enough to batch, small enough to interleave
WINDOW_RECHECK = 0.001  # seconds between looks at the window while it is closed
_pack_id_header = struct.Struct(">HIIQ").pack
_pack_header = struct.Struct(">IIQ").pack
_pack_id = struct.Struct(">H").pack
_PUBREL = 0x62


class Template:
    """The bytes of one topic's PUBLISH around the packet id and the payload header."""

    __slots__ = ("head", "middle", "padding")

    def __init__(self, topic: str, qos: int, size: int, version: int, retain: bool) -> None:
        packet = Publish(topic, bytes(size), qos, retain, packet_id=1 if qos else 0)
        encoded = packet.encode(version)
        properties = 1 if version == MQTT_5 else 0
        body_start = len(encoded) - size
        id_start = body_start - properties - (2 if qos else 0)
        self.head = encoded[:id_start]
        self.middle = encoded[id_start + (2 if qos else 0) : body_start]
        self.padding = bytes(size - HEADER_SIZE)


class Publisher:
    """Publishes on one connection; the worker starts it and collects its counts."""

    __slots__ = (
        "_handle",
        "_loop",
        "_next_id",
        "_scheduled",
        "acked",
        "conn",
        "count",
        "deadline",
        "done",
        "first_ns",
        "inflight",
        "interval",
        "last_ns",
        "lost",
        "max_inflight",
        "publisher_id",
        "qos",
        "running",
        "send_lag",
        "sent",
        "sent_by_topic",
        "shared",
        "sinks",
        "slot",
        "start_at",
        "started",
        "templates",
        "window",
        "window_closed",
    )

    def __init__(
        self,
        conn: BenchConnection,
        *,
        publisher_id: int,
        topics: Sequence[str],
        qos: int,
        size: int,
        retain: bool,
        inflight: int,
        count: int,
        shared: Counters | None,
        slot: int,
        sinks: Sequence[tuple[int, tuple[int, ...]]],
        window: int,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.conn = conn
        conn.publisher = self
        self.publisher_id = publisher_id
        self.templates = [Template(t, qos, size, conn.version, retain) for t in topics]
        self.sent_by_topic = [0] * len(topics)
        self.qos = qos
        self.max_inflight = inflight
        self.inflight: dict[int, bool] = {}  # packet id -> PUBREL sent (QoS 2)
        self._next_id = 0
        self.count = count  # 0: until the deadline
        self.sent = 0
        self.acked = 0
        self.lost = 0  # unacknowledged when the connection went away
        self.shared = shared
        self.slot = slot
        # Window: (subscriber slot, publisher slots feeding it) for each subscriber fed.
        self.sinks = tuple(sinks)
        self.window = window
        self.window_closed = False
        self.interval = 0.0  # rate mode: seconds between this publisher's messages
        self.start_at = 0.0
        self.deadline = float("inf")
        self.running = False
        self.started = False  # done only counts once started (a PINGRESP may come before)
        self.done: asyncio.Future[None] = self._loop.create_future()
        self.first_ns = 0
        self.last_ns = 0
        self.send_lag: list[int] = []  # rate mode: µs behind the schedule, per burst
        self._scheduled = False
        self._handle: asyncio.TimerHandle | None = None

    def start(self, start_at: float, deadline: float, interval: float) -> None:
        """Begin at loop time ``start_at``; stop at ``deadline`` or after ``count``."""
        self.start_at = start_at
        self.deadline = deadline
        self.interval = interval
        self.running = self.started = True
        self._handle = self._loop.call_at(start_at, self.pump)

    def stop(self) -> None:
        self.running = False
        if self._handle is not None:
            self._handle.cancel()
        self._finish_if_idle()

    # -- events from the connection -----------------------------------------------

    def acknowledged(self, kind: int, packet_id: int) -> None:
        inflight = self.inflight
        if packet_id not in inflight:
            return
        if kind == PUBREC and self.qos == 2:
            if not inflight[packet_id]:
                inflight[packet_id] = True
                self.conn.write(bytes((_PUBREL, 2, packet_id >> 8, packet_id & 0xFF)))
            return
        if kind == PUBCOMP or self.qos == 1:
            del inflight[packet_id]
            self.acked += 1

    def after_read(self) -> None:
        if self.running:
            self.schedule()
        else:
            self._finish_if_idle()

    def connection_lost(self) -> None:
        self.running = False
        self.lost += len(self.inflight)
        self.inflight.clear()
        if not self.done.done():
            self.done.set_result(None)

    def window_moved(self) -> None:
        """A subscriber in this process received something: look at the window now."""
        if self.window_closed and self._handle is not None:
            self._handle.cancel()
            self._handle = None
            self.window_closed = False
            self.schedule()

    def schedule(self) -> None:
        if not self._scheduled and self.running:
            self._scheduled = True
            self._loop.call_soon(self.pump)

    # -- sending ------------------------------------------------------------------

    def _window_open(self) -> bool:
        shared = self.shared
        if shared is None or not self.window:
            return True
        values = shared.values
        limit = self.window
        for sink, sources in self.sinks:
            behind = sum(values[s] for s in sources) - values[sink]
            if behind >= limit:
                return False
        return True

    def pump(self) -> None:
        self._scheduled = False
        self._handle = None
        if not self.running:
            self._finish_if_idle()
            return
        conn = self.conn
        now = self._loop.time()
        if now >= self.deadline:
            self.stop()
            return
        if conn.write_paused:
            return  # resume_writing calls schedule()
        allowed = BURST
        if self.count:
            allowed = min(allowed, self.count - self.sent)
        if self.qos:
            allowed = min(allowed, self.max_inflight - len(self.inflight))
            if allowed <= 0:
                return  # an acknowledgement calls schedule()
        if self.interval:
            due = int((now - self.start_at) / self.interval) + 1 - self.sent
            if due <= 0:
                self._handle = self._loop.call_at(
                    self.start_at + self.sent * self.interval, self.pump
                )
                return
            lag = now - (self.start_at + self.sent * self.interval)
            self.send_lag.append(int(lag * 1e6))
            allowed = min(allowed, due)
        elif not self._window_open():
            # Subscribers in this process wake it sooner (window_moved); this timer is
            # for those in other processes.
            self.window_closed = True
            self._handle = self._loop.call_later(WINDOW_RECHECK, self.pump)
            return
        self.window_closed = False
        if allowed > 0:
            self._send(allowed)
        if self.count and self.sent >= self.count:
            self.stop()
        elif self.interval:
            self._handle = self._loop.call_at(self.start_at + self.sent * self.interval, self.pump)
        elif not self.qos or len(self.inflight) < self.max_inflight:
            self.schedule()

    def _send(self, n: int) -> None:
        now_ns = time.monotonic_ns()
        if not self.first_ns:
            self.first_ns = now_ns
        templates = self.templates
        topics = len(templates)
        by_topic = self.sent_by_topic
        publisher_id = self.publisher_id
        seq = self.sent
        parts: list[bytes] = []
        append = parts.append
        qos = self.qos
        inflight = self.inflight
        next_id = self._next_id
        for _ in range(n):
            index = seq % topics
            template = templates[index]
            append(template.head)
            if qos:
                next_id = next_id % 0xFFFF + 1
                while next_id in inflight:
                    next_id = next_id % 0xFFFF + 1
                inflight[next_id] = False
                if template.middle:
                    append(_pack_id(next_id))
                    append(template.middle)
                    append(_pack_header(publisher_id, seq, now_ns))
                else:
                    append(_pack_id_header(next_id, publisher_id, seq, now_ns))
            else:
                append(template.middle)
                append(_pack_header(publisher_id, seq, now_ns))
            append(template.padding)
            by_topic[index] += 1
            seq += 1
        self._next_id = next_id
        self.sent = seq
        self.last_ns = now_ns
        self.conn.write(b"".join(parts))
        if self.shared is not None:
            self.shared.values[self.slot] = seq

    def _finish_if_idle(self) -> None:
        if self.started and not self.running and not self.inflight and not self.done.done():
            self.done.set_result(None)
