"""What nodes tell each other about one session: its record in the KV bucket
``ROOST_SESSIONS``, and the takeover request and answer on ``roost.ctl.<node>``.

A record names the node (and process) that holds the session, its epoch (raised by
every claim, so a later owner is told from an earlier one), its expiry interval and
its subscriptions: enough for another node to resume the session if its owner died.
The answer to a takeover carries the whole state the old owner had (``snapshot``):
subscriptions, queued and in-flight messages with their packet ids and QoS 2 release
state, and the QoS 2 ids received and not yet released. Messages travel as cluster
envelopes (``envelope.py``), base64 in JSON: neither is on a hot path.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from roost.broker.persistence.store import StoredDelivery, StoredSession
from roost.broker.records import SubscriptionRecord
from roost.cluster import envelope

if TYPE_CHECKING:
    from roost.broker.message import Message


@dataclass(slots=True)
class SessionRecord:
    """One client id's entry in ``ROOST_SESSIONS``."""

    node: str
    process: str  # the node's origin (``<node>/<hex>``): new per process
    epoch: int
    expiry_interval: int
    connected: bool = False
    subscriptions: list[SubscriptionRecord] = field(default_factory=list)


def record_key(client_id: str) -> str:
    """KV keys allow ``[-/_=.A-Za-z0-9]`` only: base64url of the UTF-8 client id."""
    return base64.urlsafe_b64encode(client_id.encode()).decode()


def key_client(key: str) -> str:
    """The client id of a record key; ValueError if it is not one."""
    try:
        return base64.urlsafe_b64decode(key.encode()).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a session key: {key!r}") from exc


def encode_record(record: SessionRecord) -> bytes:
    return json.dumps(
        {
            "node": record.node,
            "process": record.process,
            "epoch": record.epoch,
            "expiry": record.expiry_interval,
            "connected": record.connected,
            "subs": [_subscription(sub) for sub in record.subscriptions],
        },
        separators=(",", ":"),
    ).encode()


def decode_record(client_id: str, data: bytes) -> SessionRecord:
    """ValueError if ``data`` is not a record."""
    try:
        raw = json.loads(data)
        return SessionRecord(
            str(raw["node"]),
            str(raw["process"]),
            int(raw["epoch"]),
            int(raw["expiry"]),
            bool(raw.get("connected", False)),
            [_record(client_id, sub) for sub in raw.get("subs", ())],
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"bad session record: {exc}") from exc


def encode_request(
    client_id: str, epoch: int, clean_start: bool, filters: list[str] | None = None
) -> bytes:
    """A takeover request; ``filters``: those of the session already in force on the
    node asking (the old owner answers with the ones it lacks before handing over)."""
    body: dict[str, Any] = {"client_id": client_id, "epoch": epoch, "clean": clean_start}
    if filters is not None:
        body["filters"] = filters
    return json.dumps(body).encode()


def decode_request(data: bytes) -> tuple[str, int, bool, list[str] | None]:
    """(client id, epoch, clean start, filters in force at the asking node or None);
    ValueError if ``data`` is not a request."""
    try:
        raw = json.loads(data)
        filters = raw.get("filters")
        return (
            str(raw["client_id"]),
            int(raw["epoch"]),
            bool(raw["clean"]),
            None if filters is None else [str(f) for f in filters],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"bad takeover request: {exc}") from exc


def encode_answer(state: StoredSession | None, now: float) -> bytes:
    """The old owner's answer: the session's state, or that it holds none."""
    if state is None:
        return b'{"session":null}'
    deliveries = [
        [
            base64.b64encode(_encoded(item.message, now)).decode(),
            item.qos,
            item.retain,
            list(item.subscription_ids),
            item.share_group,
            item.packet_id,
            item.released,
        ]
        for item in state.deliveries
    ]
    body = {
        "expiry": state.expiry_interval,
        "subs": [_subscription(sub) for sub in state.subscriptions],
        "deliveries": deliveries,
        "receive_ids": state.receive_ids,
    }
    return json.dumps({"session": body}, separators=(",", ":")).encode()


def _encoded(message: Message, now: float) -> bytes:
    """A handed-over message, with its identity between nodes when it has one (so that
    the new owner can tell it from its own copy of the same message)."""
    origin, seq = getattr(message, "cluster_id", (b"", 0))
    return envelope.encode(origin, seq, message, now)


def decode_answer(client_id: str, data: bytes, now: float) -> StoredSession | None:
    """The state in an answer (None: the old owner held no session); ValueError if bad."""
    try:
        body = json.loads(data)["session"]
        if body is None:
            return None
        deliveries = []
        for raw, qos, retain, ids, group, packet_id, released in body["deliveries"]:
            data = base64.b64decode(raw)
            origin, seq, offset = envelope.header(data)
            message = envelope.message(data, offset, now)
            if origin:
                message.cluster_id = (origin, seq)
            deliveries.append(
                StoredDelivery(
                    0,
                    message,
                    int(qos),
                    bool(retain),
                    tuple(int(i) for i in ids),
                    group,
                    None if packet_id is None else int(packet_id),
                    bool(released),
                )
            )
        return StoredSession(
            client_id,
            int(body["expiry"]),
            None,
            None,
            None,
            None,
            [_record(client_id, sub) for sub in body["subs"]],
            deliveries,
            [int(i) for i in body["receive_ids"]],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"bad takeover answer: {exc}") from exc


def encode_missing(subscriptions: list[SubscriptionRecord]) -> bytes:
    """The old owner's answer when the asking node lacks some of the session's
    subscriptions: it hands nothing over yet."""
    return json.dumps({"missing": [_subscription(sub) for sub in subscriptions]}).encode()


def decode_missing(client_id: str, data: bytes) -> list[SubscriptionRecord] | None:
    """The subscriptions an answer says the asking node lacks; None if it is not such
    an answer. ValueError if bad."""
    if not data.startswith(b'{"missing"'):
        return None
    try:
        return [_record(client_id, sub) for sub in json.loads(data)["missing"]]
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"bad takeover answer: {exc}") from exc


def _subscription(record: SubscriptionRecord) -> list[Any]:
    return [
        record.topic_filter,
        record.qos,
        record.no_local,
        record.retain_as_published,
        record.retain_handling,
        record.identifier,
        record.share_group,
    ]


def _record(client_id: str, raw: list[Any]) -> SubscriptionRecord:
    topic_filter, qos, no_local, as_published, handling, identifier, group = raw
    return SubscriptionRecord(
        client_id,
        str(topic_filter),
        int(qos),
        bool(no_local),
        bool(as_published),
        int(handling),
        None if identifier is None else int(identifier),
        None if group is None else str(group),
    )
