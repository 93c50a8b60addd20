"""Counters the broker keeps for $SYS and for operators."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Stats:
    """Counters for $SYS and operators; each is incremented where its event happens."""

    messages_received: int = 0
    messages_sent: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0
    clients_total: int = 0
    refused_connections: int = 0
    protocol_violations: int = 0
    retained_refused: int = 0
    # Times a connection was not read because held_limit packets waited for commits.
    held_back: int = 0
