"""Roost's asyncio MQTT client (MQTT 3.1, 3.1.1 and 5.0). See docs/client.md.

::

    from roost.client import Client

    async with Client("localhost") as client:
        await client.publish("greeting", "hello", qos=1)
"""

from roost.client.client import Client
from roost.client.errors import (
    ClientClosed,
    ConnectError,
    ConnectionLost,
    ConnectRefused,
    ConnectTimeout,
    MQTTError,
    PublishError,
    ReasonCodeError,
    ServerDisconnected,
    SubscribeError,
    TLSError,
    UnsubscribeError,
    reason_name,
)
from roost.client.inbox import MessageStream
from roost.client.message import Message, PublishResult
from roost.client.reconnect import ReconnectPolicy
from roost.client.tls import tls_context
from roost.codec import Subscription, Will

__all__ = [
    "Client",
    "ClientClosed",
    "ConnectError",
    "ConnectRefused",
    "ConnectTimeout",
    "ConnectionLost",
    "MQTTError",
    "Message",
    "MessageStream",
    "PublishError",
    "PublishResult",
    "ReasonCodeError",
    "ReconnectPolicy",
    "ServerDisconnected",
    "SubscribeError",
    "Subscription",
    "TLSError",
    "UnsubscribeError",
    "Will",
    "reason_name",
    "tls_context",
]
