"""Roost's asyncio MQTT client (MQTT 3.1, 3.1.1 and 5.0). See docs/client.md.

::

    from roost.client import Client

    async with Client("localhost") as client:
        await client.publish("greeting", "hello", qos=1)

This package is the front door: everything an application needs is importable from
``roost.client`` itself (the client, messages, errors, options, reason codes); the
submodules are its implementation and may change.
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
    is_failure,
    reason_name,
)
from roost.client.inbox import MessageStream
from roost.client.message import Message, PublishResult
from roost.client.reconnect import ReconnectPolicy
from roost.client.tls import tls_context
from roost.codec import (
    MQTT_3_1,
    MQTT_3_1_1,
    MQTT_5,
    Connack,
    ConnackReturnCode,
    ConnectReasonCode,
    DisconnectReasonCode,
    PubackReasonCode,
    SubackReasonCode,
    Subscription,
    UnsubackReasonCode,
    Will,
)

__all__ = [
    "MQTT_3_1",
    "MQTT_3_1_1",
    "MQTT_5",
    "AuthenticationError",
    "Authenticator",
    "Client",
    "ClientClosed",
    "Connack",
    "ConnackReturnCode",
    "ConnectError",
    "ConnectReasonCode",
    "ConnectRefused",
    "ConnectTimeout",
    "ConnectionLost",
    "DisconnectReasonCode",
    "MQTTError",
    "Message",
    "MessageStream",
    "PubackReasonCode",
    "PublishError",
    "PublishResult",
    "ReasonCodeError",
    "ReconnectPolicy",
    "ScramAuth",
    "ServerDisconnected",
    "SubackReasonCode",
    "SubscribeError",
    "Subscription",
    "TLSError",
    "UnsubackReasonCode",
    "UnsubscribeError",
    "WebSocketError",
    "Will",
    "is_failure",
    "reason_name",
    "tls_context",
]
