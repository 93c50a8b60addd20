"""The cluster's pure parts: topic <-> subject mapping, the envelope, the seen-window,
and the [cluster] configuration section."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roost.broker.config import BrokerConfig, ClusterConfig, ConfigError, config_from_mapping
from roost.broker.core import BrokerCore
from roost.broker.message import Message
from roost.broker.records import SubscriptionRecord
from roost.cluster import ClusterNode, envelope, subjects
from roost.cluster.envelope import WINDOW, SeenWindow
from roost.cluster.interest import InterestTable
from roost.cluster.share_stream import group_subject
from roost.protocol.topics import topic_matches

P = subjects.MESSAGES


@pytest.mark.parametrize(
    ("topic", "subject"),
    [
        ("a/b", "roost.m.a.b"),
        ("a.b/c", "roost.m.a%2Eb.c"),
        ("/a", "roost.m.%.a"),
        ("a/", "roost.m.a.%"),
        ("a//b", "roost.m.a.%.b"),
        ("/", "roost.m.%.%"),
        ("a b", "roost.m.a%20b"),
        ("*/>", "roost.m.%2A.%3E"),
        ("100%", "roost.m.100%25"),
        ("$SYS/x", "roost.m.$SYS.x"),
        ("é", "roost.m.%C3%A9"),
    ],
)
def test_topic_to_subject(topic: str, subject: str) -> None:
    assert subjects.topic_subject(P, topic) == subject
    assert subjects.subject_topic(P, subject) == topic


@pytest.mark.parametrize(
    ("topic_filter", "expected"),
    [
        ("a/b", ("roost.m.a.b",)),
        ("a/+/c", ("roost.m.a.*.c",)),
        ("a/#", ("roost.m.a.>", "roost.m.a")),
        ("#", ("roost.m.>",)),
        ("+/#", ("roost.m.*.>", "roost.m.*")),
        ("$share/g/a/+", ("roost.m.a.*",)),
        ("a.b/#", ("roost.m.a%2Eb.>", "roost.m.a%2Eb")),
        ("/+", ("roost.m.%.*",)),
    ],
)
def test_filter_to_subjects(topic_filter: str, expected: tuple[str, ...]) -> None:
    assert subjects.filter_subjects(P, topic_filter) == expected


def test_too_long_topics_and_filters_have_no_subject() -> None:
    assert subjects.topic_subject(P, "x" * 4000) is None
    assert subjects.filter_subjects(P, "x" * 4000 + "/#") == ()


def nats_matches(pattern: str, subject: str) -> bool:
    """NATS's own rule: '*' one token, '>' one or more at the end."""
    pattern_tokens, tokens = pattern.split("."), subject.split(".")
    for index, wanted in enumerate(pattern_tokens):
        if wanted == ">":
            return len(tokens) > index
        if index >= len(tokens) or (wanted not in ("*", tokens[index])):
            return False
    return len(tokens) == len(pattern_tokens)


LEVEL = st.text(alphabet=st.sampled_from("ab.*> %/é\t"), max_size=3).map(
    lambda s: s.replace("/", "")
)
TOPIC = st.lists(LEVEL, min_size=1, max_size=4).map("/".join).filter(bool)
FILTER_LEVEL = st.one_of(LEVEL, st.just("+"))
FILTER = st.tuples(st.lists(FILTER_LEVEL, min_size=1, max_size=3), st.booleans()).map(
    lambda parts: "/".join([*parts[0], "#"] if parts[1] else parts[0])
)


@given(TOPIC, TOPIC)
def test_distinct_topics_have_distinct_subjects_made_of_literal_tokens(a: str, b: str) -> None:
    subject_a = subjects.topic_subject(P, a)
    assert subject_a is not None
    assert subjects.subject_topic(P, subject_a) == a
    tokens = subject_a.split(".")
    assert all(token and token not in ("*", ">") and " " not in token for token in tokens)
    if a != b:
        assert subjects.topic_subject(P, b) != subject_a


@given(FILTER, TOPIC)
def test_a_filter_subscribes_to_exactly_the_topics_it_matches(
    topic_filter: str, topic: str
) -> None:
    subject = subjects.topic_subject(P, topic)
    assert subject is not None
    by_nats = any(nats_matches(s, subject) for s in subjects.filter_subjects(P, topic_filter))
    # NATS may deliver a '$' topic to '#' or '+': the receiving router applies that rule.
    assert by_nats == (topic_matches(topic_filter, topic) or topic.startswith("$"))


def test_the_envelope_carries_the_message_and_its_origin() -> None:
    message = Message(
        "a/b",
        b"payload",
        2,
        True,
        "client",
        expires_at=100.0,
        content_type="text/plain",
        user_properties=(("k", "v"),),
    )
    data = envelope.encode(b"node/1234", 42, message, now=40.0)
    origin, seq, offset = envelope.header(data)
    assert (origin, seq) == (b"node/1234", 42)
    got = envelope.message(data, offset, now=1000.0)
    assert (got.topic, got.payload, got.qos, got.retain) == ("a/b", b"payload", 2, True)
    assert got.sender is None  # another node's client: never "this client" here
    assert got.expires_at == 1060.0  # 60 s were left when it was sent
    assert (got.content_type, got.user_properties) == ("text/plain", (("k", "v"),))


def test_a_message_without_properties_travels_in_the_plain_format() -> None:
    data = envelope.encode(b"n/1", 7, Message("a/é", b"\x00bin", 1, False), now=0.0)
    assert data[0] == envelope.PLAIN
    _origin, seq, offset = envelope.header(data)
    got = envelope.message(data, offset, now=5.0)
    assert (seq, got.topic, got.payload, got.qos, got.retain) == (7, "a/é", b"\x00bin", 1, False)
    assert got.expires_at is None


@pytest.mark.parametrize("data", [b"", b"\x03" + b"\x00" * 20])
def test_what_is_not_an_envelope_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match="not a Roost cluster envelope"):
        envelope.header(data)


@pytest.mark.parametrize(
    "data",
    [
        b"\x01\x00" + b"\x00" * 8 + b"\x30",  # a PUBLISH cut short
        b"\x02\x00" + b"\x00" * 8 + b"\x00\x00\x09ab",  # a topic cut short
        b"\x02\x00" + b"\x00" * 8 + b"\x07\x00\x01a",  # QoS 3
        b"\x02\x00" + b"\x00" * 8 + b"\x00\x00\x01\xff",  # not UTF-8
    ],
)
def test_an_envelope_without_a_whole_message_is_refused(data: bytes) -> None:
    _origin, _seq, offset = envelope.header(data)
    with pytest.raises(ValueError, match="envelope"):
        envelope.message(data, offset, 0.0)


def test_the_seen_window_delivers_each_number_once() -> None:
    window = SeenWindow()
    assert [window.first_time(n) for n in (1, 2, 1, 3, 2, 3)] == [
        True,
        True,
        False,
        True,
        False,
        False,
    ]
    # A copy arriving after its first, overtaken by later numbers: still a copy.
    assert window.first_time(WINDOW + 2)
    assert not window.first_time(WINDOW + 2)
    assert window.first_time(5)  # not seen, within the window
    # Older than the window: cannot be told apart, so dropped and counted.
    window.first_time(3 * WINDOW)
    assert not window.first_time(WINDOW + 3)
    assert window.too_old == 1


def test_cluster_config() -> None:
    assert config_from_mapping({}).cluster is None
    config = config_from_mapping({"cluster": {"nats_url": "nats://10.0.0.5:4222"}})
    assert config.cluster == ClusterConfig(nats_url=["nats://10.0.0.5:4222"], node=None)
    config = config_from_mapping(
        {"cluster": {"nats_url": ["nats://a:4222", "tls://b:4222"], "node": "edge-a"}}
    )
    assert config.cluster == ClusterConfig(["nats://a:4222", "tls://b:4222"], "edge-a")
    assert config.cluster.replicas == 1
    config = config_from_mapping({"cluster": {"replicas": 3}})
    assert config.cluster is not None
    assert config.cluster.replicas == 3


@pytest.mark.parametrize(
    ("section", "error"),
    [
        ({"nats_url": "http://x"}, r"cluster\.nats_url\[0\]: expected a URL starting with nats://"),
        ({"nats_url": []}, r"cluster\.nats_url: expected a string or a non-empty array"),
        ({"nats_url": 4222}, r"cluster\.nats_url: expected a string or a non-empty array"),
        ({"nats_url": "nats://"}, r"cluster\.nats_url\[0\]: expected a host"),
        ({"nats_url": "nats://h:70000"}, r"cluster\.nats_url\[0\]: the port is not a number"),
        ({"node": "edge.a"}, r"cluster\.node: only letters, digits"),
        ({"node": ""}, r"cluster\.node: expected a string of 1 to 64|cluster\.node: expected"),
        ({"nodes": "a"}, r'cluster\.nodes: unknown key; did you mean "node"\?'),
        ({"replicas": 0}, r"cluster\.replicas: expected an integer from 1 to 5"),
        ({"replicas": "3"}, r"cluster\.replicas: expected an integer"),
    ],
)
def test_cluster_config_errors(section: dict[str, object], error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        config_from_mapping({"cluster": section})


def test_cluster_must_be_a_table() -> None:
    with pytest.raises(ConfigError, match="cluster: expected a table"):
        config_from_mapping({"cluster": "nats://x:4222"})


def make_cluster_node() -> ClusterNode:
    return ClusterNode(BrokerCore(BrokerConfig()), ClusterConfig(node="here"), 0)


def test_filters_are_counted_per_local_subscription() -> None:
    node = make_cluster_node()
    router = node._router
    assert router.peers is node
    router.subscribe("c1", SubscriptionRecord("c1", "a/#", 1))
    router.subscribe("c1", SubscriptionRecord("c1", "a/#", 0))  # replaced: not counted again
    router.subscribe("c2", SubscriptionRecord("c2", "a/#", 1))
    # Shared groups are counted apart: they become NATS queue groups.
    router.subscribe("c2", SubscriptionRecord("c2", "$share/g/a/#", 1, share_group="g"))
    assert node.filters == {"a/#": 2}
    assert node.shares.members == {"$share/g/a/#": 1}
    router.unsubscribe("c1", "a/#")
    assert node.filters == {"a/#": 1}
    router.drop_client("c2", ["a/#", "$share/g/a/#"], [], 0.0)
    assert node.filters == {}
    assert node.shares.members == {}
    # Their NATS subscriptions go at the next pump turn.
    assert node._dirty == {"a/#", "$share/g/a/#"}


def test_a_restarted_node_replaces_its_earlier_window() -> None:
    node = make_cluster_node()
    node.inbound._new_origin(b"a/1111")
    node.inbound._new_origin(b"ab/2222")
    node.inbound._new_origin(b"a/3333")
    assert set(node.inbound._seen) == {b"ab/2222", b"a/3333"}


class _Record:
    """What ``InterestTable.apply`` reads of a NATS message."""

    def __init__(self, subject: str, data: bytes) -> None:
        self.subject = subject
        self.data = data
        self.headers: dict[str, str] | None = None


def test_the_interest_table_names_the_other_nodes_shared_groups_a_topic_matches() -> None:
    table = InterestTable("here")
    records = {
        "roost.i.b.1": b"$share/g/a/#",
        "roost.i.c.1": b"$share/g/a/#",  # the same group on another node: named once
        "roost.i.c.2": b"$share/h/a/+",
        "roost.i.c.3": b"a/#",  # plain: not a group
        "roost.i.here.1": b"$share/mine/a/#",  # this node's own record: ignored
    }
    for subject, data in records.items():
        table.apply(_Record(subject, data))  # type: ignore[arg-type]
    assert sorted(table.shared_filters("a/x")) == ["$share/g/a/#", "$share/h/a/+"]
    assert table.shared_filters("a") == ["$share/g/a/#"]
    assert table.shared_filters("b/x") == []
    table.apply(_Record("roost.i.c.2", b""))  # type: ignore[arg-type]  # node c leaves h
    assert table.shared_filters("a/x") == ["$share/g/a/#"]
    # Each group its own subject in ROOST_SHARES, the same on every node.
    assert group_subject("$share/g/a/#") != group_subject("$share/h/a/#")
    assert group_subject("$share/g/a/#") == group_subject("$share/g/a/#")
