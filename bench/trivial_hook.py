"""The cheapest hook that still sits on the hot path, to measure what hooks cost:
``python -m bench load --roost-config bench/trivial_hook.toml`` (docs/hooks.md).

The broker process imports it by path, so run the bench from the repository root with
``PYTHONPATH=.`` (the broker inherits the environment).
"""

from __future__ import annotations

from roost.broker import Hook, MessageView
from roost.broker.auth.base import ClientInfo


class Trivial(Hook):
    """Looks at every message once at publish and once per subscriber; changes nothing."""

    def on_publish(self, client: ClientInfo, message: MessageView) -> None:
        return None

    def on_deliver(self, client_id: str, message: MessageView, qos: int) -> bool:
        return True
