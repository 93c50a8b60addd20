"""Retained messages: the last retained message per topic name, and who gets which.

The store is a trie of topic-name levels. When a client subscribes, ``walk`` walks
the new filter against it, lazily: a literal level follows one child, ``+`` follows
every child of the current nodes, and ``#`` yields the subtrees below them. Topics in
branches the filter rules out are never visited, so subscribing to ``a/b`` costs the
same with ten retained topics or a million.

``M`` is whatever the broker keeps per retained message (the stored message object);
the store never looks inside it, but it must not be None, which means "absent".

The store has a cap (``max_messages``) so that publishers cannot grow the broker's
memory without bound: storing a new topic at the cap is refused, while replacing or
deleting an existing topic always works.

Retained messages go to new non-shared subscriptions only (MQTT 5.0 section 3.3.1.3),
so the caller never passes a ``$share/...`` filter to ``walk``: it recognises those
with ``roost.protocol.topics.parse_shared`` and skips them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Iterator

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
        # Prune from the leaf up so that dead branches are never walked.
        for parent, children, level in reversed(trail):
            dead = children[level]
            if dead.children or dead.message is not None:
                break
            del children[level]
            if not children:
                parent.children = None
        return True

    def match(self, topic_filter: str) -> list[tuple[str, M]]:
        """(topic, message) for every retained topic that ``topic_filter`` matches, in
        the order of ``walk``."""
        return list(self.walk(topic_filter))

    def walk(self, topic_filter: str) -> Iterator[tuple[str, M]]:
        """(topic, message) for every retained topic that ``topic_filter`` matches, one
        at a time, depth first: a topic before the topics below it, siblings in the order
        they were first stored.

        ``topic_filter`` is a valid, non-shared filter. Wildcards in the first level do
        not reach topics starting with ``$`` [MQTT-4.7.2-1].

        The store may change while a walk is paused (a retained catch-up delivers as its
        subscriber has room): each node's children are copied when the walk reaches it,
        so a message set or deleted meanwhile is seen if its node was not reached yet
        (the message as it is then), and missed otherwise; the walk never fails.
        """
        levels = topic_filter.split("/")
        last = len(levels)
        # (node, i): the node matched the filter's first i levels.
        stack: list[tuple[_Node[M], int]] = [(self._root, 0)]
        while stack:
            node, i = stack.pop()
            if i == last:
                if node.message is not None:
                    yield node.topic, node.message
                continue
            level = levels[i]
            if level == "#":
                # The parent level matches too ('sport/#' matches 'sport'); the root
                # stands for no level at all and never holds a message.
                if node.message is not None:
                    yield node.topic, node.message
                yield from self._below(node, skip_dollar=i == 0)
                continue
            children = node.children
            if children is None:
                continue
            if level == "+":
                following = [
                    (child, i + 1)
                    for key, child in children.items()
                    if not (i == 0 and key.startswith("$"))
                ]
                following.reverse()  # popped in the order they were stored
                stack.extend(following)
            else:
                child = children.get(level)
                if child is not None:
                    stack.append((child, i + 1))

    @staticmethod
    def _below(start: _Node[M], *, skip_dollar: bool) -> Iterator[tuple[str, M]]:
        """Every message strictly below ``start`` (iteratively: topics can be deeper
        than Python's recursion limit)."""
        children = start.children
        if children is None:
            return
        if skip_dollar:
            stack = [child for key, child in children.items() if not key.startswith("$")]
            stack.reverse()
        else:
            stack = list(reversed(children.values()))
        pop = stack.pop
        extend = stack.extend
        while stack:
            node = pop()
            # Children first, copied: the caller may delete this very topic (expired)
            # or change the store before the walk resumes.
            below = node.children
            if below is not None:
                extend(reversed(below.values()))
            message = node.message
            if message is not None:
                yield node.topic, message
