"""Retained messages: the last retained message per topic name, and who gets which.

The store is a trie of topic-name levels. When a client subscribes, ``match`` walks
the new filter against it: a literal level follows one child, ``+`` follows every
child of the current nodes, and ``#`` collects the subtrees below them. Topics in
branches the filter rules out are never visited, so subscribing to ``a/b`` costs the
same with ten retained topics or a million.

``M`` is whatever the broker keeps per retained message (the stored message object);
the store never looks inside it, but it must not be None, which means "absent".

The store has a cap (``max_messages``) so that publishers cannot grow the broker's
memory without bound: storing a new topic at the cap is refused, while replacing or
deleting an existing topic always works.

Retained messages go to new non-shared subscriptions only (MQTT 5.0 section 3.3.1.3),
so the caller never passes a ``$share/...`` filter to ``match``: it recognises those
with ``roost.protocol.topics.parse_shared`` and skips them.
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["RetainedStore"]

M = TypeVar("M")


class _Node(Generic[M]):
    """One topic level. ``topic`` is kept so that matches need not rebuild names."""

    __slots__ = ("children", "message", "topic")

    def __init__(self) -> None:
        self.children: dict[str, _Node[M]] | None = None
        self.message: M | None = None
        self.topic = ""


class RetainedStore(Generic[M]):
    """Retained messages keyed by topic name, at most ``max_messages`` of them."""

    __slots__ = ("_count", "_root", "max_messages")

    def __init__(self, max_messages: int) -> None:
        if max_messages < 0:
            raise ValueError(f"max_messages must be >= 0, not {max_messages}")
        self.max_messages = max_messages
        self._root: _Node[M] = _Node()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def get(self, topic: str) -> M | None:
        """The retained message for exactly this topic name, or None."""
        node = self._root
        for level in topic.split("/"):
            children = node.children
            found = None if children is None else children.get(level)
            if found is None:
                return None
            node = found
        return node.message

    def set(self, topic: str, message: M) -> bool:
        """Retain ``message`` for ``topic``, replacing any before it.

        Returns False, changing nothing, when ``topic`` is new and the store is full.
        """
        levels = topic.split("/")
        node = self._root
        depth = 0
        # Follow what exists first: nothing may be created if the store is full.
        for level in levels:
            children = node.children
            found = None if children is None else children.get(level)
            if found is None:
                break
            node = found
            depth += 1
        if depth == len(levels) and node.message is not None:
            node.message = message
            return True
        if self._count >= self.max_messages:
            return False
        for level in levels[depth:]:
            child: _Node[M] = _Node()
            if node.children is None:
                node.children = {}
            node.children[level] = child
            node = child
        node.message = message
        node.topic = topic
        self._count += 1
        return True

    def delete(self, topic: str) -> bool:
        """Forget the retained message for ``topic``; True if there was one."""
        levels = topic.split("/")
        # (parent, its children dict, level) for each step, to prune on the way back.
        trail: list[tuple[_Node[M], dict[str, _Node[M]], str]] = []
        node = self._root
        for level in levels:
            children = node.children
            if children is None:
                return False
            found = children.get(level)
            if found is None:
                return False
            trail.append((node, children, level))
            node = found
        if node.message is None:
            return False
        node.message = None
        node.topic = ""
        self._count -= 1
        # Prune from the leaf up so that dead branches are never walked by match.
        for parent, children, level in reversed(trail):
            dead = children[level]
            if dead.children or dead.message is not None:
                break
            del children[level]
            if not children:
                parent.children = None
        return True

    def match(self, topic_filter: str) -> list[tuple[str, M]]:
        """(topic, message) for every retained topic that ``topic_filter`` matches.

        ``topic_filter`` is a valid, non-shared filter. Wildcards in the first level do
        not reach topics starting with ``$`` [MQTT-4.7.2-1]. The order is unspecified.
        """
        found: list[tuple[str, M]] = []
        frontier = [self._root]
        first = True
        for level in topic_filter.split("/"):
            if level == "#":
                # The parent level matches too ('sport/#' matches 'sport'); the root
                # stands for no level at all and never holds a message.
                for node in frontier:
                    if node.message is not None:
                        found.append((node.topic, node.message))
                    self._collect_below(node, found, skip_dollar=first)
                return found
            following: list[_Node[M]] = []
            for node in frontier:
                children = node.children
                if children is None:
                    continue
                if level == "+":
                    if first:
                        following.extend(
                            child for key, child in children.items() if not key.startswith("$")
                        )
                    else:
                        following.extend(children.values())
                else:
                    child = children.get(level)
                    if child is not None:
                        following.append(child)
            if not following:
                return found
            frontier = following
            first = False
        found.extend((node.topic, node.message) for node in frontier if node.message is not None)
        return found

    @staticmethod
    def _collect_below(start: _Node[M], found: list[tuple[str, M]], *, skip_dollar: bool) -> None:
        """Append every message strictly below ``start`` (iteratively: topics can be
        deeper than Python's recursion limit)."""
        children = start.children
        if children is None:
            return
        if skip_dollar:
            stack = [child for key, child in children.items() if not key.startswith("$")]
        else:
            stack = list(children.values())
        while stack:
            node = stack.pop()
            if node.message is not None:
                found.append((node.topic, node.message))
            if node.children is not None:
                stack.extend(node.children.values())
