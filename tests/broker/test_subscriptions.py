"""The subscription trie, held to the reference matcher in roost.protocol.topics."""

from __future__ import annotations

from collections import Counter
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roost.broker.subscriptions import SharedGroup, SubscriptionTree
from roost.protocol.topics import parse_shared, topic_matches, validate_topic_filter
from tests.protocol.test_topics import SPEC_EXAMPLES

Tree = SubscriptionTree[str]
T = TypeVar("T")


def matched(tree: Tree, topic: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    subscribers, groups = tree.match(topic)
    return sorted(subscribers), sorted((g.name, g.topic_filter) for g in groups)


def is_pruned(tree: SubscriptionTree[T]) -> bool:
    # White-box: after removing everything the trie must not keep dead branches,
    # which would otherwise be walked by every match.
    return tree._root.is_empty()


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), SPEC_EXAMPLES)
def test_spec_examples(topic_filter: str, topic: str, expected: bool) -> None:
    tree: Tree = SubscriptionTree()
    tree.add("c", topic_filter, "v")
    tree.add("s", f"$share/g/{topic_filter}", "w")
    subscribers, groups = tree.match(topic)
    assert subscribers == ([("c", "v")] if expected else [])
    assert [g.name for g in groups] == (["g"] if expected else [])


def test_add_replace_get_len() -> None:
    tree: Tree = SubscriptionTree()
    assert tree.add("c1", "a/+", "one")
    assert tree.add("c2", "a/+", "two")
    assert not tree.add("c1", "a/+", "one again")
    assert tree.add("c1", "$share/g/a/+", "shared")
    assert not tree.add("c1", "$share/g/a/+", "shared again")
    assert tree.add("c1", "$share/h/a/+", "other group")
    assert len(tree) == 4
    assert tree.get("c1", "a/+") == "one again"
    assert tree.get("c2", "a/+") == "two"
    assert tree.get("c1", "$share/g/a/+") == "shared again"
    assert tree.get("c2", "$share/g/a/+") is None
    assert tree.get("c1", "a/#") is None
    assert tree.get("c1", "a") is None
    assert tree.get("c1", "$share/x/a/+") is None


def test_overlapping_filters_of_one_client_both_match() -> None:
    tree: Tree = SubscriptionTree()
    tree.add("c", "a/+", "plus")
    tree.add("c", "a/#", "hash")
    tree.add("c", "a/b", "literal")
    tree.add("c", "#", "all")
    subscribers, _ = tree.match("a/b")
    assert sorted(subscribers) == [("c", "all"), ("c", "hash"), ("c", "literal"), ("c", "plus")]


def test_remove_and_prune() -> None:
    tree: Tree = SubscriptionTree()
    filters = ["a/b/c", "a/+/c", "a/#", "#", "+", "/", "a//b", "$SYS/#"]
    for topic_filter in filters:
        tree.add("c1", topic_filter, topic_filter)
        tree.add("c2", f"$share/g/{topic_filter}", topic_filter)
    assert len(tree) == 2 * len(filters)
    assert not tree.remove("c3", "a/b/c")
    assert not tree.remove("c1", "a/b")
    assert not tree.remove("c1", "a/b/c/d")
    assert not tree.remove("c1", "$share/g/a/b/c")
    assert not tree.remove("c2", "$share/h/a/b/c")
    for topic_filter in filters:
        assert tree.remove("c1", topic_filter)
        assert not tree.remove("c1", topic_filter)
        assert tree.remove("c2", f"$share/g/{topic_filter}")
        assert not tree.remove("c2", f"$share/g/{topic_filter}")
    assert len(tree) == 0
    assert tree.match("a/b/c") == ([], [])
    assert is_pruned(tree)


def test_remove_keeps_branches_still_in_use() -> None:
    tree: Tree = SubscriptionTree()
    tree.add("c1", "a/b/c", "deep")
    tree.add("c1", "a/b", "shallow")
    assert tree.remove("c1", "a/b/c")
    assert matched(tree, "a/b") == ([("c1", "shallow")], [])
    tree.add("c1", "a/b/c", "deep")
    assert tree.remove("c1", "a/b")
    assert matched(tree, "a/b/c") == ([("c1", "deep")], [])
    assert matched(tree, "a/b") == ([], [])


def test_shared_groups_with_the_same_filter_are_separate() -> None:
    tree: Tree = SubscriptionTree()
    tree.add("c1", "$share/g/a/#", "1")
    tree.add("c2", "$share/h/a/#", "2")
    tree.add("c3", "$share/g/a/+", "3")
    _, groups = tree.match("a/b")
    by_key = {(g.name, g.topic_filter): dict(g.members) for g in groups}
    assert by_key == {
        ("g", "a/#"): {"c1": "1"},
        ("h", "a/#"): {"c2": "2"},
        ("g", "a/+"): {"c3": "3"},
    }


def test_dollar_topics_skip_first_level_wildcards() -> None:
    tree: Tree = SubscriptionTree()
    for topic_filter in ["#", "+/monitor/Clients", "$SYS/#", "$SYS/monitor/+", "+/#"]:
        tree.add("c", topic_filter, topic_filter)
    subscribers, _ = tree.match("$SYS/monitor/Clients")
    assert sorted(v for _, v in subscribers) == ["$SYS/#", "$SYS/monitor/+"]
    subscribers, _ = tree.match("x/monitor/Clients")
    assert sorted(v for _, v in subscribers) == ["#", "+/#", "+/monitor/Clients"]


# --- shared groups: round-robin -------------------------------------------------------


def group_of(*members: str) -> SharedGroup[int]:
    tree: SubscriptionTree[int] = SubscriptionTree()
    for index, client_id in enumerate(members):
        tree.add(client_id, "$share/g/t", index)
    _, groups = tree.match("t")
    assert len(groups) == 1
    return groups[0]


def picks(group: SharedGroup[int], count: int, eligible: set[str] | None = None) -> list[str]:
    chosen = []
    for _ in range(count):
        picked = group.pick(None if eligible is None else lambda cid, _v: cid in eligible)
        chosen.append("-" if picked is None else picked[0])
    return chosen


def test_round_robin_is_fair() -> None:
    group = group_of("a", "b", "c")
    assert picks(group, 7) == ["a", "b", "c", "a", "b", "c", "a"]
    counts = Counter(picks(group, 300))
    assert set(counts.values()) == {100}


def test_pick_returns_the_value() -> None:
    group = group_of("a", "b")
    assert group.pick() == ("a", 0)
    assert group.pick() == ("b", 1)
    assert group.name == "g"
    assert group.topic_filter == "t"
    assert len(group) == 2


def test_pick_skips_ineligible_members_without_losing_their_turn() -> None:
    group = group_of("a", "b", "c")
    assert picks(group, 4, eligible={"a", "c"}) == ["a", "c", "a", "c"]
    # 'b' was skipped, not served: once eligible it is first, then the rotation resumes.
    assert picks(group, 4) == ["b", "a", "c", "b"]


def test_pick_serves_the_longest_waiting_eligible_member() -> None:
    group = group_of("a", "b", "c", "d")
    assert picks(group, 2, eligible={"c", "d"}) == ["c", "d"]
    assert picks(group, 1, eligible={"b", "c", "d"}) == ["b"]
    assert picks(group, 5) == ["a", "c", "d", "b", "a"]


def test_pick_none_when_nobody_is_eligible() -> None:
    group = group_of("a", "b")
    assert group.pick(lambda _cid, _v: False) is None
    # An unsuccessful pick does not move the rotation.
    assert picks(group, 2) == ["a", "b"]


def test_pick_asks_each_member_at_most_once() -> None:
    group = group_of("a", "b", "c")
    asked: list[str] = []

    def never(client_id: str, _value: int) -> bool:
        asked.append(client_id)
        return False

    assert group.pick(never) is None
    assert asked == ["a", "b", "c"]


def test_members_joining_and_leaving_during_rotation() -> None:
    tree: SubscriptionTree[int] = SubscriptionTree()
    tree.add("a", "$share/g/t", 0)
    tree.add("b", "$share/g/t", 1)
    tree.add("c", "$share/g/t", 2)
    group = tree.match("t")[1][0]
    assert picks(group, 1) == ["a"]
    # The queue is now b, c, a; 'd' joins at the back, behind 'a' who was just served.
    tree.add("d", "$share/g/t", 3)
    assert picks(group, 4) == ["b", "c", "a", "d"]
    # Removing the member at the front passes its turn to the one behind it.
    tree.remove("b", "$share/g/t")
    assert picks(group, 3) == ["c", "a", "d"]
    # Re-subscribing updates the value but keeps the place in the queue.
    assert not tree.add("a", "$share/g/t", 10)
    assert group.pick() == ("c", 2)
    assert group.pick() == ("a", 10)
    tree.remove("a", "$share/g/t")
    tree.remove("c", "$share/g/t")
    assert picks(group, 2) == ["d", "d"]
    tree.remove("d", "$share/g/t")
    assert group.pick() is None
    assert tree.match("t") == ([], [])
    assert len(tree) == 0


def test_single_member_group() -> None:
    group = group_of("only")
    assert picks(group, 3) == ["only"] * 3
    assert group.pick(lambda _cid, _v: False) is None


# --- property: the trie agrees with the reference matcher -----------------------------

LEVELS = ["a", "b", "", "$SYS", "$x"]
# A topic name must not be empty, so a lone empty level is left out.
topic_names = st.lists(st.sampled_from(LEVELS), min_size=1, max_size=4).map("/".join).filter(bool)


@st.composite
def topic_filters(draw: st.DrawFn) -> str:
    levels = draw(st.lists(st.sampled_from([*LEVELS, "+"]), min_size=0, max_size=4))
    # A lone empty level would be the empty filter, which is invalid.
    if levels in ([], [""]) or draw(st.booleans()):
        levels.append("#")
    topic_filter = "/".join(levels)
    if draw(st.integers(0, 3)) == 0:
        topic_filter = f"$share/{draw(st.sampled_from(['g', 'h']))}/{topic_filter}"
    validate_topic_filter(topic_filter)
    return topic_filter


operations = st.lists(
    st.tuples(st.booleans(), st.sampled_from(["c1", "c2", "c3"]), topic_filters()),
    max_size=40,
)


@settings(max_examples=300)
@given(ops=operations, topics=st.lists(topic_names, min_size=1, max_size=10))
def test_matches_the_reference(ops: list[tuple[bool, str, str]], topics: list[str]) -> None:
    tree: Tree = SubscriptionTree()
    model: dict[tuple[str, str], str] = {}
    for serial, (is_add, client_id, topic_filter) in enumerate(ops):
        key = (client_id, topic_filter)
        if is_add:
            assert tree.add(client_id, topic_filter, f"{serial}") is (key not in model)
            model[key] = f"{serial}"
        else:
            assert tree.remove(client_id, topic_filter) is (key in model)
            model.pop(key, None)
        assert len(tree) == len(model)
    for (client_id, topic_filter), value in model.items():
        assert tree.get(client_id, topic_filter) == value
    for topic in topics:
        expected_subscribers = sorted(
            (client_id, value)
            for (client_id, topic_filter), value in model.items()
            if not topic_filter.startswith("$share/") and topic_matches(topic_filter, topic)
        )
        expected_groups: dict[tuple[str, str], dict[str, str]] = {}
        for (client_id, topic_filter), value in model.items():
            group_name, inner = parse_shared(topic_filter)
            if group_name is not None and topic_matches(inner, topic):
                expected_groups.setdefault((group_name, inner), {})[client_id] = value
        subscribers, groups = tree.match(topic)
        assert sorted(subscribers) == expected_subscribers
        assert len(groups) == len(expected_groups)
        assert {(g.name, g.topic_filter): g.members for g in groups} == expected_groups
    for client_id, topic_filter in list(model):
        assert tree.remove(client_id, topic_filter)
    assert len(tree) == 0
    assert is_pruned(tree)
