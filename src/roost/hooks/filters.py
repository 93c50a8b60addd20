"""Which configured topic filters a topic matches, for hooks that act per filter.

Built once from the hook's options on the broker's own subscription trie, so a lookup
costs what routing a message to a subscription does, whatever the number of filters.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

from roost.broker.subscriptions import SubscriptionTree
from roost.codec import CodecError
from roost.protocol.topics import validate_topic_filter

V = TypeVar("V")


class TopicFilters(Generic[V]):
    """Topic filters, each with a value; ``match(topic)`` gives the values of those that
    match it, in no particular order."""

    __slots__ = ("_tree",)

    def __init__(self, items: Iterable[tuple[str, V]]) -> None:
        self._tree: SubscriptionTree[V] = SubscriptionTree()
        for topic_filter, value in items:
            try:
                validate_topic_filter(topic_filter)
            except CodecError as exc:
                raise ValueError(f"{topic_filter!r} is not a valid topic filter: {exc}") from exc
            if topic_filter.startswith("$share/"):
                raise ValueError(f"{topic_filter!r}: a shared subscription is not a topic filter")
            # The trie keys entries by subscriber; each filter is its own "subscriber".
            self._tree.add(topic_filter, topic_filter, value)

    def __len__(self) -> int:
        return len(self._tree)

    def match(self, topic: str) -> list[V]:
        return [value for _key, value in self._tree.match(topic)[0]]
