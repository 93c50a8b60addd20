"""What the HTTP API reads of a running broker: the ``HttpHost`` seam.

``roost.broker.server.Broker`` implements it; the API never imports that module (it
imports this package to start it). The parts behind it own their state: the API reads
them through their read accessors, and changes things only through ``BrokerCore``
(``kick``, ``publish``) and the router's retained-message methods, as a client would.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from roost.broker.config import BrokerConfig
    from roost.broker.core import BrokerCore
    from roost.broker.listeners import Listener


class HttpHost(Protocol):
    """A running broker, as its HTTP API sees it."""

    config: BrokerConfig
    core: BrokerCore
    listeners: list[Listener]
    started_at: float  # loop time

    @property
    def bytes_sent(self) -> int:
        """Bytes written to every client connection so far."""

    @property
    def cluster_connected(self) -> bool | None:
        """Whether this cluster node reaches NATS; None when it is not a cluster node."""

    def now(self) -> float:
        """The broker's clock (its event loop's time)."""


def wall_time(host: HttpHost, loop_time: float) -> float:
    """A loop time as a Unix time."""
    return time.time() - host.now() + loop_time


def rfc3339(unix_time: float) -> str:
    """A Unix time as EMQX writes times: RFC 3339 in UTC, milliseconds."""
    moment = datetime.fromtimestamp(unix_time, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
