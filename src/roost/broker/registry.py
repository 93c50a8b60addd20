"""The session registry: the one place sessions are created, taken over, ended and expired.

It owns the map of client id to ``Session`` (the router reads it as its local
destinations) and the set of offline sessions that will expire or have a delayed will.
Wills are published from here, through the router, and nowhere else.

**The will seam.** With ``[cluster]``, ``wills`` (a ``WillLog``) hears of every
CONNECT with its will and of every will that no other node may publish any more (sent
here, cancelled, or cleared by a normal DISCONNECT), so that a surviving node can send
the wills of a node that died (docs/clustering.md). Without it, ``wills`` is None: one
attribute test per CONNECT and per will.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from roost.broker.message import Message
from roost.broker.persistence.restore import restored_session, snapshot
from roost.broker.persistence.rows import json_attributes
from roost.broker.sessions import Identity, Session, Sink

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from roost.broker.config import BrokerConfig
    from roost.broker.hook_dispatch import Hooks
    from roost.broker.persistence.store import Store, StoredSession
    from roost.broker.ports import SessionDirectory
    from roost.broker.records import SubscriptionRecord
    from roost.broker.router import Router
    from roost.broker.stats import Stats
    from roost.codec import Will

log = logging.getLogger("roost.broker")

# Seconds between sweeps of offline sessions' queues for expired messages (each sweep
# walks every queued message, so not on every timer tick).
PURGE_INTERVAL = 60.0


class WillLog(Protocol):
    """Where a cluster keeps the wills of this node's clients, for another node to send
    should this one die (docs/clustering.md, "Wills of a dead node")."""

    def connected(
        self, client_id: str, will: Will | None, expiry_interval: int, clean_start: bool
    ) -> None:
        """A client connected here (with this will, or none)."""

    def will_gone(self, client_id: str) -> None:
        """The client's will must not be sent by anyone else any more."""


class SessionRegistry:
    """Sessions by client id: attach (new, resumed or taken over), detach, end, expire."""

    __slots__ = (
        "_config",
        "_forget",
        "_hooks",
        "_purge_at",
        "_router",
        "_sessions",
        "_stats",
        "_store",
        "directory",
        "offline",
        "wills",
    )

    def __init__(
        self,
        sessions: dict[str, Session],
        router: Router,
        store: Store,
        config: BrokerConfig,
        stats: Stats,
        forget: Callable[[str], None],
        hooks: Hooks | None = None,
    ) -> None:
        self._sessions = sessions
        self._router = router
        self._store = store
        self._config = config
        self._stats = stats
        self._forget = forget  # what authorization remembers of a client id
        self._hooks = hooks  # told of connects, disconnects and expiries
        # Disconnected sessions that will expire, or have a delayed will to publish.
        self.offline: set[Session] = set()
        self._purge_at = 0.0  # the first sweep purges what expired while we were down
        # A cluster's session directory (set by roost.cluster); None on a broker alone.
        self.directory: SessionDirectory | None = None
        self.wills: WillLog | None = None  # with [cluster]: the cluster's record of wills

    @property
    def sessions(self) -> dict[str, Session]:
        """Every session by client id (read it; only the registry changes it)."""
        return self._sessions

    def attach(
        self,
        conn: Sink,
        identity: Identity,
        clean_start: bool,
        expiry_interval: int,
        will: Will | None,
        now: float,
    ) -> tuple[Session, bool]:
        """Give ``conn`` its session, resumed or new; returns (session, session present).

        A session still attached to another connection is taken over: that connection
        is told (MQTT 5: DISCONNECT 0x8E) and closed, and its will published.
        """
        client_id = identity.client.client_id
        sessions = self._sessions
        session = sessions.get(client_id)
        if session is not None and session.connection is not None:
            log.info("Client %s already connected, closing old connection.", client_id)
            session.connection.take_over()
            self.detach(session, publish_will=True, now=now, ending=clean_start)
            session = sessions.get(client_id)
        if session is not None and clean_start:
            self.end(session, now)
            session = None
        present = session is not None
        if session is None:
            session = Session(client_id, self._config, self._stats)
            sessions[client_id] = session
        else:
            # Reconnected in time: a delayed will is cancelled [MQTT-3.1.3-9].
            session.will = None
            session.will_at = None
            session.expires_at = None
            self.offline.discard(session)
        session.connection = conn
        session.expiry_interval = expiry_interval
        session.will = will
        session.identity = identity
        self._stats.clients_total += 1
        self._keep_durable(session)
        if self.wills is not None:
            self.wills.connected(client_id, will, expiry_interval, clean_start)
        if self._hooks is not None:
            self._hooks.connected(identity.client, present)
        if self.directory is not None:
            self.directory.attached(session)
        return session, present

    def _keep_durable(self, session: Session) -> None:
        """The session's expiry and will are known now: keep it durable if it outlives
        its connection, stop keeping it if it no longer does."""
        store = self._store
        if not store.durable:
            return
        if session.expiry_interval == 0:
            if session.store is not None:
                session.store.session_ended(session)
                session.store = None
            return
        identity = session.identity
        if identity is not None and identity.client.attributes:
            _kept, lost = json_attributes(identity.client.attributes)
            if lost:
                # The store keeps JSON only: say so once per CONNECT, not on every save.
                log.warning(
                    "Client %s: auth attributes %s are not JSON; a restart will lose them.",
                    session.client_id,
                    ", ".join(map(repr, lost)),
                )
        if session.store is None:
            session.store = store
            for record in session.subscriptions.values():
                store.subscription_added(session, record)
            for packet_id in session.awaiting_release:
                store.receive_id_added(session, packet_id)
            for item in session.queue:
                store.delivery_queued(session, item)
            # A session handed over by another cluster node has messages in flight.
            for packet_id, item in session.inflight.items():
                if item.store_id == 0:
                    store.delivery_sent(session, item, packet_id)
                    if item.released:
                        store.delivery_released(session, item, packet_id)
        store.session_saved(session)

    def detach(
        self, session: Session, publish_will: bool, now: float, ending: bool = False
    ) -> None:
        """The session's connection is gone; keep the session or end it."""
        session.connection = None
        if self._hooks is not None and session.identity is not None:
            self._hooks.disconnected(session.identity.client, not publish_will)
        will = session.will
        if not publish_will:
            session.will = None
            if self.wills is not None:  # (a DISCONNECT 0x00 has already cleared it)
                self.wills.will_gone(session.client_id)
        elif will is not None:
            delay = will.will_delay_interval or 0
            if delay == 0 or session.expiry_interval == 0 or ending:
                session.will = None
                if self.wills is not None:
                    self.wills.will_gone(session.client_id)
                self.publish_will(session.client_id, will, now)
            else:
                session.will_at = now + delay
        if session.expiry_interval == 0 or ending:
            self.end(session, now)
        else:
            session.park_catch_ups(now)
            session.expires_at = now + session.expiry_interval
            self.offline.add(session)
            if session.store is not None:
                session.store.session_saved(session)
            if self.directory is not None:
                self.directory.changed(session)  # its record says it is offline

    def end(self, session: Session, now: float, publish_will: bool = True) -> None:
        """The session is over: its pending will goes out (unless ``publish_will`` is
        False), its subscriptions go."""
        if not publish_will:
            session.will = None
            if self.wills is not None:
                self.wills.will_gone(session.client_id)
        self._publish_pending_will(session, now)
        self.offline.discard(session)
        if self._sessions.get(session.client_id) is session:
            del self._sessions[session.client_id]
            self._forget(session.client_id)
        self._router.drop_client(
            session.client_id, session.subscriptions, session.take_shared_messages(), now
        )
        if session.store is not None:
            session.store.session_ended(session)
            session.store = None
        session.subscriptions.clear()
        session.inflight.clear()
        session.queue.clear()
        if self.directory is not None:
            self.directory.changed(session)

    # Sessions moving between the nodes of a cluster (roost.cluster.sessions).

    def adopt(self, stored: StoredSession, now: float) -> None:
        """Put in place a session another broker handed over (or whose record it left),
        offline until its client's CONNECT attaches it; a local copy is dropped."""
        old = self._sessions.get(stored.client_id)
        if old is not None:
            self.hand_over(stored.client_id, now, keep=False)
        session, _was_connected = restored_session(
            stored, self._config, self._store, self._stats, now
        )
        session.store = None  # recorded afresh by attach (_keep_durable)
        for item in session.queue:
            item.store_id = 0
        for item in session.inflight.values():
            item.store_id = 0
        for record in session.subscriptions.values():
            self._router.subscribe(session.client_id, record)
        self._sessions[session.client_id] = session
        self.offline.add(session)

    def merge(self, stored: StoredSession, now: float) -> None:
        """Put the state another broker handed over into the session adopted here from
        the cluster's record, which has been receiving meanwhile (offline): the handed
        messages first, then those received here since, less this broker's copies of
        handed ones (the same ``Message.cluster_id``). Without such a session, ``adopt``."""
        session = self._sessions.get(stored.client_id)
        if session is None or session.connection is not None:
            self.adopt(stored, now)
            return
        handed, _was_connected = restored_session(
            stored, self._config, self._store, self._stats, now
        )
        queued = list(handed.queue)
        inflight = list(handed.inflight.items())
        for item in (*queued, *(item for _packet_id, item in inflight)):
            item.store_id = 0
        seen = {getattr(item.message, "cluster_id", None) for item in queued}
        seen.update(getattr(item.message, "cluster_id", None) for _id, item in inflight)
        seen.discard(None)
        early = [
            item for item in session.queue if getattr(item.message, "cluster_id", None) not in seen
        ]
        session.queue.clear()
        session.queued_bytes = 0
        session.restore([*queued, *early], inflight, stored.receive_ids)
        session.expiry_interval = handed.expiry_interval
        session.expires_at = handed.expires_at
        session.identity = handed.identity
        for record in stored.subscriptions:
            if session.subscriptions.get(record.topic_filter) != record:
                session.subscriptions[record.topic_filter] = record
                self._router.subscribe(session.client_id, record)

    def add_subscriptions(self, client_id: str, records: list[SubscriptionRecord]) -> None:
        """Subscriptions the old owner of a session being taken over had and the
        cluster's record lacked, in force here before it hands the session over."""
        session = self._sessions.get(client_id)
        if session is None:
            return
        for record in records:
            session.subscriptions[record.topic_filter] = record
            self._router.subscribe(client_id, record)

    def taken_elsewhere(self, client_id: str, now: float) -> bool:
        """Another broker took the session: close its connection here (MQTT 5:
        DISCONNECT 0x8E), as a local takeover does; the session stays, offline, until it
        is handed over. False if it had no connection here."""
        session = self._sessions.get(client_id)
        if session is None or session.connection is None:
            return False
        log.info("Client %s connected to another node, closing old connection.", client_id)
        session.connection.take_over()
        self.detach(session, publish_will=True, now=now)
        return True

    def hand_over(self, client_id: str, now: float, *, keep: bool) -> StoredSession | None:
        """Give the session up to another broker: its connection here is closed (MQTT 5:
        DISCONNECT 0x8E), its will goes out as in a local takeover, and it ends here.
        With ``keep`` its state is returned for the new owner (None if there is none)."""
        session = self._sessions.get(client_id)
        if session is None:
            return None
        if session.connection is not None:
            log.info("Client %s connected to another node, closing old connection.", client_id)
            session.connection.take_over()
            self.detach(session, publish_will=True, now=now, ending=not keep)
        if self._sessions.get(client_id) is not session:
            return None  # ended with its connection (expiry 0, or not kept)
        state = snapshot(session) if keep else None
        # Its messages go with it, not to the other members of its shared groups.
        session.inflight.clear()
        session.queue.clear()
        session.queued_bytes = 0
        self.end(session, now, publish_will=False)
        return state

    def _publish_pending_will(self, session: Session, now: float) -> None:
        will = session.will
        if will is not None and session.will_at is not None:
            session.will = None
            session.will_at = None
            if session.store is not None:
                session.store.session_saved(session)
            if self.wills is not None:
                self.wills.will_gone(session.client_id)
            self.publish_will(session.client_id, will, now)

    def publish_will(self, client_id: str, will: Will, now: float) -> None:
        """Publish ``will`` as ``client_id``'s (also for the cluster: a dead node's)."""
        log.info("Publishing will of client %s to %r.", client_id, will.topic)
        message = Message(
            will.topic,
            will.payload,
            will.qos,
            will.retain,
            client_id,
            None if will.message_expiry_interval is None else now + will.message_expiry_interval,
            will.payload_format_indicator,
            will.content_type,
            will.response_topic,
            will.correlation_data,
            will.user_properties,
        )
        if will.retain:
            self._router.retain(message)
        self._router.publish(message, now)

    def sweep(self, now: float) -> None:
        """Delayed wills and session expiry, from their deadlines; now and then, queued
        messages whose Message Expiry Interval has passed."""
        for session in list(self.offline):
            if session.will_at is not None and now >= session.will_at:
                self._publish_pending_will(session, now)
            if session.expires_at is not None and now >= session.expires_at:
                log.info("Session of client %s expired.", session.client_id)
                self.end(session, now)
                if self._hooks is not None:
                    self._hooks.session_expired(session.client_id)
        if now >= self._purge_at:
            self._purge_at = now + PURGE_INTERVAL
            for session in self.offline:
                session.purge_expired(now)

    def shut_down(self, now: float) -> None:
        """A shutdown without durable storage ends every session: pending wills go out
        now [MQTT-3.1.2-8]."""
        if not self._store.durable:
            for session in list(self._sessions.values()):
                self._publish_pending_will(session, now)

    def restore(self, stored: Iterable[StoredSession], now: float) -> int:
        """Put back the sessions a store kept, every one offline; returns how many
        queued or in-flight messages they hold."""
        messages = 0
        store = self._store
        for kept in stored:
            session, was_connected = restored_session(kept, self._config, store, self._stats, now)
            for record in session.subscriptions.values():
                self._router.subscribe(session.client_id, record)
            messages += session.pending_messages()
            if self.wills is not None:
                # In a cluster the wills of a process that ended are the cluster's to send
                # (ROOST_WILLS): another node, or this one, sends them once, not twice.
                session.will = None
                session.will_at = None
            self._sessions[session.client_id] = session
            self.offline.add(session)
            if was_connected:
                store.session_saved(session)
        return messages
