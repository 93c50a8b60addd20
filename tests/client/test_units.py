"""Small pure pieces: backoff and reason names."""

from __future__ import annotations

import random

from roost.client import ReconnectPolicy, reason_name


def test_backoff_is_jittered_and_capped() -> None:
    policy = ReconnectPolicy(initial_delay=1.0, max_delay=5.0, multiplier=2.0, max_attempts=6)
    delays = list(policy.delays(random.Random(7)))
    assert len(delays) == 6
    ceilings = [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len(set(delays)) == 6  # jittered, not a fixed schedule
    endless = ReconnectPolicy().delays()
    assert len([next(endless) for _ in range(100)]) == 100


def test_reason_names() -> None:
    assert reason_name(0x86) == "bad username or password"
    assert reason_name(0x8B) == "server shutting down"
    assert reason_name(4, version=4) == "bad username or password"
    assert reason_name(0xFE) == "reason code 0xFE"
