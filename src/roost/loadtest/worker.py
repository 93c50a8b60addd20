"""One worker process: connects its share of the clients and drives them, phase by phase.

The runner sends commands over a pipe and the worker answers each one:

``connect`` is implicit (the worker starts with it) and answered by a ``ConnectReport``;
``status`` by a ``StatusReport`` (connections alive, keep-alive pings);
``publish`` starts the publishers (or, with ``verify``, the conn scenario's verifier)
and is answered by a ``PublishReport`` once they are done;
``drain`` carries how many messages went to each topic; the worker waits until its
subscribers have them all (or a deadline) and answers with a ``DrainReport``;
``stop`` disconnects everything and ends the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Callable, Coroutine, MutableSequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from roost.loadtest.connection import BenchConnection, failure_text, open_connection
from roost.loadtest.plan import ClientSpec, Settings
from roost.loadtest.publisher import Publisher
from roost.loadtest.shared import Counters, loop_factory
from roost.loadtest.stats import Histogram, SubscriberCounts, Tracker

FILLER_CHUNK = 100  # filters per SUBSCRIBE when a client holds many
FILLER_PIPELINE = 8  # SUBSCRIBEs in flight per client
MAX_ERRORS = 5  # error messages kept per worker (the rest are only counted)


@dataclass(slots=True)
class ConnectReport:
    """A worker's answer to ``connect``: how its clients' connects and
    subscriptions went, and how long they took.
    """

    connected: int = 0
    failed: int = 0
    subscriptions: int = 0
    refused_subscriptions: int = 0
    first_ns: int = 0  # first connect() started
    last_ns: int = 0  # last client ready (CONNACK, and SUBACK if it subscribes)
    connack: Histogram = field(default_factory=Histogram)
    cpu_s: float = 0.0
    errors: list[str] = field(default_factory=list)


@dataclass(slots=True)
class StatusReport:
    """A worker's answer to ``status``: live connections and keep-alive pings."""

    alive: int = 0
    pings: int = 0
    pongs: int = 0
    ping_timeouts: int = 0


@dataclass(slots=True)
class PublishReport:
    """A worker's answer to ``publish``: what its publishers sent and had acknowledged."""

    sent: int = 0
    acked: int = 0
    unacked: int = 0
    first_ns: int = 0
    last_ns: int = 0
    sent_by_topic: dict[str, int] = field(default_factory=dict)
    send_lag: Histogram = field(default_factory=Histogram)


@dataclass(slots=True)
class DrainReport:
    """A worker's answer to ``drain``: what its subscribers received of what was sent."""

    counts: SubscriberCounts
    expected: int
    cpu_s: float  # process CPU from the publish command to the end of the drain
    status: StatusReport


Command = tuple[Any, ...]


class Worker:
    """Runs one worker process's clients and answers the runner's commands over the pipe."""

    def __init__(
        self,
        settings: Settings,
        clients: list[ClientSpec],
        pipe: Connection,
        shared: MutableSequence[int],
        ranks: dict[bool, dict[int, int]],
    ) -> None:
        self.settings = settings
        # Every publisher's rank among all of them (in all workers), for the rate schedule.
        self.ranks = ranks
        self.clients = clients
        self.pipe = pipe
        self.shared = Counters(shared)
        self.counts = SubscriberCounts()
        self.conns: dict[int, BenchConnection] = {}
        self.publishers: dict[int, Publisher] = {}
        self._window_publishers: list[Publisher] = []  # publishers that use the window
        self.ping_timeouts = 0
        self.report = ConnectReport()
        self._inbox: asyncio.Queue[Command] = asyncio.Queue()
        self._cpu_mark = 0.0

    # -- plumbing -----------------------------------------------------------------

    def _read_pipe(self, loop: asyncio.AbstractEventLoop) -> None:
        """A thread that reads the runner's commands with blocking reads.

        Not ``loop.add_reader``: uvloop makes the descriptor non-blocking, and then
        ``recv`` of a command larger than one read (the drain's topic counts) fails.
        """
        while True:
            try:
                command = self.pipe.recv()
            except (EOFError, OSError):
                command = ("stop",)
            loop.call_soon_threadsafe(self._inbox.put_nowait, command)
            if command[0] == "stop":
                return

    def _error(self, text: str) -> None:
        if len(self.report.errors) < MAX_ERRORS:
            self.report.errors.append(text)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        reader = threading.Thread(target=self._read_pipe, args=(loop,), daemon=True)
        reader.start()
        sweeper = asyncio.create_task(self._keepalive_sweep())
        try:
            await self._connect_all()
            self.pipe.send(self.report)
            await self._serve()
        except Exception as exc:
            # The runner reports it (as the reason the run was aborted) and stops.
            with contextlib.suppress(OSError):
                self.pipe.send(("error", f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            sweeper.cancel()
            for conn in self.conns.values():
                conn.disconnect()
            with contextlib.suppress(OSError):
                self.pipe.send(("stopped",))

    async def _serve(self) -> None:
        """Answer the runner's commands until it says stop."""
        handlers: dict[str, Callable[..., Coroutine[Any, Any, object]]] = {
            "status": self._status,
            "publish": self._publish,
            "drain": self._drain,
        }
        while True:
            command = await self._inbox.get()
            if command[0] == "stop":
                break
            self.pipe.send(await handlers[command[0]](*command[1:]))

    # -- connect ------------------------------------------------------------------

    async def _connect_all(self) -> None:
        settings = self.settings
        share = math.ceil(settings.conn_parallel / settings.processes)
        gate = asyncio.Semaphore(max(1, share))
        started = time.process_time()
        self.report.first_ns = time.monotonic_ns()
        await asyncio.gather(*(self._connect_one(spec, gate) for spec in self.clients))
        self.report.cpu_s = time.process_time() - started

    async def _connect_one(self, spec: ClientSpec, gate: asyncio.Semaphore) -> None:
        settings = self.settings
        sources = settings.sources
        source = sources[spec.index % len(sources)] if sources else None
        report = self.report
        async with gate:
            began = time.monotonic_ns()
            try:
                conn = await open_connection(
                    settings.host,
                    settings.port,
                    spec.client_id,
                    version=settings.version,
                    keepalive=settings.keepalive,
                    timeout=settings.connect_timeout,
                    source=source,
                    index=spec.index,
                    username=settings.username,
                    password=settings.password,
                )
            except (OSError, TimeoutError, ConnectionError, Exception) as exc:  # noqa: BLE001
                report.failed += 1
                self._error(
                    f"{spec.client_id}: cannot connect to {settings.host}:{settings.port}: "
                    f"{failure_text(exc, settings.connect_timeout)}"
                )
                return
            report.connack.record((time.monotonic_ns() - began) // 1000)
            self.conns[spec.index] = conn
            try:
                await self._subscribe(conn, spec)
            except (OSError, TimeoutError, ConnectionError) as exc:
                report.failed += 1
                self._error(
                    f"{spec.client_id}: subscribe: {failure_text(exc, settings.connect_timeout)}"
                )
                return
            report.connected += 1
            report.last_ns = max(report.last_ns, time.monotonic_ns())
        if spec.publishes:
            self._make_publisher(conn, spec)

    async def _subscribe(self, conn: BenchConnection, spec: ClientSpec) -> None:
        settings = self.settings
        if spec.subscribe:
            tag = None if settings.scenario == "sub" else settings.run_tag
            conn.tracker = Tracker(self.counts, tag)
            if settings.scenario == "pubsub" and settings.window and not settings.rate:
                conn.on_read = self._publish_progress
            codes = await conn.subscribe(
                1, list(spec.subscribe), settings.qos, settings.connect_timeout
            )
            self._count_codes(codes, len(spec.subscribe))
        if spec.filler:
            await self._subscribe_filler(conn, spec.filler)

    async def _subscribe_filler(self, conn: BenchConnection, filters: tuple[str, ...]) -> None:
        gate = asyncio.Semaphore(FILLER_PIPELINE)
        timeout = self.settings.connect_timeout

        async def one(packet_id: int, chunk: list[str]) -> None:
            async with gate:
                codes = await conn.subscribe(packet_id, chunk, 0, timeout)
                self._count_codes(codes, len(chunk))

        chunks = [list(filters[i : i + FILLER_CHUNK]) for i in range(0, len(filters), FILLER_CHUNK)]
        await asyncio.gather(*(one(n % 0xFFFF + 1, chunk) for n, chunk in enumerate(chunks)))

    def _count_codes(self, codes: tuple[int, ...], wanted: int) -> None:
        refused = sum(code >= 0x80 for code in codes)
        self.report.subscriptions += wanted - refused
        self.report.refused_subscriptions += refused
        if refused:
            self._error(f"{refused} subscription(s) refused (SUBACK 0x{max(codes):02X})")

    def _publish_progress(self, conn: BenchConnection) -> None:
        tracker = conn.tracker
        if tracker is not None:
            self.shared.values[conn.index] = tracker.unique
            for publisher in self._window_publishers:
                publisher.window_moved()

    def _make_publisher(self, conn: BenchConnection, spec: ClientSpec) -> None:
        settings = self.settings
        publisher = self.publishers[spec.index] = Publisher(
            conn,
            publisher_id=settings.run_tag << 16 | (spec.index & 0xFFFF),
            topics=spec.publish,
            qos=settings.qos,
            size=settings.size,
            retain=settings.retain,
            inflight=settings.inflight,
            count=spec.count,
            shared=self.shared if spec.sinks and not settings.rate else None,
            slot=spec.index,
            sinks=spec.sinks,
            window=settings.window,
        )
        if publisher.shared is not None:
            self._window_publishers.append(publisher)

    # -- keep-alive ---------------------------------------------------------------

    async def _keepalive_sweep(self) -> None:
        keepalive = self.settings.keepalive
        if not keepalive:
            return
        idle = keepalive / 2  # ping after half the keep-alive of silence, as mqttload does
        while True:
            await asyncio.sleep(min(1.0, idle / 2))
            now = time.monotonic()
            for conn in self.conns.values():
                if conn.lost:
                    continue
                if conn.ping_since:
                    if now - conn.ping_since > keepalive:
                        self.ping_timeouts += 1
                        conn.ping_since = now  # count each silent keep-alive period once
                elif now - conn.last_sent >= idle:
                    conn.ping(now)

    async def _status(self) -> StatusReport:
        alive = [conn for conn in self.conns.values() if not conn.lost]
        return StatusReport(
            alive=len(alive),
            pings=sum(conn.pings for conn in self.conns.values()),
            pongs=sum(conn.pongs for conn in self.conns.values()),
            ping_timeouts=self.ping_timeouts,
        )

    # -- publish and drain ----------------------------------------------------------

    async def _publish(self, verify: bool, start_monotonic: float) -> PublishReport:
        """Run this worker's publishers (the verifier only, with ``verify``) to the end."""
        self._cpu_mark = time.process_time()
        settings = self.settings
        loop = asyncio.get_running_loop()
        start = loop.time() + max(0.0, start_monotonic - time.monotonic())
        specs = {spec.index: spec for spec in self.clients}
        chosen = [
            (specs[i], pub) for i, pub in self.publishers.items() if specs[i].verify == verify
        ]
        ranks = self.ranks[verify]
        deadline = start + settings.duration if settings.duration and not verify else math.inf
        for spec, publisher in chosen:
            interval = offset = 0.0
            if settings.rate and not verify:
                # Publisher k of K sends its j-th message at start + (j*K + k) / rate.
                interval = len(ranks) / settings.rate
                offset = ranks[spec.index] / settings.rate
            publisher.start(start + offset, deadline, interval)
        if chosen:
            await asyncio.gather(*(pub.done for _, pub in chosen))
        report = PublishReport()
        for spec, pub in chosen:
            report.sent += pub.sent
            report.acked += pub.acked
            report.unacked += pub.lost + len(pub.inflight)
            if pub.first_ns and (not report.first_ns or pub.first_ns < report.first_ns):
                report.first_ns = pub.first_ns
            report.last_ns = max(report.last_ns, pub.last_ns)
            for topic, sent in zip(spec.publish, pub.sent_by_topic, strict=True):
                report.sent_by_topic[topic] = report.sent_by_topic.get(topic, 0) + sent
            for lag in pub.send_lag:
                report.send_lag.record(lag)
        return report

    async def _drain(self, sent_by_topic: dict[str, int], timeout: float) -> DrainReport:
        expected = {
            spec.index: sum(sent_by_topic.get(topic, 0) for topic in spec.expects)
            for spec in self.clients
            if spec.subscribe and spec.index in self.conns
        }
        total = sum(expected.values())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(
                (tracker := self.conns[index].tracker) is not None and tracker.unique >= wanted
                for index, wanted in expected.items()
            ):
                break
            await asyncio.sleep(0.01)
        cpu = time.process_time() - self._cpu_mark
        return DrainReport(self.counts, total, cpu, await self._status())


def worker_main(
    settings: Settings,
    clients: list[ClientSpec],
    ranks: dict[bool, dict[int, int]],
    pipe: Connection,
    shared: MutableSequence[int],
) -> None:
    """The worker process's entry point (it must be importable for ``spawn``)."""
    worker = Worker(settings, clients, pipe, shared, ranks)
    with asyncio.Runner(loop_factory=loop_factory(settings.use_uvloop)) as runner:
        runner.run(worker.run())
