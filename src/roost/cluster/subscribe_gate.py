"""Holding a SUBACK until the other nodes know the new filter (docs/clustering.md,
"Subscriptions take effect").

A node sends another node a message only if its interest table says the other node
has a matching filter, and the table learns of new filters through a stream: without
more, a message published elsewhere just after a SUBACK could miss the subscriber
that had it. So a SUBSCRIBE that gives this node a filter it did not use holds the
connection's output (gate ``GATE`` of its transport, as the store's commit and
JetStream's acknowledgements do) until every live node has applied the interest record
and said so on ``roost.ia.<this node>``, or until ``CONFIRM_TIMEOUT`` (counted in
``interest/unconfirmed``). The NATS subscription goes out before the record, so a node
that has the record also routes to it.

Each new filter gets a ticket, carried in its record's ``Roost-Gate`` header as
``<origin>/<ticket>`` (origin: node and process, so that replies to an earlier process
are ignored). Tickets pass in order; what waits for one waits for those before it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

    from roost.broker.transport import Holder

log = logging.getLogger("roost.cluster")

GATE = 2  # the transport's gate number (0: the store, 1: the QoS stream)
ACKS = "roost.ia"  # + ".<node>": "<acking node> <origin>/<ticket>"
HEADER = "Roost-Gate"
CONFIRM_TIMEOUT = 2.0  # seconds a SUBACK waits at most for the other nodes
SWEEP = 0.1  # seconds between looks at tickets past their time


class _Ticket:
    __slots__ = ("acked", "deadline", "waiting")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.waiting: set[str] | None = None  # None: its record is not sent yet
        self.acked: set[str] = set()


class SubscribeGate:
    """Tickets for new filters, released as the other nodes confirm them."""

    def __init__(self, node: str, origin: str, alive: Callable[[], list[str]]) -> None:
        self.node = node
        self.origin = origin
        self._alive = alive  # the nodes heard from lately (roost.cluster.liveness)
        self.issued = 0
        self.passed = 0
        self._tickets: dict[int, _Ticket] = {}  # in ticket order
        self._holders: dict[Holder, None] = {}
        self._sub: Subscription | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.unconfirmed = 0  # tickets released by the timeout
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    # The node's side (synchronous).

    def issue(self) -> int:
        """A ticket for a filter this node starts using."""
        self.issued += 1
        loop = asyncio.get_running_loop()
        self._tickets[self.issued] = _Ticket(loop.time() + CONFIRM_TIMEOUT)
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = loop.create_task(self._sweep(), name="roost-cluster-suback")
        return self.issued

    def hold(self, conn: Holder) -> None:
        if self._tickets:
            conn.hold(self.issued, GATE)
            self._holders[conn] = None

    def header(self, ticket: int) -> dict[str, str]:
        return {HEADER: f"{self.origin}/{ticket}"}

    def recorded(self, ticket: int) -> None:
        """The ticket's record is on its way: wait for the nodes alive now."""
        entry = self._tickets.get(ticket)
        if entry is None:
            return
        entry.waiting = {node for node in self._alive() if node != self.node}
        self._check(ticket, entry)

    def done(self, ticket: int) -> None:
        """Nothing to wait for (the filter went before its record did)."""
        if self._tickets.pop(ticket, None) is not None:
            self._advance()

    async def settled(self) -> None:
        """Wait until every ticket issued so far has passed (its filter confirmed by
        the live nodes, or its time up): a session taken over from another node
        receives here before the old owner lets go (cluster/sessions.py)."""
        target = self.issued
        if self.passed >= target:
            return
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((target, future))
        await future

    def release_all(self) -> None:
        """NATS is gone: nobody will answer; hold nothing."""
        self._tickets.clear()
        self._advance()

    # NATS.

    async def start(self, nc: NatsClient) -> None:
        if self._sub is None:  # nats-py subscribes again by itself after a reconnect
            self._sub = await nc.subscribe(f"{ACKS}.{self.node}", cb=self._acked)

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        self.release_all()

    async def _acked(self, msg: Msg) -> None:
        try:
            node, tag = msg.data.decode().split(" ", 1)
            origin, ticket_text = tag.rsplit("/", 1)
            ticket = int(ticket_text)
        except ValueError:
            return
        if origin != self.origin:
            return  # an answer to an earlier process of this node
        entry = self._tickets.get(ticket)
        if entry is not None:
            entry.acked.add(node)
            self._check(ticket, entry)

    def _check(self, ticket: int, entry: _Ticket) -> None:
        if entry.waiting is not None and entry.waiting <= entry.acked:
            del self._tickets[ticket]
            self._advance()

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while self._tickets:
            await asyncio.sleep(SWEEP)
            now = loop.time()
            late = [ticket for ticket, entry in self._tickets.items() if entry.deadline <= now]
            if late:
                for ticket in late:
                    entry = self._tickets.pop(ticket)
                    missing = sorted((entry.waiting or set()) - entry.acked)
                    log.debug("Cluster: SUBACK released without %s.", missing or "its record")
                self.unconfirmed += len(late)
                self._advance()

    def _advance(self) -> None:
        tickets = self._tickets
        passed = next(iter(tickets)) - 1 if tickets else self.issued
        if passed <= self.passed:
            return
        self.passed = passed
        if self._waiters:
            waiting = []
            for target, future in self._waiters:
                if target > passed:
                    waiting.append((target, future))
                elif not future.done():
                    future.set_result(None)
            self._waiters = waiting
        if self._holders:
            self._holders = {conn: None for conn in self._holders if conn.release(passed, GATE)}


def ack_for(node: str, header: str | None) -> tuple[str, bytes] | None:
    """What a node that applied a record with this ``Roost-Gate`` header sends back:
    (subject, payload), or None for a record without one."""
    if not header:
        return None
    origin_node = header.split("/", 1)[0]
    return f"{ACKS}.{origin_node}", f"{node} {header}".encode()
