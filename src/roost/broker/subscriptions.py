"""The subscription trie: which subscriptions does a published topic reach?

One node per topic-filter level. A node has a dict of literal children and two
dedicated children for ``+`` and ``#``, so matching a topic follows only the branches
that can match: the literal child for the level, the ``+`` child, and the ``#`` child
(which ends the walk). The cost grows with the topic's depth and the number of
matching branches, never with the number of subscriptions that do not match.

A node stores the non-shared subscriptions that end there (``client_id -> V``) and the
shared groups whose inner filter ends there (``share name -> SharedGroup``). ``V`` is
whatever the broker keeps per subscription (options, identifier, ...); the trie never
looks inside it. Filters are assumed valid: the codec checked them on the way in.

A client with two overlapping filters (``a/+`` and ``a/#``) appears once per filter in
``match``; merging them into one delivery is the router's job [MQTT-3.3.4-2].
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from roost.protocol.topics import parse_shared

__all__ = ["SharedGroup", "SubscriptionTree"]

V = TypeVar("V")


class SharedGroup(Generic[V]):
    """The members of one shared subscription ``$share/{name}/{topic_filter}``.

    Each matching message goes to one member, chosen by ``pick``. The members form a
    queue: ``pick`` serves the first eligible member and moves it to the back, so with
    everyone eligible this is plain round-robin, and a member that had to be skipped
    (offline, or at its receive maximum) stays at the front and is served first once
    it can take messages again. New members join at the back.

    The queue is a ring kept in two dicts (``_next``/``_prev``) with ``_cursor`` at
    its front, so joining, leaving and picking are O(1): a list would make every
    unsubscribe a linear scan, and rotating the ``members`` dict itself degrades as
    deleted slots pile up at its front. ``members`` is for reading; only
    ``SubscriptionTree`` changes it.
    """

    __slots__ = ("_cursor", "_next", "_prev", "members", "name", "topic_filter")

    name: str
    topic_filter: str
    members: dict[str, V]

    def __init__(self, name: str, topic_filter: str) -> None:
        self.name = name
        self.topic_filter = topic_filter
        self.members = {}
        self._next: dict[str, str] = {}
        self._prev: dict[str, str] = {}
        # The front of the queue; None when the group is empty.
        self._cursor: str | None = None

    def __len__(self) -> int:
        return len(self.members)

    def __repr__(self) -> str:
        return f"SharedGroup({self.name!r}, {self.topic_filter!r}, {list(self.members)!r})"

    def pick(self, eligible: Callable[[str, V], bool] | None = None) -> tuple[str, V] | None:
        """The first member in queue order for which ``eligible`` holds, or None.

        ``eligible`` is asked at most once per member; the chosen member moves to the
        back of the queue. When nobody is eligible the queue is left as it was.
        """
        client_id = self._cursor
        if client_id is None:
            return None
        members = self.members
        following = self._next
        for _ in range(len(members)):
            value = members[client_id]
            if eligible is None or eligible(client_id, value):
                if client_id == self._cursor:
                    # The front member: the back of the queue is just behind it.
                    self._cursor = following[client_id]
                else:
                    # Behind skipped members: they keep their places at the front.
                    self._unlink(client_id)
                    self._link(client_id)
                return client_id, value
            client_id = following[client_id]
        return None

    def _join(self, client_id: str, value: V) -> bool:
        """Add or update a member; True if it is new."""
        members = self.members
        if client_id in members:
            # Re-subscribing replaces the options but keeps the member's place.
            members[client_id] = value
            return False
        members[client_id] = value
        self._link(client_id)
        return True

    def _leave(self, client_id: str) -> bool:
        """Remove a member; True if it was one."""
        if self.members.pop(client_id, _MISSING) is _MISSING:
            return False
        self._unlink(client_id)
        return True

    def _link(self, client_id: str) -> None:
        """Put a member that is not in the ring at the back of the queue."""
        front = self._cursor
        if front is None:
            self._next[client_id] = self._prev[client_id] = client_id
            self._cursor = client_id
            return
        back = self._prev[front]
        self._next[back] = client_id
        self._prev[client_id] = back
        self._next[client_id] = front
        self._prev[front] = client_id

    def _unlink(self, client_id: str) -> None:
        """Take a member out of the ring; the front passes to the one behind it."""
        after = self._next.pop(client_id)
        before = self._prev.pop(client_id)
        if after == client_id:
            self._cursor = None
            return
        self._next[before] = after
        self._prev[after] = before
        if self._cursor == client_id:
            self._cursor = after


_MISSING = object()


class _Node(Generic[V]):
    """One filter level. Containers are created on first use: most nodes are leaves
    or pass-throughs, and with 100k subscriptions the empty dicts add up."""

    __slots__ = ("children", "groups", "hash", "plus", "subs")

    def __init__(self) -> None:
        self.children: dict[str, _Node[V]] | None = None
        self.plus: _Node[V] | None = None
        self.hash: _Node[V] | None = None
        self.subs: dict[str, V] | None = None
        self.groups: dict[str, SharedGroup[V]] | None = None

    def is_empty(self) -> bool:
        return not (self.children or self.plus or self.hash or self.subs or self.groups)

    def child(self, level: str) -> _Node[V] | None:
        if level == "+":
            return self.plus
        if level == "#":
            return self.hash
        children = self.children
        return None if children is None else children.get(level)

    def make_child(self, level: str) -> _Node[V]:
        found = self.child(level)
        if found is not None:
            return found
        node: _Node[V] = _Node()
        if level == "+":
            self.plus = node
        elif level == "#":
            self.hash = node
        else:
            if self.children is None:
                self.children = {}
            self.children[level] = node
        return node

    def drop_child(self, level: str) -> None:
        if level == "+":
            self.plus = None
        elif level == "#":
            self.hash = None
        elif self.children is not None:
            del self.children[level]
            if not self.children:
                self.children = None


class SubscriptionTree(Generic[V]):
    """All subscriptions of all sessions, indexed for matching published topics."""

    __slots__ = ("_count", "_root")

    def __init__(self) -> None:
        self._root: _Node[V] = _Node()
        self._count = 0

    def __len__(self) -> int:
        """Number of (client, filter) subscriptions, shared ones included."""
        return self._count

    def add(self, client_id: str, topic_filter: str, value: V) -> bool:
        """Subscribe; True if new, False if it replaced the client's subscription to
        exactly this filter. ``$share/g/f`` joins the shared group ``g`` of ``f``."""
        group_name, inner = parse_shared(topic_filter)
        node = self._root
        for level in inner.split("/"):
            node = node.make_child(level)
        if group_name is None:
            if node.subs is None:
                node.subs = {}
            added = client_id not in node.subs
            node.subs[client_id] = value
        else:
            if node.groups is None:
                node.groups = {}
            group = node.groups.get(group_name)
            if group is None:
                group = node.groups[group_name] = SharedGroup(group_name, inner)
            added = group._join(client_id, value)
        if added:
            self._count += 1
        return added

    def remove(self, client_id: str, topic_filter: str) -> bool:
        """Unsubscribe; True if the subscription existed. Empty groups and nodes go."""
        group_name, inner = parse_shared(topic_filter)
        levels = inner.split("/")
        path: list[_Node[V]] = [self._root]
        node = self._root
        for level in levels:
            found = node.child(level)
            if found is None:
                return False
            node = found
            path.append(node)
        if group_name is None:
            subs = node.subs
            if not subs or subs.pop(client_id, _MISSING) is _MISSING:
                return False
            if not subs:
                node.subs = None
        else:
            groups = node.groups
            if not groups:
                return False
            group = groups.get(group_name)
            if group is None or not group._leave(client_id):
                return False
            if not group.members:
                del groups[group_name]
                if not groups:
                    node.groups = None
        self._count -= 1
        # Prune from the leaf up so that dead branches cost nothing when matching.
        for depth in range(len(levels), 0, -1):
            if not path[depth].is_empty():
                break
            path[depth - 1].drop_child(levels[depth - 1])
        return True

    def get(self, client_id: str, topic_filter: str) -> V | None:
        """The value stored for this client and exact filter, or None."""
        group_name, inner = parse_shared(topic_filter)
        node = self._root
        for level in inner.split("/"):
            found = node.child(level)
            if found is None:
                return None
            node = found
        if group_name is None:
            return node.subs.get(client_id) if node.subs else None
        group = node.groups.get(group_name) if node.groups else None
        return None if group is None else group.members.get(client_id)

    def match(self, topic: str) -> tuple[list[tuple[str, V]], list[SharedGroup[V]]]:
        """Every non-shared (client_id, value) and every shared group matching ``topic``.

        Breadth-first over the levels: ``frontier`` holds the nodes whose filter prefix
        matches the topic's levels so far. Each node is reached by one path only, so
        nothing is reported twice for the same filter.
        """
        subscribers: list[tuple[str, V]] = []
        groups: list[SharedGroup[V]] = []
        levels = topic.split("/")
        frontier = [self._root]
        # [MQTT-4.7.2-1]: at the first level a '$' topic takes only literal branches.
        wild_ok = not topic.startswith("$")
        for level in levels:
            following: list[_Node[V]] = []
            for node in frontier:
                if wild_ok:
                    rest = node.hash
                    if rest is not None:
                        # '#' here matches this level and all that remain.
                        if rest.subs:
                            subscribers.extend(rest.subs.items())
                        if rest.groups:
                            groups.extend(rest.groups.values())
                    if node.plus is not None:
                        following.append(node.plus)
                children = node.children
                if children is not None:
                    child = children.get(level)
                    if child is not None:
                        following.append(child)
            if not following:
                return subscribers, groups
            frontier = following
            wild_ok = True
        for node in frontier:
            if node.subs:
                subscribers.extend(node.subs.items())
            if node.groups:
                groups.extend(node.groups.values())
            # '#' also matches its parent level: 'sport/#' matches 'sport'.
            rest = node.hash
            if rest is not None:
                if rest.subs:
                    subscribers.extend(rest.subs.items())
                if rest.groups:
                    groups.extend(rest.groups.values())
        return subscribers, groups
