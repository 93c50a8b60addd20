"""``/api/v1/clients``, ``/api/v1/sessions`` and ``/api/v1/subscriptions``: who is
connected, what each session holds, and who is subscribed to what. EMQX v5's names.

Read from the registry's sessions and the core's connections; kicking a client goes
through ``BrokerCore.kick`` (MQTT 5: DISCONNECT 0x98 Administrative action).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from roost.http.host import rfc3339, wall_time
from roost.http.responses import bad_request, check_topic_name, int_param, not_found, page
from roost.protocol.topics import topic_matches

if TYPE_CHECKING:
    from roost.broker.ports import Connection
    from roost.broker.records import SubscriptionRecord
    from roost.broker.sessions import Session
    from roost.http.host import HttpHost

_PROTOCOL_NAMES = {3: "MQIsdp", 4: "MQTT", 5: "MQTT"}


def _address(peer: str) -> tuple[str, int | None]:
    address, _, port = peer.rpartition(":")
    if not address or not port.isdigit():
        return peer, None
    return address, int(port)


def client_record(host: HttpHost, conn: Connection, session: Session) -> dict[str, Any]:
    ip_address, port = _address(conn.peer)
    return {
        "clientid": conn.client_id,
        "username": conn.username,
        "ip_address": ip_address,
        "port": port,
        "proto_name": _PROTOCOL_NAMES.get(conn.version, "MQTT"),
        "proto_ver": conn.version,
        "keepalive": conn.keep_alive,
        "connected": True,
        "connected_at": rfc3339(wall_time(host, conn.connected_at)),
        "listener": conn.listener.label,
        "expiry_interval": session.expiry_interval,
        "inflight": len(session.inflight),
        "mqueue_len": session.queued_count,
        "subscriptions_cnt": len(session.subscriptions),
    }


def session_record(host: HttpHost, session: Session) -> dict[str, Any]:
    identity = session.identity
    expires_at = session.expires_at
    return {
        "clientid": session.client_id,
        "username": None if identity is None else identity.client.username,
        "connected": session.connection is not None,
        "expiry_interval": session.expiry_interval,
        "expires_at": None if expires_at is None else rfc3339(wall_time(host, expires_at)),
        "inflight": len(session.inflight),
        "mqueue_len": session.queued_count,
        "subscriptions_cnt": len(session.subscriptions),
        "will": session.will is not None,
    }


def subscription_record(record: SubscriptionRecord) -> dict[str, Any]:
    return {
        "clientid": record.client_id,
        "topic": record.topic_filter,
        "qos": record.qos,
        "nl": int(record.no_local),
        "rap": int(record.retain_as_published),
        "rh": record.retain_handling,
        "share_group": record.share_group,
        "subid": record.identifier,
    }


class ClientsApi:
    """The handlers; each reads the broker at the moment of the request."""

    def __init__(self, host: HttpHost) -> None:
        self._host = host

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/clients", self.list_clients),
            web.get("/api/v1/clients/{clientid}", self.get_client),
            web.delete("/api/v1/clients/{clientid}", self.kick_client),
            web.get("/api/v1/clients/{clientid}/subscriptions", self.client_subscriptions),
            web.get("/api/v1/sessions", self.list_sessions),
            web.get("/api/v1/sessions/{clientid}", self.get_session),
            web.get("/api/v1/subscriptions", self.list_subscriptions),
        ]

    def _connected(self) -> list[tuple[Connection, Session]]:
        pairs = [
            (conn, conn.session)
            for conn in self._host.core.connections
            if conn.session is not None and conn.client_id
        ]
        pairs.sort(key=lambda pair: (pair[0].connected_at, pair[0].client_id))
        return [(conn, session) for conn, session in pairs if session is not None]

    def _session(self, request: web.Request) -> Session:
        client_id = request.match_info["clientid"]
        session = self._host.core.registry.sessions.get(client_id)
        if session is None:
            raise not_found(f"no session of client {client_id!r}")
        return session

    async def list_clients(self, request: web.Request) -> web.Response:
        query = request.query
        like_clientid = query.get("like_clientid")
        like_username = query.get("like_username")
        username = query.get("username")
        ip_address = query.get("ip_address")
        records = []
        for conn, session in self._connected():
            if like_clientid is not None and like_clientid not in conn.client_id:
                continue
            if username is not None and conn.username != username:
                continue
            if like_username is not None and like_username not in (conn.username or ""):
                continue
            if ip_address is not None and _address(conn.peer)[0] != ip_address:
                continue
            records.append(client_record(self._host, conn, session))
        return page(request, records)

    async def get_client(self, request: web.Request) -> web.Response:
        client_id = request.match_info["clientid"]
        conn = self._host.core.connection_of(client_id)
        if conn is None or conn.session is None:
            raise not_found(f"client {client_id!r} is not connected")
        return web.json_response(client_record(self._host, conn, conn.session))

    async def kick_client(self, request: web.Request) -> web.Response:
        client_id = request.match_info["clientid"]
        if not self._host.core.kick(client_id):
            raise not_found(f"client {client_id!r} is not connected")
        return web.Response(status=204)

    async def client_subscriptions(self, request: web.Request) -> web.Response:
        session = self._session(request)
        records = [subscription_record(r) for r in session.subscriptions.values()]
        return web.json_response(records)

    async def list_sessions(self, request: web.Request) -> web.Response:
        connected = request.query.get("connected")
        if connected not in (None, "true", "false"):
            raise bad_request(f'connected must be "true" or "false", got {connected!r}')
        sessions = sorted(self._host.core.registry.sessions.values(), key=lambda s: s.client_id)
        if connected is not None:
            wanted = connected == "true"
            sessions = [s for s in sessions if (s.connection is not None) == wanted]
        return page(request, [session_record(self._host, s) for s in sessions])

    async def get_session(self, request: web.Request) -> web.Response:
        return web.json_response(session_record(self._host, self._session(request)))

    async def list_subscriptions(self, request: web.Request) -> web.Response:
        query = request.query
        client_id = query.get("clientid")
        topic = query.get("topic")
        qos = int_param(request, "qos", -1, 0, 2) if "qos" in query else None
        share_group = query.get("share_group")
        match_topic = query.get("match_topic")
        if match_topic is not None:
            check_topic_name(match_topic)
        sessions = self._host.core.registry.sessions
        if client_id is not None:
            one = sessions.get(client_id)
            chosen = [] if one is None else [one]
        else:
            chosen = sorted(sessions.values(), key=lambda s: s.client_id)
        records = []
        for session in chosen:
            for record in session.subscriptions.values():
                if topic is not None and record.topic_filter != topic:
                    continue
                if qos is not None and record.qos != qos:
                    continue
                if share_group is not None and record.share_group != share_group:
                    continue
                if match_topic is not None and not topic_matches(record.topic_filter, match_topic):
                    continue
                records.append(subscription_record(record))
        return page(request, records)
