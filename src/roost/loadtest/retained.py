"""The retained scenario: store many retained messages, then time one subscriber's catch-up.

One publisher stores ``topics`` retained messages (one per topic, at QoS 1, so each is
acknowledged, hence stored, before the clock starts); then a fresh subscriber
subscribes to ``PREFIX/retained/#`` at ``-q`` and the time from its SUBSCRIBE to the
last retained message is measured, with loss and duplicates counted as in the
other scenarios. Broker memory (``--broker-pid``) is sampled before, after storing and
after delivery. Finally the messages are cleared again (empty retained PUBLISHes,
confirmed by a PINGREQ round trip) unless ``keep`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from roost.codec import Publish
from roost.loadtest import procstats
from roost.loadtest.connection import BenchConnection, open_connection
from roost.loadtest.plan import Settings
from roost.loadtest.publisher import Publisher
from roost.loadtest.result import EXIT_CONNECT, EXIT_LOSS, EXIT_OK, GENERATOR, Outcome, Value
from roost.loadtest.stats import SubscriberCounts, Tracker

CLEAR_BATCH = 1000  # empty retained PUBLISHes per write when clearing
STORE_QOS = 1  # acknowledged, so stored, before the subscriber comes
IDLE_CHECK = 0.05  # seconds between looks at the subscriber's progress


def _topics(settings: Settings, count: int) -> list[str]:
    return [f"{settings.prefix}/retained/{i}" for i in range(count)]


async def _connect(settings: Settings, client_id: str) -> BenchConnection:
    return await open_connection(
        settings.host,
        settings.port,
        client_id,
        version=settings.version,
        keepalive=settings.keepalive,
        timeout=settings.connect_timeout,
        username=settings.username,
        password=settings.password,
    )


async def _store(settings: Settings, topics: list[str]) -> tuple[float, int]:
    conn = await _connect(settings, f"rb{settings.run_tag:04x}-rp")
    publisher = Publisher(
        conn,
        publisher_id=settings.run_tag << 16,
        topics=topics,
        qos=STORE_QOS,
        size=settings.size,
        retain=True,
        inflight=settings.inflight,
        count=len(topics),
        shared=None,
        slot=0,
        sinks=(),
        window=0,
    )
    began = time.monotonic()
    publisher.start(asyncio.get_running_loop().time(), float("inf"), 0.0)
    await publisher.done
    seconds = time.monotonic() - began
    conn.disconnect()
    return seconds, publisher.lost


async def _clear(settings: Settings, topics: list[str]) -> None:
    conn = await _connect(settings, f"rb{settings.run_tag:04x}-rc")
    for start in range(0, len(topics), CLEAR_BATCH):
        chunk = topics[start : start + CLEAR_BATCH]
        conn.write(b"".join(Publish(t, b"", 0, True).encode(settings.version) for t in chunk))
        # A PINGREQ round trip per batch: the broker has handled everything before it.
        pongs = conn.pongs
        conn.ping(time.monotonic())
        deadline = time.monotonic() + settings.drain_timeout
        while conn.pongs == pongs and time.monotonic() < deadline and not conn.lost:
            await asyncio.sleep(0.001)
    conn.disconnect()


async def _catch_up(
    settings: Settings, topics: list[str], counts: SubscriberCounts
) -> tuple[float, float]:
    """Subscribe and wait for every retained message: (seconds to the first, to the last)."""
    conn = await _connect(settings, f"rb{settings.run_tag:04x}-rs")
    tracker = conn.tracker = Tracker(counts, settings.run_tag)
    first: list[float] = []
    wanted = len(topics)
    done = asyncio.get_running_loop().create_future()

    def on_read(_conn: BenchConnection) -> None:
        if not first and tracker.unique:
            first.append(time.monotonic())
        if tracker.unique >= wanted and not done.done():
            done.set_result(None)

    conn.on_read = on_read
    began = time.monotonic()
    await conn.subscribe(
        1, [f"{settings.prefix}/retained/#"], settings.qos, settings.connect_timeout
    )
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done, settings.drain_timeout + wanted / 1000)
    last_ns = counts.last_delivery_ns
    last = last_ns / 1e9 if last_ns else time.monotonic()
    conn.disconnect()
    return (first[0] - began if first else 0.0), max(0.0, last - began)


async def run_retained(
    settings: Settings, topics: int, broker_pid: int | None, keep: bool
) -> Outcome:
    names = _topics(settings, topics)
    fields: dict[str, Value] = {
        "generator": GENERATOR,
        "scenario": "retained",
        "topics": topics,
        "qos": settings.qos,
        "size": settings.size,
        "version": settings.version,
    }
    start = procstats.sample(broker_pid)
    counts = SubscriberCounts()
    errors: list[str] = []
    status, code = "ok", EXIT_OK
    try:
        store_s, unacked = await _store(settings, names)
        stored = procstats.sample(broker_pid)
        first_s, last_s = await _catch_up(settings, names, counts)
        delivered = procstats.sample(broker_pid)
        if not keep:
            await _clear(settings, names)
    except (OSError, TimeoutError, ConnectionError) as exc:
        return Outcome(
            {**fields, "status": "ABORTED"}, "ABORTED", EXIT_CONNECT, str(exc), [repr(exc)]
        )
    lost = max(0, topics - counts.unique)
    fields |= {
        "store_secs": round(store_s, 3),
        "store_msgs_per_s": round(topics / store_s, 1) if store_s else "NA",
        "unacked": unacked,
        "first_secs": round(first_s, 4),
        "deliver_secs": round(last_s, 3),
        "deliver_msgs_per_s": round(counts.unique / last_s, 1) if last_s else "NA",
        "received": counts.received,
        "unique": counts.unique,
        "lost": lost,
        "dup": counts.dup,
        "invalid": counts.invalid,
    }
    if start is not None and stored is not None and delivered is not None:
        fields |= {
            "broker_rss_start_kb": start.rss_kb,
            "broker_rss_stored_kb": stored.rss_kb,
            "broker_rss_kb": delivered.rss_kb,
            "broker_hwm_kb": delivered.hwm_kb,
            "broker_bytes_per_retained": round(1024 * (stored.rss_kb - start.rss_kb) / topics),
            "broker_cpu_pct": procstats.cpu_pct(stored, delivered, last_s) or "NA",
        }
    if lost or unacked:
        status, code = "LOSS", EXIT_LOSS
    fields["status"] = status
    summary = (
        f"retained: {topics} stored in {store_s:.2f} s; SUBSCRIBE -> last of "
        f"{counts.unique} in {last_s:.3f} s (first after {first_s * 1000:.1f} ms); lost {lost}"
    )
    return Outcome(fields, status, code, summary, errors)
