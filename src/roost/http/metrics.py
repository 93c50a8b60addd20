"""``GET /metrics``: the broker's counters in Prometheus's text format.

A custom collector computes every metric family at scrape time from what the broker
already counts (``stats.Stats``, the listeners, the registry, the router, the store's
commit histograms); nothing is added to the hot path but plain integer increments where
the broker counts anyway. The exposition is prometheus-client's own
(``generate_latest``), with its ``ProcessCollector`` for CPU time, memory and file
descriptors. The event loop's lag is sampled here, twice a second, by a timer.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from roost import __version__
from roost.broker.persistence.sqlite import SqliteStore

if TYPE_CHECKING:
    from collections.abc import Iterator

    from roost.broker.stats import Histogram
    from roost.http.host import HttpHost

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LAG_INTERVAL = 0.5  # seconds between event-loop lag samples


class LoopLag:
    """How late a timer on the event loop fires: a busy loop answers everything late."""

    __slots__ = ("_task", "last", "worst")

    def __init__(self) -> None:
        self.last = 0.0  # the latest sample, seconds
        self.worst = 0.0  # the largest since the last scrape (reset by take_worst)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            planned = loop.time() + LAG_INTERVAL
            await asyncio.sleep(LAG_INTERVAL)
            lag = max(0.0, loop.time() - planned)
            self.last = lag
            self.worst = max(self.worst, lag)

    def take_worst(self) -> float:
        worst, self.worst = max(self.worst, self.last), 0.0
        return worst


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _histogram(name: str, doc: str, histogram: Histogram) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, doc, buckets=histogram.cumulative(), sum_value=histogram.sum)


class BrokerCollector:
    """Yields the broker's metric families, computed when Prometheus scrapes."""

    def __init__(self, host: HttpHost, lag: LoopLag) -> None:
        self._host = host
        self._lag = lag

    def collect(self) -> Iterator[Metric]:
        host = self._host
        core = host.core
        stats = core.stats
        info = GaugeMetricFamily("roost_info", "Roost's version.", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        yield _gauge(
            "roost_uptime_seconds",
            "Seconds since the broker started.",
            host.now() - host.started_at,
        )
        connections = GaugeMetricFamily(
            "roost_connections", "Open client connections, per listener.", labels=["listener"]
        )
        for listener in host.listeners:
            connections.add_metric([listener.label], listener.connections)
        yield connections
        yield _counter(
            "roost_client_connects", "CONNECTs accepted since the start.", stats.clients_total
        )
        refused = CounterMetricFamily(
            "roost_connections_refused",
            "Connections refused, by CONNACK reason code.",
            labels=["reason"],
        )
        for reason, count in sorted(stats.refused_by_reason.items()):
            refused.add_metric([reason], count)
        yield refused
        closed = CounterMetricFamily(
            "roost_connections_closed_by_broker",
            "Connections the broker ended, by reason.",
            labels=["reason"],
        )
        for reason, count in sorted(stats.closed_by_broker.items()):
            closed.add_metric([reason], count)
        yield closed
        yield _counter(
            "roost_protocol_violations",
            "Connections closed for a protocol violation.",
            stats.protocol_violations,
        )
        yield from self._sessions()
        router = core.router
        yield _gauge(
            "roost_subscriptions",
            "Subscriptions (shared ones included).",
            router.subscription_count,
        )
        yield _gauge("roost_retained_messages", "Retained messages.", router.retained_count)
        yield from self._messages()
        yield from self._store()
        yield _gauge(
            "roost_event_loop_lag_seconds",
            "The largest event-loop lag sampled since the last scrape (every 0.5 s).",
            self._lag.take_worst(),
        )

    def _sessions(self) -> Iterator[Metric]:
        sessions = self._host.core.registry.sessions
        online = inflight = queued = queued_bytes = 0
        for session in sessions.values():
            if session.connection is not None:
                online += 1
            inflight += len(session.inflight)
            queued += session.queued_count
            queued_bytes += session.queued_bytes
        family = GaugeMetricFamily("roost_sessions", "Sessions, by state.", labels=["state"])
        family.add_metric(["online"], online)
        family.add_metric(["offline"], len(sessions) - online)
        yield family
        yield _gauge(
            "roost_inflight_messages",
            "QoS 1 and 2 messages sent to clients and not yet acknowledged.",
            inflight,
        )
        yield _gauge("roost_queued_messages", "Messages waiting in session queues.", queued)
        yield _gauge("roost_queued_bytes", "Bytes of the messages waiting in queues.", queued_bytes)

    def _messages(self) -> Iterator[Metric]:
        host = self._host
        stats = host.core.stats
        for name, doc, values in (
            (
                "roost_messages_received",
                "PUBLISH packets from clients, by QoS.",
                stats.received_by_qos,
            ),
            (
                "roost_messages_received_bytes",
                "Payload bytes of PUBLISHes from clients, by QoS.",
                stats.received_bytes_by_qos,
            ),
            (
                "roost_messages_delivered",
                "Messages handed to subscribers' sessions (sent or queued), by QoS.",
                stats.sent_by_qos,
            ),
            (
                "roost_messages_delivered_bytes",
                "Payload bytes handed to subscribers' sessions, by QoS.",
                stats.sent_bytes_by_qos,
            ),
        ):
            family = CounterMetricFamily(name, doc, labels=["qos"])
            for qos, value in enumerate(values):
                family.add_metric([str(qos)], value)
            yield family
        yield _counter(
            "roost_bytes_received", "Bytes read from client connections.", stats.bytes_received
        )
        yield _counter("roost_bytes_sent", "Bytes written to client connections.", host.bytes_sent)
        dropped = CounterMetricFamily(
            "roost_messages_dropped",
            "Messages not delivered to a subscriber, by reason.",
            labels=["reason"],
        )
        for reason, count in stats.dropped.items():
            dropped.add_metric([str(reason)], count)
        yield dropped
        yield _counter(
            "roost_connections_paused",
            "Times a connection was not read because its answers waited for store commits.",
            stats.held_back,
        )

    def _store(self) -> Iterator[Metric]:
        store = self._host.core.store
        if isinstance(store, SqliteStore):
            yield _histogram(
                "roost_store_commit_seconds",
                "How long each SQLite commit took.",
                store.commit_seconds,
            )
            yield _histogram(
                "roost_store_batch_changes",
                "Rows written or deleted per SQLite commit.",
                store.batch_changes,
            )


class Metrics:
    """The registry ``/metrics`` exposes: the broker's collector and the process's."""

    def __init__(self, host: HttpHost) -> None:
        self.lag = LoopLag()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(BrokerCollector(host, self.lag))
        ProcessCollector(registry=self.registry)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
