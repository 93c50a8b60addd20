"""Bridges: connections from this broker to other brokers, forwarding by topic.

Each ``[[bridges]]`` table (``roost.broker.bridge_config``) becomes a ``Bridge``
(``link.py``): a ``roost.client.Client`` to the remote broker, and a durable local
session under the key ``$bridge/<name>`` whose connection is the remote
(``outbound.py``). ``Bridges`` starts them after the broker's state is restored and
stops them before it closes. This package is the one place where the broker uses the
client library (docs/architecture.md, the layers). See docs/bridges.md.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from roost.broker.bridge.link import Bridge, bridge_key

if TYPE_CHECKING:
    from collections.abc import Iterator

    from roost.broker.core import BrokerCore

__all__ = ["Bridge", "Bridges", "bridge_key"]

log = logging.getLogger("roost.broker.bridge")


class Bridges:
    """Every configured bridge of one broker."""

    def __init__(self, core: BrokerCore) -> None:
        self.core = core
        self.bridges = [Bridge(config, core) for config in core.config.bridges]

    def start(self) -> None:
        """Start every bridge, and end the sessions of bridges no longer configured."""
        core = self.core
        keys = {bridge.key for bridge in self.bridges}
        registry = core.registry
        for key, session in list(registry.sessions.items()):
            if key.startswith(bridge_key("")) and key not in keys:
                log.info("Bridge session %s ended: the bridge is no longer configured.", key)
                registry.end(session, core.now(), publish_will=False)
        for bridge in self.bridges:
            bridge.start()

    async def stop(self) -> None:
        for bridge in self.bridges:
            await bridge.stop()

    def __iter__(self) -> Iterator[Bridge]:
        return iter(self.bridges)
