"""Bounded polling of the broker's state, for what no packet tells a client.

Polling is for the few facts that only the broker knows: that a dropped connection's
session has gone offline or ended, that an external client (mosquitto_sub, paho) has
its subscription, or that the broker's clock has passed a point (expiry and delays are
measured on that clock, so tests wait for it instead of sleeping a guessed amount).
Probes run on the broker's loop through ``BrokerThread.call``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from roost.broker.sessions import Session
from tests.support.broker_thread import BrokerThread
from tests.support.raw import TIMEOUT

# The broker's sweep runs every 0.5 s; two of them are sure to have run after a deadline.
SWEEP_MARGIN = 1.0


def wait_until(predicate: Callable[[], object], timeout: float = TIMEOUT) -> None:
    """Poll ``predicate`` until it is truthy; fail after ``timeout`` seconds.

    The pause between polls starts at a millisecond (most conditions hold almost at
    once) and grows to 20 ms; it is a yield between polls, not a wait for an event.
    """
    deadline = time.monotonic() + timeout
    pause = 0.001
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout} s")
        time.sleep(pause)
        pause = min(pause * 2, 0.02)


def wait_for_broker(
    broker: BrokerThread, probe: Callable[[], object], timeout: float = TIMEOUT
) -> None:
    """Until ``probe``, run on the broker's loop, is truthy."""
    wait_until(lambda: broker.call(probe), timeout)


def has_session(broker: BrokerThread, client_id: str) -> bool:
    return broker.call(lambda: client_id in broker.broker.sessions)


def session_of(broker: BrokerThread, client_id: str) -> Session | None:
    return broker.call(lambda: broker.broker.sessions.get(client_id))


def wait_offline(broker: BrokerThread, client_id: str) -> None:
    """Until the broker has handled the loss of ``client_id``'s connection."""

    def offline() -> bool:
        session = broker.broker.sessions.get(client_id)
        return session is None or session.connection is None

    wait_for_broker(broker, offline)


def wait_session_gone(broker: BrokerThread, client_id: str) -> None:
    wait_for_broker(broker, lambda: client_id not in broker.broker.sessions)


def wait_subscribed(broker: BrokerThread, client_id: str, topic_filter: str) -> None:
    """Until ``client_id``'s session holds the subscription (for external clients)."""

    def subscribed() -> bool:
        session = broker.broker.sessions.get(client_id)
        return session is not None and topic_filter in session.subscriptions

    wait_for_broker(broker, subscribed)


def wait_matched(broker: BrokerThread, topic: str, count: int) -> None:
    """Until ``count`` non-shared subscriptions match ``topic`` (for anonymous clients)."""
    wait_for_broker(broker, lambda: len(broker.broker.router.subscribers(topic)) == count)


def broker_now(broker: BrokerThread) -> float:
    return broker.call(broker.broker.now)


def wait_for_clock(broker: BrokerThread, when: float, timeout: float = 10.0) -> None:
    """Until the broker's clock reads at least ``when``."""
    wait_until(lambda: broker_now(broker) >= when, timeout)
