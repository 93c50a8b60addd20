"""The broker's limits on topics: bytes (``max_topic_length``) and levels (``max_topic_levels``);
and the token bucket behind its rate limits (``RateLimit``).

MQTT bounds a topic at 65,535 bytes and says nothing about levels, but every level of a
filter is a node of the subscription trie, so a filter of 30,000 one-byte levels costs
the broker megabytes (Mosquitto's CVE-2019-11779). The broker refuses topics over these
limits; how it says so depends on the packet (docs/security.md).

Checking is on the path of every PUBLISH, so it is split in two. ``gate`` is a length in
characters that no topic over either limit can be within (a level needs a "/", and a
character is at most 4 UTF-8 bytes): callers compare ``len(topic)`` with it and measure
only the rare topic that is longer::

    if len(topic) > limits.gate and (why := limits.topic_refusal(topic)) is not None:
        ...  # refuse, saying why
"""

from __future__ import annotations

from roost.protocol.topics import parse_shared


class TopicLimits:
    """The configured limits on topic length and levels, and the refusals they make."""

    __slots__ = ("gate", "max_length", "max_levels")

    def __init__(self, max_length: int, max_levels: int) -> None:
        self.max_length = max_length
        self.max_levels = max_levels
        # n characters are at most 4n bytes and hold at most n "/", so n + 1 levels.
        self.gate = min(max_length // 4, max_levels - 1)

    def topic_refusal(self, topic: str) -> str | None:
        """Why a topic name breaks a limit, or None if it does not."""
        return self._length_refusal(topic) or self._levels_refusal(topic)

    def filter_refusal(self, topic_filter: str) -> str | None:
        """Why a topic filter breaks a limit, or None if it does not.

        The length is the whole filter's; the levels are those of the filter a shared
        subscription wraps (the trie holds only those), so ``$share/g/a/b`` has two.
        """
        if len(topic_filter) <= self.gate:
            return None
        return self._length_refusal(topic_filter) or self._levels_refusal(
            parse_shared(topic_filter)[1]
        )

    def _length_refusal(self, topic: str) -> str | None:
        size = len(topic) if topic.isascii() else len(topic.encode())
        if size > self.max_length:
            return f"topic of {size} bytes, over max_topic_length ({self.max_length})"
        return None

    def _levels_refusal(self, topic: str) -> str | None:
        levels = topic.count("/") + 1
        if levels > self.max_levels:
            return f"topic of {levels} levels, over max_topic_levels ({self.max_levels})"
        return None


class RateLimit:
    """A token bucket: on average ``rate`` events per second, in bursts of up to one
    second's worth (at least one). ``max_connection_rate`` per listener and
    ``max_publish_rate`` per client use it; the clock is the caller's (loop time)."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.burst = max(rate, 1.0)
        self._tokens = self.burst
        self._last = now

    def take(self, now: float) -> bool:
        """Count one event; False (and nothing counted) if it is over the rate."""
        tokens = self._tokens + (now - self._last) * self.rate
        self._last = now
        tokens = min(tokens, self.burst)
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True
