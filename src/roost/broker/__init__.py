"""Roost's MQTT broker. The documented imports::

    from roost.broker import Broker, BrokerConfig, ListenerConfig, ConfigError
    from roost.broker import Hook, Drop, MessageView  # broker hooks: docs/hooks.md

See docs/architecture.md for how the broker is put together.
"""

from roost.broker.config import BrokerConfig, ConfigError, HookConfig, ListenerConfig, load_config
from roost.broker.hooks import Drop, Hook, HookError, MessageView
from roost.broker.server import Broker
from roost.broker.stats import DropReason

__all__ = [
    "Broker",
    "BrokerConfig",
    "ConfigError",
    "Drop",
    "DropReason",
    "Hook",
    "HookConfig",
    "HookError",
    "ListenerConfig",
    "MessageView",
    "load_config",
]
