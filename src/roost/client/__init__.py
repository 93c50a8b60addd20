"""Roost's asyncio MQTT client (MQTT 3.1, 3.1.1 and 5.0). See docs/client.md.

::

    from roost.client import Client

    async with Client("localhost") as client:
        await client.publish("greeting", "hello", qos=1)
"""

from roost.client.auth import Authenticator, ScramAuth
from roost.client.client import Client
from roost.client.errors import (
    AuthenticationError,
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
    WebSocketError,
    reason_name,
)
from roost.client.inbox import MessageStream
from roost.client.message import Message, PublishResult
from roost.client.reconnect import ReconnectPolicy
from roost.client.tls import tls_context
from roost.codec import Subscription, Will

__all__ = [
    "AuthenticationError",
    "Authenticator",
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
    "ScramAuth",
    "ServerDisconnected",
    "SubscribeError",
    "Subscription",
    "TLSError",
    "UnsubscribeError",
    "WebSocketError",
    "Will",
    "reason_name",
    "tls_context",
]
