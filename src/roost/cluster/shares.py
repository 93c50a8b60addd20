"""Shared subscriptions across nodes: NATS chooses the node, the router the member
(docs/clustering.md, "Shared subscriptions"). This carries QoS 0, at most once; QoS 1
and 2 go through JetStream (``share_stream.py``) whenever it is available.

Every node with members of ``$share/{group}/{filter}`` joins one NATS queue group for
it (named by a hash of the whole shared filter, so the same on every node) on the
subjects of ``filter``. NATS gives each message to one member of a queue group, that
is to one node, whose router then gives it to one local member
(``Router.publish_to_group``). The node publishing a message is a candidate like any
other, so these subscriptions live on a second NATS connection that hears its own
node's messages (the main one has no-echo).

While this connection is up the router leaves shared groups out of its ordinary
delivery (``balances_shares``); while it is down they are served locally as on a
broker alone, each node's group getting its own copy.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import TYPE_CHECKING

import nats

from roost.cluster import envelope, subjects
from roost.protocol.topics import parse_shared

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

    from roost.broker.router import Router

log = logging.getLogger("roost.cluster")


class ShareBalancer:
    """This node's shared groups in the cluster: counted, subscribed as queue groups."""

    def __init__(self, router: Router) -> None:
        self._router = router
        self.members: dict[str, int] = {}  # shared filter -> local members
        self._subs: dict[str, list[Subscription]] = {}
        self._nc: NatsClient | None = None
        self.delivered = 0  # messages NATS chose this node for
        self.missed = 0  # ... that no local member could take any more

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    def added(self, share_filter: str) -> bool:
        """A local member joined; True if it is the first here."""
        count = self.members.get(share_filter, 0)
        self.members[share_filter] = count + 1
        return not count

    def removed(self, share_filter: str) -> bool:
        """A local member left; True if it was the last here."""
        count = self.members.get(share_filter, 0) - 1
        if count > 0:
            self.members[share_filter] = count
            return False
        self.members.pop(share_filter, None)
        return True

    def has_local_group(self, topic: str) -> bool:
        """Whether a message on ``topic`` is for a shared group with members here."""
        return bool(self.members) and bool(self._router.shared_groups(topic))

    async def connect(self, **options: object) -> None:
        self._nc = await nats.connect(no_echo=False, **options)  # type: ignore[arg-type]

    async def sync(self, share_filter: str) -> None:
        """Join or leave the queue group of ``share_filter`` as its members here say."""
        nc = self._nc
        if nc is None:
            return
        wanted = share_filter in self.members
        held = self._subs.get(share_filter)
        if wanted and held is None:
            _group, inner = parse_shared(share_filter)
            queue = (
                "roost-share-" + hashlib.blake2b(share_filter.encode(), digest_size=12).hexdigest()
            )
            received = self._receiver(share_filter)
            self._subs[share_filter] = [
                await nc.subscribe(name, queue=queue, cb=received)
                for name in subjects.filter_subjects(subjects.MESSAGES, inner)
            ]
        elif not wanted and held is not None:
            del self._subs[share_filter]
            for sub in held:
                await sub.unsubscribe()

    def _receiver(self, share_filter: str) -> Callable[[Msg], Awaitable[None]]:
        router = self._router

        async def received(msg: Msg) -> None:
            data = msg.data
            now = asyncio.get_running_loop().time()
            try:
                _origin, _seq, offset = envelope.header(data)
                message = envelope.message(data, offset, now)
            except ValueError:
                return
            self.delivered += 1
            got = router.publish_to_group(message, share_filter, now)
            if not got:
                self.missed += 1  # delivered ones are counted by the router

        return received

    async def close(self) -> None:
        nc, self._nc = self._nc, None
        if nc is not None:
            try:
                await asyncio.wait_for(nc.close(), 4)
            except TimeoutError:
                log.warning("Cluster: the shared-group connection did not close in time.")
            except Exception as exc:  # noqa: BLE001  (a socket already gone while NATS is away)
                log.debug("Cluster: closing the shared-group connection failed: %r", exc)
