"""The token bucket behind max_connection_rate and max_publish_rate, on a given clock."""

from __future__ import annotations

from roost.broker.limits import RateLimit


def test_a_burst_of_one_seconds_worth_then_the_rate() -> None:
    limit = RateLimit(4.0, now=100.0)
    assert [limit.take(100.0) for _ in range(5)] == [True] * 4 + [False]
    # A quarter of a second brings one more; a refused event took nothing.
    assert limit.take(100.25)
    assert not limit.take(100.25)


def test_idle_time_refills_no_more_than_the_burst() -> None:
    limit = RateLimit(2.0, now=0.0)
    assert limit.take(0.0)
    assert limit.take(0.0)
    assert not limit.take(0.0)
    assert [limit.take(1000.0) for _ in range(3)] == [True, True, False]


def test_a_rate_below_one_still_allows_one_event() -> None:
    limit = RateLimit(0.5, now=0.0)
    assert limit.take(0.0)
    assert not limit.take(1.0)  # half a token
    assert limit.take(2.0)
