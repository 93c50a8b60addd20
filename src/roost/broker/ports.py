"""The seams between a client connection and the rest of the broker.

A ``BrokerConnection`` (``connection.py``) knows the broker only through these
protocols: ``ConnectionHost`` (sessions, routing, authorization, counters),
``Entrance`` (the listener it came in on) and, through the host, ``Authority``. The
packet handlers in ``publishing.py`` and ``subscribing.py`` know their connection only
as a ``ClientSide``.
``core.BrokerCore`` and ``listeners.Listener`` implement them; a test or another kind
of front end can implement them too. Nothing here imports a broker module that imports
back: the arrows point from the connection to these protocols, and from the
implementations to the parts they wire.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from roost.broker.auth.access import ClientAccess
    from roost.broker.auth.base import AuthRequest, AuthResult, ClientInfo, EnhancedAuthentication
    from roost.broker.config import BrokerConfig
    from roost.broker.connect import Refusal
    from roost.broker.hook_dispatch import Hooks
    from roost.broker.limits import RateLimit, TopicLimits
    from roost.broker.message import Message
    from roost.broker.records import SubscriptionRecord
    from roost.broker.sessions import Identity, Session, Sink
    from roost.broker.stats import Stats
    from roost.broker.transport import Holder
    from roost.codec import Connect, Will
    from roost.protocol.server_conn import ServerConnection


class Authority(Protocol):
    """Who may connect and what they may do (``auth.manager.AuthManager``)."""

    def needs_authentication(self, username: str | None) -> bool:
        """Whether a CONNECT with this username must wait for a backend."""

    async def authenticate(self, request: AuthRequest) -> AuthResult:
        """Check a CONNECT's credentials."""

    def start_auth(self, method: str, client: ClientInfo) -> EnhancedAuthentication | None:
        """An exchange for an MQTT 5 Authentication Method, or None if nothing offers it."""

    def access_for(self, client: ClientInfo) -> ClientAccess | None:
        """What ``client`` may do; None when nothing restricts anyone."""

    def in_password_file(self, username: str) -> bool:
        """Whether the password file (if there is one) has ``username``."""

    def sys_publish_allowed(self, topic: str) -> bool:
        """Whether clients may publish to this ``$``-topic."""


class Connection(Sink, Protocol):
    """A client connection as the host sees it: for the timer sweep and shutdown, and
    what operators may read of it (the HTTP API's client list)."""

    client_id: str  # "" until its CONNECT is accepted
    peer: str  # "address:port"
    keep_alive: int
    connected_at: float  # loop time
    username: str | None
    listener: Entrance
    session: Session | None

    def check_timers(self, now: float) -> None:
        """Close the connection if its CONNECT, keep-alive or closing deadline passed."""

    def disconnect(
        self, reason: int, reason_string: str | None = None, *, why: str | None = None
    ) -> None:
        """Close from the broker's side; MQTT 5 clients are told why first."""

    def abort(self) -> None:
        """Drop the connection at once, whatever it still had to send."""


class Entrance(Protocol):
    """The listener a connection came in on, as far as the connection needs it."""

    label: str  # e.g. "tls 0.0.0.0:8883", for the log
    allow_anonymous: bool
    identity_source: str | None  # "cn" or "san": the certificate names the user

    def admit(self) -> Refusal | None:
        """Count a new connection in, or say why it must be refused."""

    def left(self) -> None:
        """An admitted connection closed."""


class SessionDirectory(Protocol):
    """Where sessions are registered beyond this broker: a cluster's session directory
    (``roost.cluster.sessions``). None on a broker alone, which pays one None test per
    CONNECT, SUBSCRIBE, UNSUBSCRIBE, disconnection and session end."""

    def claim(
        self, client_id: str, clean_start: bool, expiry_interval: int
    ) -> Awaitable[Refusal | None]:
        """Make this broker the session's owner before the CONNECT is accepted (taking
        it, and its state, from another broker if need be); a Refusal if it cannot."""

    def attached(self, session: Session) -> None:
        """A connection now holds the session (after its claim)."""

    def changed(self, session: Session) -> None:
        """The session's subscriptions changed, its connection went, or it ended."""


class ConnectionHost(Protocol):
    """What a client connection may ask of the broker, and all it may change there."""

    config: BrokerConfig
    stats: Stats
    topic_limits: TopicLimits
    hooks: Hooks  # the broker hooks (publishing.py asks hooks.publish)

    @property
    def auth(self) -> Authority:
        """Authentication and authorization."""

    @property
    def directory(self) -> SessionDirectory | None:
        """The cluster's session directory; None without ``[cluster]``."""

    def now(self) -> float:
        """The event loop's clock: every deadline is in these seconds."""

    # Connections.
    def opened(self, conn: Connection) -> Refusal | None:
        """Count a new connection in, or say why the broker must refuse it."""

    def refusing(self, conn: Connection) -> bool:
        """Keep a refused connection (not counted in) until it has read its CONNECT and
        been answered; False if too many are being refused so already (close it now)."""

    def closed(self, conn: Connection) -> None:
        """A connection counted in (opened) or being refused (refusing) is gone."""

    # Sessions (see registry.SessionRegistry).
    def attach(
        self,
        conn: Sink,
        identity: Identity,
        clean_start: bool,
        expiry_interval: int,
        will: Will | None,
        now: float,
    ) -> tuple[Session, bool]:
        """The session for an accepted CONNECT, and whether it was present."""

    def detach(self, session: Session, publish_will: bool, now: float) -> None: ...

    # Routing (see router.Router).
    def publish(self, message: Message, now: float) -> int:
        """Route a client's message (kept first if retained); how many got it."""

    def subscribe(self, session: Session, record: SubscriptionRecord) -> bool:
        """Add or replace a subscription; True if it is new."""

    def send_retained(self, session: Session, record: SubscriptionRecord, now: float) -> None:
        """Deliver the retained messages for a new subscription."""

    def unsubscribe(self, session: Session, topic_filter: str) -> bool:
        """Remove a subscription; False if there was none."""

    # Durability: "acknowledged means durable".
    def changes(self) -> int:
        """How many changes the store has recorded so far (to tell if a packet made any)."""

    def hold(self, conn: Holder) -> None:
        """Hold ``conn``'s packets sent from now on until the changes so far commit."""

    def hold_subscribed(self, conn: Holder) -> None:
        """Hold ``conn``'s packets sent from now on until the filters its subscriptions
        added are known on the other nodes of a cluster (nothing on a broker alone)."""


class ClientSide(Protocol):
    """What a packet handler (``publishing.py``, ``subscribing.py``) may use of the
    connection the packet came on."""

    host: ConnectionHost
    protocol: ServerConnection  # the sans-IO side: it encodes the answers
    session: Session | None
    access: ClientAccess | None  # None: nothing restricts this client
    client_id: str
    version: int
    publish_rate: RateLimit | None  # max_publish_rate; None: no limit
    bridge: bool  # a Mosquitto-style bridge (try_private): see subscribing.py

    def send(self, data: bytes) -> None: ...

    def disconnect(
        self, reason: int, reason_string: str | None = None, *, why: str | None = None
    ) -> None: ...

    def wait_for(self, answer: Awaitable[object], then: Callable[[object], None]) -> None:
        """Pause this connection's packets until ``answer`` is ready, then ``then(it)``."""

    def flush_burst(self) -> None:
        """Write a large burst out now, so flow control sees it."""

    # Holding packets until a store commit (see transport.Holder).
    def hold(self, batch: int, gate: int = 0) -> None: ...
    def release(self, committed: int, gate: int = 0) -> bool: ...


class AuthenticatingSide(ClientSide, Protocol):
    """What ``authenticating.py`` may use of a connection: the connection's identity and
    the state of an authentication under way (the connection owns it; these functions
    are the only ones that change it)."""

    listener: Entrance
    peer: str
    username: str | None  # the identity accepted
    auth_method: str | None  # the MQTT 5 Authentication Method it used
    auth_exchange: EnhancedAuthentication | None  # an AUTH exchange under way
    pending_connect: Connect | None  # the CONNECT waiting for its authentication
    auth_result: AuthResult | None  # that authentication's answer, once given

    def on_connect(self, packet: Connect, now: float) -> None:
        """Handle the CONNECT (again, once its authentication is answered)."""

    def refuse(self, packet: Connect, refusal: Refusal) -> None:
        """Answer a CONNECT with a refusing CONNACK, then close."""
