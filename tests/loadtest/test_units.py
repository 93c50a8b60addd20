"""The load tool's parts without a broker: histogram, loss tracking, templates, parsing."""

from __future__ import annotations

import argparse
import asyncio
import pickle
import random

import pytest

from roost.cli.bench import parse_sources
from roost.codec import Publish, Pubrel
from roost.loadtest.connection import HEADER, BenchConnection
from roost.loadtest.plan import Settings, build_clients, deal, filler_filters
from roost.loadtest.publisher import Template
from roost.loadtest.stats import Histogram, SubscriberCounts, Tracker, bucket_of, bucket_value
from roost.protocol.topics import topic_matches


def test_histogram_percentiles_within_bucket_error() -> None:
    histogram = Histogram()
    values = list(range(1, 100_001))
    for value in values:
        histogram.record(value)
    assert histogram.min == 1
    assert histogram.max == 100_000
    for fraction in (0.5, 0.9, 0.99, 0.999):
        exact = values[round(fraction * len(values)) - 1]
        found = histogram.percentile(fraction)
        assert found is not None
        assert abs(found - exact) <= exact * 0.004


def test_histogram_buckets_are_monotonic_and_exact_below_1024() -> None:
    assert [bucket_of(v) for v in range(1024)] == list(range(1024))
    previous = -1
    for value in [*range(1000, 5000), 10**6, 10**9, 10**12]:
        index = bucket_of(value)
        assert index >= previous
        assert bucket_value(index) <= value
        previous = index


def test_histogram_merges_and_pickles_sparsely() -> None:
    one, two = Histogram(), Histogram()
    for value in (5, 50, 5000):
        one.record(value)
    two.record(7)
    two.record(70_000)
    one.merge(pickle.loads(pickle.dumps(two)))  # noqa: S301  (our own bytes)
    assert (one.count, one.min, one.max) == (5, 5, 70_000)
    assert len(pickle.dumps(one)) < 1000


def test_tracker_counts_duplicates_reordering_and_foreign_messages() -> None:
    counts = SubscriberCounts()
    tracker = Tracker(counts, run_tag=7)
    publisher = 7 << 16 | 3
    for seq in (0, 1, 2, 2, 5, 4, 100_000):
        tracker.record(publisher, seq, 10, 1)
    tracker.record(8 << 16, 0, 10, 1)  # another run's publisher
    assert counts.received == 8
    assert counts.unique == 6
    assert counts.dup == 1
    assert counts.reorder == 1
    assert counts.invalid == 1
    assert counts.latency.count == 6


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_template_plus_header_is_the_codec_s_publish(version: int, qos: int) -> None:
    template = Template("a/b", qos, 64, version, retain=qos == 1)
    header = HEADER.pack(1, 2, 3)
    packet_id = b"\x12\x34" if qos else b""
    wire = template.head + packet_id + template.middle + header + template.padding
    expected = Publish("a/b", header + bytes(48), qos, qos == 1, packet_id=0x1234 if qos else 0)
    assert wire == expected.encode(version)


class _Recorder:
    """Stands in for the transport: keeps what the connection writes."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return False


@pytest.mark.parametrize("version", [4, 5])
def test_connection_parses_publishes_split_anywhere(version: int) -> None:
    """Deliveries split at every byte boundary are all counted; QoS 1/2 are acknowledged."""
    stream = b""
    for seq in range(50):
        payload = HEADER.pack(9 << 16, seq, 0) + bytes(seq * 7)  # lengths cross 127 and 255
        qos = seq % 3
        stream += Publish("t/x", payload, qos, packet_id=seq + 1 if qos else 0).encode(version)
    stream += Pubrel(2).encode(version)

    async def feed() -> tuple[SubscriberCounts, bytes]:
        conn = BenchConnection(version)
        transport = _Recorder()
        conn.connection_made(transport)  # type: ignore[arg-type]
        counts = SubscriberCounts()
        conn.tracker = Tracker(counts, 9)
        rng = random.Random(1)
        pos = 0
        while pos < len(stream):
            step = rng.choice((1, 2, 3, 50, 400))
            conn.data_received(stream[pos : pos + step])
            pos += step
        return counts, b"".join(transport.written)

    counts, acks = asyncio.run(feed())
    assert (counts.unique, counts.dup, counts.invalid) == (50, 0, 0)
    assert acks.count(b"\x40\x02") == len([s for s in range(50) if s % 3 == 1])  # PUBACK
    assert acks.count(b"\x50\x02") == len([s for s in range(50) if s % 3 == 2])  # PUBREC
    assert acks.endswith(b"\x70\x02\x00\x02")  # PUBCOMP for the PUBREL


def test_filler_filters_match_none_of_the_published_topics() -> None:
    settings = Settings("pubsub", clients=20, shape="pairs", extra_subscriptions=600)
    published = {t for c in build_clients(settings) for t in c.publish}
    published |= {f"{settings.prefix}/fanin/{i}" for i in range(20)}
    published.add(f"{settings.prefix}/fanout")
    filters = filler_filters(settings, 600, 0)
    assert len(set(filters)) == 600
    assert not [f for f in filters for t in published if topic_matches(f, t)]


def test_clients_are_dealt_evenly_and_feed_the_right_subscribers() -> None:
    settings = Settings("pubsub", clients=10, shape="fanin")
    clients = build_clients(settings)
    subscriber = next(c for c in clients if c.subscribe)
    publishers = [c for c in clients if c.publishes]
    assert len(publishers) == 10
    assert all(
        p.sinks == ((subscriber.index, tuple(q.index for q in publishers)),) for p in publishers
    )
    shares = deal(clients, 3)
    assert sorted(len(s) for s in shares) == [3, 4, 4]


def test_parse_sources() -> None:
    assert parse_sources("127.0.0.2-127.0.0.4,127.0.0.9") == (
        "127.0.0.2",
        "127.0.0.3",
        "127.0.0.4",
        "127.0.0.9",
    )
    with pytest.raises(argparse.ArgumentTypeError):
        parse_sources("127.0.0.9-127.0.0.2")
