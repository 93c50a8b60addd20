"""Counting what arrived: a latency histogram and per-subscriber loss/duplicate tracking.

Both are built to be cheap per message (a few integer operations) and to be merged:
every worker process keeps its own and the runner adds them up at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Log-linear buckets over microseconds: exact below 1024 µs, then 512 buckets per
# power of two (relative error < 0.2%), up to 2**40 µs (12 days).
_EXACT = 1024
_SUB_BITS = 9  # 512 sub-buckets per octave above _EXACT
_MAX_SHIFT = 31
_BUCKETS = _EXACT + _MAX_SHIFT * (1 << _SUB_BITS)


def bucket_of(us: int) -> int:
    if us < _EXACT:
        return max(us, 0)
    shift = us.bit_length() - _SUB_BITS - 1
    if shift > _MAX_SHIFT:
        return _BUCKETS - 1
    return _EXACT + (shift - 1) * (1 << _SUB_BITS) + (us >> shift) - (1 << _SUB_BITS)


def bucket_value(index: int) -> int:
    """The lowest microsecond value that falls into bucket ``index``."""
    if index < _EXACT:
        return index
    shift, mantissa = divmod(index - _EXACT, 1 << _SUB_BITS)
    return (mantissa + (1 << _SUB_BITS)) << (shift + 1)


class Histogram:
    """Latencies in microseconds; percentiles from the buckets, min and max exact."""

    __slots__ = ("count", "counts", "max", "min", "total")

    def __init__(self) -> None:
        self.counts = [0] * _BUCKETS
        self.count = 0
        self.total = 0
        self.min = -1
        self.max = 0

    def record(self, us: int) -> None:
        if us < _EXACT:
            self.counts[max(us, 0)] += 1
        else:
            self.counts[bucket_of(us)] += 1
        self.count += 1
        self.total += us
        self.max = max(self.max, us)
        if us < self.min or self.min < 0:
            self.min = us

    def merge(self, other: Histogram) -> None:
        counts = self.counts
        for index, value in enumerate(other.counts):
            if value:
                counts[index] += value
        self.count += other.count
        self.total += other.total
        self.max = max(self.max, other.max)
        if other.min >= 0 and (self.min < 0 or other.min < self.min):
            self.min = other.min

    def percentile(self, fraction: float) -> int | None:
        if not self.count:
            return None
        wanted = max(1, round(fraction * self.count))
        seen = 0
        for index, value in enumerate(self.counts):
            seen += value
            if seen >= wanted:
                return min(max(bucket_value(index), self.min), self.max)
        return self.max

    def summary(self, prefix: str = "") -> dict[str, int | None]:
        return {
            f"{prefix}min_us": self.min if self.count else None,
            f"{prefix}p50_us": self.percentile(0.50),
            f"{prefix}p90_us": self.percentile(0.90),
            f"{prefix}p99_us": self.percentile(0.99),
            f"{prefix}p999_us": self.percentile(0.999),
            f"{prefix}max_us": self.max if self.count else None,
        }

    def __getstate__(self) -> tuple[dict[int, int], int, int, int, int]:
        # Sparse on the wire between processes: most of the 16k buckets are empty.
        sparse = {i: v for i, v in enumerate(self.counts) if v}
        return sparse, self.count, self.total, self.min, self.max

    def __setstate__(self, state: tuple[dict[int, int], int, int, int, int]) -> None:
        sparse, self.count, self.total, self.min, self.max = state
        self.counts = [0] * _BUCKETS
        for index, value in sparse.items():
            self.counts[index] = value


class StreamSeen:
    """Which sequence numbers of one publisher one subscriber has seen: a growing bitmap."""

    __slots__ = ("bits", "last", "unique")

    def __init__(self) -> None:
        self.bits = bytearray(1024)
        self.last = -1
        self.unique = 0


@dataclass(slots=True)
class SubscriberCounts:
    """What one worker's subscribers received, summed; merged across workers."""

    received: int = 0  # every delivery, duplicates included
    unique: int = 0  # distinct (publisher, sequence) per subscriber
    dup: int = 0
    reorder: int = 0  # a sequence number below the last one seen from that publisher
    invalid: int = 0  # payloads too short to carry the header, or from another run
    last_delivery_ns: int = 0  # monotonic time of the last unique delivery
    latency: Histogram = field(default_factory=Histogram)

    def merge(self, other: SubscriberCounts) -> None:
        self.received += other.received
        self.unique += other.unique
        self.dup += other.dup
        self.reorder += other.reorder
        self.invalid += other.invalid
        self.last_delivery_ns = max(self.last_delivery_ns, other.last_delivery_ns)
        self.latency.merge(other.latency)


class Tracker:
    """Counts one subscriber's deliveries: duplicates and reordering per publisher."""

    __slots__ = ("counts", "run_tag", "streams", "unique")

    def __init__(self, counts: SubscriberCounts, run_tag: int | None) -> None:
        self.counts = counts  # shared by the worker's subscribers
        self.run_tag = run_tag  # None: count messages from any run (roost bench sub)
        self.streams: dict[int, StreamSeen] = {}
        self.unique = 0  # this subscriber's own distinct deliveries

    def record(self, publisher: int, seq: int, latency_us: int, now_ns: int) -> None:
        counts = self.counts
        counts.received += 1
        if self.run_tag is not None and publisher >> 16 != self.run_tag:
            counts.invalid += 1
            return
        stream = self.streams.get(publisher)
        if stream is None:
            stream = self.streams[publisher] = StreamSeen()
        bits = stream.bits
        byte = seq >> 3
        if byte >= len(bits):
            bits.extend(bytes(max(byte + 1 - len(bits), len(bits))))
        mask = 1 << (seq & 7)
        if bits[byte] & mask:
            counts.dup += 1
            return
        bits[byte] |= mask
        if seq < stream.last:
            counts.reorder += 1
        else:
            stream.last = seq
        stream.unique += 1
        self.unique += 1
        counts.unique += 1
        counts.last_delivery_ns = now_ns
        counts.latency.record(latency_us)
