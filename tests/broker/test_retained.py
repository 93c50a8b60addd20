"""The retained-message store, held to the reference matcher in roost.protocol.topics."""

from __future__ import annotations

from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roost.broker.retained import RetainedStore
from roost.protocol.topics import topic_matches
from tests.broker.test_subscriptions import topic_filters, topic_names
from tests.protocol.test_topics import SPEC_EXAMPLES

T = TypeVar("T")


def topics_of(store: RetainedStore[T], topic_filter: str) -> list[str]:
    return sorted(topic for topic, _ in store.match(topic_filter))


def is_pruned(store: RetainedStore[T]) -> bool:
    # White-box: deleted topics must not leave branches that a walk would visit.
    return store._root.children is None


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), SPEC_EXAMPLES)
def test_spec_examples(topic_filter: str, topic: str, expected: bool) -> None:
    store: RetainedStore[str] = RetainedStore(10)
    assert store.set(topic, "m")
    assert store.match(topic_filter) == ([(topic, "m")] if expected else [])


def test_set_get_replace_delete() -> None:
    store: RetainedStore[bytes] = RetainedStore(10)
    assert store.get("a/b") is None
    assert store.set("a/b", b"1")
    assert store.set("a", b"2")
    assert store.get("a/b") == b"1"
    assert store.get("a") == b"2"
    assert store.get("a/b/c") is None
    assert len(store) == 2
    assert store.set("a/b", b"3")
    assert store.get("a/b") == b"3"
    assert len(store) == 2
    assert store.delete("a/b")
    assert not store.delete("a/b")
    assert not store.delete("x/y")
    assert store.get("a/b") is None
    assert store.get("a") == b"2"
    assert len(store) == 1
    assert store.delete("a")
    assert len(store) == 0
    assert is_pruned(store)


def test_delete_of_an_inner_level_without_a_message() -> None:
    store: RetainedStore[str] = RetainedStore(10)
    store.set("a/b/c", "m")
    assert not store.delete("a/b")
    assert store.get("a/b/c") == "m"
    assert len(store) == 1


def test_delete_keeps_branches_still_in_use() -> None:
    store: RetainedStore[str] = RetainedStore(10)
    store.set("a/b/c", "deep")
    store.set("a/b", "shallow")
    store.set("a/x", "side")
    assert store.delete("a/b/c")
    assert topics_of(store, "#") == ["a/b", "a/x"]
    store.set("a/b/c", "deep")
    assert store.delete("a/b")
    assert topics_of(store, "#") == ["a/b/c", "a/x"]
    assert store.delete("a/b/c")
    assert store.delete("a/x")
    assert is_pruned(store)


def test_cap_refuses_new_topics_but_allows_replacing() -> None:
    store: RetainedStore[str] = RetainedStore(2)
    assert store.set("a", "1")
    assert store.set("b/c", "2")
    assert not store.set("b/d", "3")
    assert not store.set("b/c/d", "3")
    assert store.get("b/d") is None
    assert len(store) == 2
    # The refused topics left no nodes behind.
    assert topics_of(store, "#") == ["a", "b/c"]
    assert store.set("a", "1 again")
    assert store.get("a") == "1 again"
    assert store.delete("a")
    assert store.set("b/d", "3")
    assert len(store) == 2


def test_cap_of_zero_stores_nothing() -> None:
    store: RetainedStore[str] = RetainedStore(0)
    assert not store.set("a", "m")
    assert len(store) == 0
    assert is_pruned(store)


def test_negative_cap_is_refused() -> None:
    with pytest.raises(ValueError, match="max_messages"):
        RetainedStore[str](-1)


def test_wildcards_and_empty_levels() -> None:
    store: RetainedStore[str] = RetainedStore(100)
    topics = ["sport", "sport/", "sport/tennis", "sport/tennis/player1", "/", "/finance", "a//b"]
    for topic in topics:
        store.set(topic, topic)
    assert topics_of(store, "sport/#") == topics[:4]
    assert topics_of(store, "sport/+") == ["sport/", "sport/tennis"]
    assert topics_of(store, "+") == ["sport"]
    assert topics_of(store, "+/+") == ["/", "/finance", "sport/", "sport/tennis"]
    assert topics_of(store, "/#") == ["/", "/finance"]
    assert topics_of(store, "a/+/b") == ["a//b"]
    assert topics_of(store, "#") == sorted(topics)
    assert topics_of(store, "nothing/#") == []
    assert topics_of(store, "sport/tennis/player1/+") == []
    for topic, message in store.match("sport/tennis"):
        assert message == topic


def test_dollar_topics_only_for_literal_first_levels() -> None:
    store: RetainedStore[str] = RetainedStore(100)
    for topic in ["$SYS/broker/uptime", "$SYS", "a/$b", "x"]:
        store.set(topic, topic)
    assert topics_of(store, "#") == ["a/$b", "x"]
    assert topics_of(store, "+/broker/uptime") == []
    assert topics_of(store, "+") == ["x"]
    assert topics_of(store, "$SYS/#") == ["$SYS", "$SYS/broker/uptime"]
    assert topics_of(store, "$SYS/+/uptime") == ["$SYS/broker/uptime"]
    assert topics_of(store, "a/+") == ["a/$b"]
    assert topics_of(store, "a/#") == ["a/$b"]


def test_deep_topics_do_not_recurse() -> None:
    store: RetainedStore[str] = RetainedStore(10)
    deep = "/".join(["x"] * 5000)
    store.set(deep, "m")
    assert store.match("#") == [(deep, "m")]
    assert store.match("x/#") == [(deep, "m")]
    assert store.delete(deep)
    assert is_pruned(store)


# --- property: the trie agrees with the reference matcher -----------------------------


@settings(max_examples=300)
@given(
    ops=st.lists(st.tuples(st.booleans(), topic_names), max_size=30),
    filters=st.lists(topic_filters().filter(lambda f: not f.startswith("$share/")), max_size=10),
)
def test_matches_the_reference(ops: list[tuple[bool, str]], filters: list[str]) -> None:
    store: RetainedStore[int] = RetainedStore(1000)
    model: dict[str, int] = {}
    for serial, (is_set, topic) in enumerate(ops):
        if is_set:
            assert store.set(topic, serial)
            model[topic] = serial
        else:
            assert store.delete(topic) is (topic in model)
            model.pop(topic, None)
        assert len(store) == len(model)
    for topic, message in model.items():
        assert store.get(topic) == message
    for topic_filter in filters:
        expected = sorted((t, m) for t, m in model.items() if topic_matches(topic_filter, t))
        assert sorted(store.match(topic_filter)) == expected
    for topic in model:
        assert store.delete(topic)
    assert is_pruned(store)


@settings(max_examples=100)
@given(topics=st.lists(topic_names, max_size=20), cap=st.integers(0, 5))
def test_cap_property(topics: list[str], cap: int) -> None:
    store: RetainedStore[str] = RetainedStore(cap)
    model: dict[str, str] = {}
    for topic in topics:
        accepted = store.set(topic, topic)
        assert accepted is (topic in model or len(model) < cap)
        if accepted:
            model[topic] = topic
        assert len(store) == len(model) <= cap
    assert sorted(store.match("#") + store.match("$SYS/#") + store.match("$x/#")) == sorted(
        model.items()
    )


def test_walk_order_is_depth_first_in_storing_order() -> None:
    """A topic before the topics below it; siblings in the order first stored."""
    store: RetainedStore[str] = RetainedStore(100)
    for topic in ("a/2", "a", "a/1", "a/2/x", "b", "a/3", "$SYS/x"):
        store.set(topic, topic)
    assert [topic for topic, _ in store.walk("#")] == ["a", "a/2", "a/2/x", "a/1", "a/3", "b"]
    assert [topic for topic, _ in store.walk("a/+")] == ["a/2", "a/1", "a/3"]
    assert [topic for topic, _ in store.walk("+/#")] == ["a", "a/2", "a/2/x", "a/1", "a/3", "b"]


def test_a_paused_walk_survives_changes_to_the_store() -> None:
    """Set, replaced and deleted (pruned) while a walk is paused: the walk sees a topic
    as it is when it gets there, skips what was deleted, and never fails."""
    store: RetainedStore[str] = RetainedStore(1000)
    for number in range(100):
        store.set(f"t/{number}", "old")
        store.set(f"t/{number}/x", "old")
    walk = store.walk("t/#")
    seen = [next(walk) for _ in range(10)]
    for number in range(50, 100):
        store.delete(f"t/{number}")
        store.delete(f"t/{number}/x")  # the whole branch pruned
    store.set("t/10", "new")
    store.set("t/11/y", "new")  # under a node the walk has not reached yet
    store.set("t/zz", "new")  # beside nodes it has: not seen
    seen += list(walk)
    found = dict(seen)
    assert len(seen) == len(found) == 101
    assert found["t/10"] == "new"
    assert found["t/11/y"] == "new"
    assert "t/zz" not in found
    assert not any(f"t/{number}" in found for number in range(50, 100))
    for topic in [*found, "t/zz"]:
        store.delete(topic)
    assert is_pruned(store)
