"""Wills of a node killed with SIGKILL, sent once by a surviving node; and the
cluster-wide ``$SYS/cluster/...`` counts (docs/clustering.md)."""

from __future__ import annotations

import asyncio
import functools
import os
import queue
import signal
import time
from collections.abc import Callable

import nats
import pytest
from nats.js.errors import KeyNotFoundError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from roost.cluster.wills import WILLS_BUCKET, client_token
from roost.codec import MQTT_3_1_1, MQTT_5
from tests.cluster.conftest import NodeFactory
from tests.cluster.nodes import NatsServer, leftovers, linked, real
from tests.persistence.process import BrokerProcess
from tests.support.cleanup import close_at_end
from tests.support.paho import PahoClient, prop, user_properties
from tests.support.relay import MqttRelay
from tests.support.waiting import wait_until

FAST = "node_timeout = 3"  # seconds: short, with room for a loaded machine
WILL_WAIT = 30.0  # seconds: detection, a will delay and a loaded machine


def has_record(url: str, client_id: str, node: str) -> bool:
    """Whether ``ROOST_WILLS`` holds a will of ``client_id`` recorded by ``node`` (read
    with nats-py: the stream's subjects, then the value of each)."""

    async def read() -> bool:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            prefix = f"$KV.{WILLS_BUCKET}."
            pattern = f"{prefix}{client_token(client_id)}.{node}.*"
            info = await js.stream_info(f"KV_{WILLS_BUCKET}", subjects_filter=pattern)
            kv = await js.key_value(WILLS_BUCKET)
            for subject in info.state.subjects or {}:
                try:
                    await kv.get(subject[len(prefix) :])
                except KeyNotFoundError:
                    continue
                return True
            return False
        finally:
            await nc.close()

    return asyncio.run(read())


def left_in_stream(url: str, client_id: str) -> int:
    """How many subjects of ``ROOST_WILLS``'s stream name ``client_id``, delete markers
    included (a will record deleted leaves none: its marker is purged)."""

    async def count() -> int:
        nc = await nats.connect(url)
        try:
            pattern = f"$KV.{WILLS_BUCKET}.{client_token(client_id)}.>"
            info = await nc.jetstream().stream_info(f"KV_{WILLS_BUCKET}", subjects_filter=pattern)
            return len(info.state.subjects or {})
        finally:
            await nc.close()

    return asyncio.run(count())


def wait_for_nats(predicate: Callable[[], bool]) -> None:
    """Poll a question to NATS a few times a second (not to load the server)."""
    deadline = time.monotonic() + WILL_WAIT
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.2)


def will_properties(delay: int | None = None) -> Properties:
    props = Properties(PacketTypes.WILLMESSAGE)  # type: ignore[no-untyped-call]
    props.UserProperty = [("why", "gone")]
    props.ContentType = "text/plain"
    if delay is not None:
        props.WillDelayInterval = delay
    return props


def decided(node: BrokerProcess, dead: str) -> str:
    """Wait until ``node`` has claimed ``dead``'s wills or seen another node claim them."""
    return node.wait_for(
        rf"Cluster: (sending the wills of node {dead} \(process \w+\): \d+ record"
        rf"|the wills of node {dead} \(process \w+\) are another node's)",
        timeout=WILL_WAIT,
    ).group(1)


def nothing_more(publisher: PahoClient, *subscribers: PahoClient) -> None:
    """A last message, published after everything a test waits for: each subscriber
    gets it and nothing else that it had not taken yet."""
    publisher.publish("wills/end", b"end", 1)
    for subscriber in subscribers:
        (last,) = real(subscriber, 1)
        assert (last.topic, last.payload) == ("wills/end", b"end")
        assert leftovers(subscriber) == []


@pytest.mark.parametrize("version", [MQTT_3_1_1, MQTT_5])
def test_will_of_a_killed_node_is_sent_once(
    make_node: NodeFactory, nats_server: NatsServer, version: int
) -> None:
    a, b, c = (make_node(name, cluster_extra=FAST) for name in "abc")
    on_b = PahoClient(b.port, "on-b", version)
    on_b.subscribe("wills/#", 1)
    on_c = PahoClient(c.port, "on-c", version)
    on_c.subscribe("wills/#", 1)
    from_b = PahoClient(b.port, "from-b", MQTT_5)
    from_c = PahoClient(c.port, "from-c", MQTT_5)
    linked(from_b, on_c, "wills/probe")
    linked(from_c, on_b, "wills/probe")
    will = (
        ("wills/dev", b"gone", 1)
        if version == MQTT_3_1_1
        else ("wills/dev", b"gone", 1, False, will_properties())
    )
    PahoClient(a.port, "dev", version, will=will)
    wait_for_nats(lambda: has_record(nats_server.url, "dev", "a"))

    a.kill()

    for subscriber in (on_b, on_c):
        (message,) = real(subscriber, 1, timeout=WILL_WAIT)
        assert (message.topic, message.payload, message.qos) == ("wills/dev", b"gone", 1)
        if version == MQTT_5:
            assert ("why", "gone") in user_properties(message)
            assert prop(message, "ContentType") == "text/plain"
    decisions = [decided(node, "a") for node in (b, c)]
    assert sum(d.startswith("sending") for d in decisions) == 1, decisions
    nothing_more(from_b, on_b, on_c)
    assert not has_record(nats_server.url, "dev", "a")
    assert left_in_stream(nats_server.url, "dev") == 0


def test_a_clean_disconnect_leaves_no_will_to_send(
    make_node: NodeFactory, nats_server: NatsServer
) -> None:
    a, b = make_node("a", cluster_extra=FAST), make_node("b", cluster_extra=FAST)
    on_b = PahoClient(b.port, "on-b", MQTT_5)
    on_b.subscribe("wills/#", 1)
    dev = PahoClient(a.port, "dev", MQTT_5, will=("wills/dev", b"gone", 1))
    linked(PahoClient(a.port, "from-a", MQTT_5), on_b, "wills/probe")
    wait_for_nats(lambda: has_record(nats_server.url, "dev", "a"))

    dev.disconnect()
    wait_for_nats(lambda: left_in_stream(nats_server.url, "dev") == 0)  # no marker left
    a.kill()

    b.wait_for(r"sending the wills of node a \(process \w+\): 0 record", timeout=WILL_WAIT)
    nothing_more(PahoClient(b.port, "from-b", MQTT_5), on_b)


class SysValues:
    """The latest value of each ``$SYS`` topic a paho client subscribed to."""

    def __init__(self, port: int, client_id: str, topic_filter: str) -> None:
        self.client = PahoClient(port, client_id, MQTT_5)
        self.client.subscribe(topic_filter, 0)
        self.values: dict[str, str] = {}

    def get(self, topic: str) -> str | None:
        while True:
            try:
                message = self.client.messages.get_nowait()
            except queue.Empty:
                return self.values.get(topic)
            self.values[message.topic] = message.payload.decode()

    def reaches(self, topic: str, value: str) -> None:
        wait_until(lambda: self.get(topic) == value, timeout=WILL_WAIT)


def test_a_delayed_will_counts_from_detection(
    make_node: NodeFactory, nats_server: NatsServer
) -> None:
    a, b = make_node("a", cluster_extra=FAST), make_node("b", cluster_extra=FAST)
    on_b = PahoClient(b.port, "on-b", MQTT_5)
    on_b.subscribe("wills/#", 1)
    counts = SysValues(b.port, "counts", "$SYS/broker/cluster/wills/#")
    linked(PahoClient(a.port, "from-a", MQTT_5), on_b, "wills/probe")
    PahoClient(
        a.port,
        "dev",
        MQTT_5,
        session_expiry=300,
        will=("wills/dev", b"late", 1, False, will_properties(delay=4)),
    )
    wait_for_nats(lambda: has_record(nats_server.url, "dev", "a"))

    a.kill()

    b.wait_for(r"sending the wills of node a \(process \w+\): 1 record", timeout=WILL_WAIT)
    # Held for its delay after the detection: waiting, not sent.
    counts.reaches("$SYS/broker/cluster/wills/pending", "1")
    assert counts.get("$SYS/broker/cluster/wills/published") == "0"
    (message,) = real(on_b, 1, timeout=WILL_WAIT)
    assert (message.topic, message.payload) == ("wills/dev", b"late")
    counts.reaches("$SYS/broker/cluster/wills/published", "1")
    assert counts.get("$SYS/broker/cluster/wills/pending") == "0"


@pytest.mark.parametrize("when", ["after detection", "before detection"])
def test_a_delayed_will_is_cancelled_by_a_reconnection_elsewhere(
    make_node: NodeFactory, nats_server: NatsServer, when: str
) -> None:
    a, b = make_node("a", cluster_extra=FAST), make_node("b", cluster_extra=FAST)
    on_b = PahoClient(b.port, "on-b", MQTT_5)
    on_b.subscribe("wills/#", 1)
    counts = SysValues(b.port, "counts", "$SYS/broker/cluster/wills/#")
    linked(PahoClient(a.port, "from-a", MQTT_5), on_b, "wills/probe")
    will = ("wills/dev", b"late", 1, False, will_properties(delay=4))
    PahoClient(a.port, "dev", MQTT_5, session_expiry=300, will=will)
    wait_for_nats(lambda: has_record(nats_server.url, "dev", "a"))

    a.kill()
    if when == "after detection":
        b.wait_for(r"sending the wills of node a \(process \w+\): 1 record", timeout=WILL_WAIT)
        counts.reaches("$SYS/broker/cluster/wills/pending", "1")
    PahoClient(b.port, "dev", MQTT_5, clean=False, session_expiry=300)
    if when == "after detection":
        b.wait_for(r"Will of client dev cancelled: it reconnected here")
    else:
        b.wait_for(r"Will of client dev cancelled: it reconnected on another node")
    counts.reaches("$SYS/broker/cluster/wills/cancelled", "1")
    # Past the delay: the will was not sent.
    counts.reaches("$SYS/broker/cluster/wills/pending", "0")
    assert counts.get("$SYS/broker/cluster/wills/published") == "0"
    nothing_more(PahoClient(b.port, "from-b", MQTT_5), on_b)


def test_cluster_sys_sums_the_live_nodes(make_node: NodeFactory) -> None:
    a, b = make_node("a", cluster_extra=FAST), make_node("b", cluster_extra=FAST)
    cluster = SysValues(a.port, "cluster", "$SYS/cluster/#")
    own_a = SysValues(a.port, "own-a", "$SYS/broker/messages/received")
    own_b = SysValues(b.port, "own-b", "$SYS/broker/messages/received")
    on_b = [PahoClient(b.port, f"on-b-{i}", MQTT_5) for i in range(2)]
    on_b[0].subscribe("count/#", 1)
    on_b[0].publish("count/b", b"1", 1)
    on_b[0].publish("count/b", b"2", 1)
    PahoClient(a.port, "on-a", MQTT_5).publish("count/a", b"3", 1)

    # Clients: cluster, own-a and on-a on a; own-b and two on b.
    cluster.reaches("$SYS/cluster/nodes", "2")
    cluster.reaches("$SYS/cluster/clients/connected", "6")
    # Subscriptions: the three $SYS watchers and count/#.
    cluster.reaches("$SYS/cluster/subscriptions/count", "4")

    def received_summed() -> bool:
        mine, theirs = (
            own_a.get("$SYS/broker/messages/received"),
            own_b.get("$SYS/broker/messages/received"),
        )
        total = cluster.get("$SYS/cluster/messages/received")
        return (
            mine is not None
            and theirs is not None
            and int(theirs) >= 2
            and total == str(int(mine) + int(theirs))
        )

    wait_until(received_summed, timeout=WILL_WAIT)

    b.kill()

    cluster.reaches("$SYS/cluster/nodes", "1")
    cluster.reaches("$SYS/cluster/clients/connected", "3")
    cluster.reaches("$SYS/cluster/subscriptions/count", "2")
    received_on_a = own_a.get("$SYS/broker/messages/received")
    assert received_on_a is not None
    cluster.reaches("$SYS/cluster/messages/received", received_on_a)


def test_a_killed_node_restarted_does_not_send_its_wills_again(
    make_node: NodeFactory, nats_server: NatsServer
) -> None:
    a, b = make_node("a", cluster_extra=FAST), make_node("b", cluster_extra=FAST)
    on_b = PahoClient(b.port, "on-b", MQTT_5)
    on_b.subscribe("wills/#", 1)
    linked(PahoClient(a.port, "from-a", MQTT_5), on_b, "wills/probe")
    will = ("wills/dev", b"gone", 1)
    dev = PahoClient(a.port, "dev", MQTT_5, clean=False, session_expiry=300, will=will)
    # The CONNACK does not wait for the store; a SUBACK does: from here the session
    # is on a's disk, so the restart below finds it.
    dev.subscribe("dev/own", 1)
    wait_for_nats(lambda: has_record(nats_server.url, "dev", "a"))

    a.kill()
    (message,) = real(on_b, 1, timeout=WILL_WAIT)
    assert (message.topic, message.payload) == ("wills/dev", b"gone")

    # Same name, same store: the session comes back, with the will b has sent already.
    again = make_node("a", cluster_extra=FAST)
    again.wait_for(r"Restored 1 sessions")
    uptime = SysValues(again.port, "uptime", "$SYS/broker/uptime")

    def swept() -> bool:  # the broker's sweep (every 0.5 s) has had its turns
        value = uptime.get("$SYS/broker/uptime")
        return value is not None and int(value.split()[0]) >= 2

    wait_until(swept, timeout=WILL_WAIT)
    from_again = PahoClient(again.port, "from-again", MQTT_5)
    linked(from_again, on_b, "wills/probe")
    nothing_more(from_again, on_b)


def test_a_clean_start_elsewhere_ends_the_session_and_sends_its_delayed_will(
    make_node: NodeFactory, nats_server: NatsServer
) -> None:
    a, b = make_node("a", cluster_extra=FAST), make_node("b", cluster_extra=FAST)
    on_b = PahoClient(b.port, "on-b", MQTT_5)
    on_b.subscribe("wills/#", 1)
    linked(PahoClient(a.port, "from-a", MQTT_5), on_b, "wills/probe")
    # A delay far longer than the test: only the new session's Clean Start can send it.
    will = ("wills/dev", b"ended", 1, False, will_properties(delay=600))
    PahoClient(a.port, "dev", MQTT_5, session_expiry=900, will=will)
    wait_for_nats(lambda: has_record(nats_server.url, "dev", "a"))

    a.kill()
    b.wait_for(r"sending the wills of node a \(process \w+\): 1 record", timeout=WILL_WAIT)
    PahoClient(b.port, "dev", MQTT_5, clean=True)

    (message,) = real(on_b, 1, timeout=WILL_WAIT)
    assert (message.topic, message.payload) == ("wills/dev", b"ended")
    b.wait_for(r"sending the will of client dev \(its session ended\)")
    nothing_more(PahoClient(b.port, "from-b", MQTT_5), on_b)


def test_nats_away_longer_than_the_timeout_kills_nobody(
    make_node: NodeFactory, nats_server: NatsServer
) -> None:
    a, b = make_node("a", cluster_extra=FAST), make_node("b", cluster_extra=FAST)
    on_b = PahoClient(b.port, "on-b", MQTT_5)
    on_b.subscribe("wills/#", 1)
    from_a = PahoClient(a.port, "from-a", MQTT_5)
    linked(from_a, on_b, "wills/probe")
    PahoClient(a.port, "dev", MQTT_5, will=("wills/dev", b"gone", 1))
    wait_for_nats(lambda: has_record(nats_server.url, "dev", "a"))
    uptime = SysValues(b.port, "uptime", "$SYS/broker/uptime")

    def seconds() -> int:
        value = uptime.get("$SYS/broker/uptime")
        return 0 if value is None else int(value.split()[0])

    def past(limit: int) -> None:
        wait_until(lambda: seconds() >= limit, timeout=WILL_WAIT)

    nats_server.kill()
    a.wait_for(r"Cluster node a: lost NATS")
    b.wait_for(r"Cluster node b: lost NATS")
    past(seconds() + 5)  # longer than node_timeout (3 s)
    nats_server.start()
    a.wait_for(r"Cluster node a: connected to NATS", timeout=WILL_WAIT)
    b.wait_for(r"Cluster node b: connected to NATS", timeout=WILL_WAIT)
    past(seconds() + 5)  # and again, with NATS back

    linked(from_a, on_b, "wills/probe")
    nothing_more(from_a, on_b)
    assert "taken for dead" not in a.log + b.log


def back_after_being_taken_for_dead(
    a: BrokerProcess,
    b: BrokerProcess,
    on_b: PahoClient,
    taken: list[PahoClient],
    late: PahoClient,
    url: str,
) -> None:
    """Node a, taken for dead by b, is back: it ends the connections of the clients
    whose wills b sent (``taken``; MQTT 5: DISCONNECT 0x80) and no other, b does not
    send the delayed will of ``late`` (a is back), and a's real death later does."""
    a.wait_for(
        rf"this node was taken for dead; the wills of {len(taken)} connected client",
        timeout=WILL_WAIT,
    )
    for client in taken:
        assert client.disconnected.wait(WILL_WAIT)
        if client.version == MQTT_5:
            assert client.disconnect_reason.value == 0x80
    # The delayed will, due 10 s after the detection, is not sent: a is back.
    b.wait_for(r"node a \(process \w+\) is back: its remaining wills", timeout=WILL_WAIT)
    assert not late.disconnected.is_set()
    from_b = PahoClient(b.port, "from-b", MQTT_5)
    nothing_more(from_b, on_b)  # no second copy of a taken will, no late one
    # Written again once a knew which wills went out: a's real death sends the late will.
    wait_for_nats(functools.partial(has_record, url, "late", "a"))
    a.kill()
    (message,) = real(on_b, 1, timeout=WILL_WAIT)
    assert (message.topic, message.payload) == ("wills/late", b"late")
    nothing_more(from_b, on_b)


def test_a_node_taken_for_dead_while_paused_ends_the_connections_whose_wills_went_out(
    make_node: NodeFactory, nats_server: NatsServer
) -> None:
    """A node paused (SIGSTOP) longer than node_timeout is taken for dead and its
    clients' wills go out, though the clients are still connected to it. Back, it ends
    exactly those connections (MQTT 5: DISCONNECT 0x80), without a second will; a
    delayed will not yet due stays its own (not sent, the client stays connected), and
    a later real death of the node is reaped again."""
    a, b = make_node("a", cluster_extra=FAST), make_node("b", cluster_extra=FAST)
    on_b = PahoClient(b.port, "on-b", MQTT_5)
    on_b.subscribe("wills/#", 1)
    linked(PahoClient(a.port, "from-a", MQTT_5), on_b, "wills/probe")
    dev5 = PahoClient(a.port, "dev5", MQTT_5, will=("wills/dev5", b"gone", 1))
    dev3 = PahoClient(a.port, "dev3", MQTT_3_1_1, will=("wills/dev3", b"gone", 1))
    late_will = ("wills/late", b"late", 1, False, will_properties(delay=10))
    late = PahoClient(a.port, "late", MQTT_5, session_expiry=300, will=late_will)
    for client_id in ("dev5", "dev3", "late"):
        wait_for_nats(functools.partial(has_record, nats_server.url, client_id, "a"))

    os.kill(a.proc.pid, signal.SIGSTOP)
    try:
        b.wait_for(r"sending the wills of node a \(process \w+\): 3 record", timeout=WILL_WAIT)
        wills = sorted(m.topic for m in real(on_b, 2, timeout=WILL_WAIT))
    finally:
        os.kill(a.proc.pid, signal.SIGCONT)
    assert wills == ["wills/dev3", "wills/dev5"]

    back_after_being_taken_for_dead(a, b, on_b, [dev5, dev3], late, nats_server.url)


def test_a_node_cut_off_from_nats_and_taken_for_dead_ends_the_connections_whose_wills_went_out(
    make_node: NodeFactory, nats_server: NatsServer
) -> None:
    """The same after a reconnection: node a reaches NATS through a relay that is cut
    (a network partition between a and NATS, b unaffected). Back, a writes its will
    records again only once it knows which wills went out."""
    relay = MqttRelay(nats_server.port, raw=True)
    close_at_end(relay.close)
    a = make_node("a", nats_url=f"nats://127.0.0.1:{relay.port}", cluster_extra=FAST)
    b = make_node("b", cluster_extra=FAST)
    on_b = PahoClient(b.port, "on-b", MQTT_5)
    on_b.subscribe("wills/#", 1)
    linked(PahoClient(a.port, "from-a", MQTT_5), on_b, "wills/probe")
    dev = PahoClient(a.port, "dev", MQTT_3_1_1, will=("wills/dev", b"gone", 1))
    late_will = ("wills/late", b"late", 1, False, will_properties(delay=10))
    late = PahoClient(a.port, "late", MQTT_5, session_expiry=300, will=late_will)
    for client_id in ("dev", "late"):
        wait_for_nats(functools.partial(has_record, nats_server.url, client_id, "a"))

    relay.refusing = True
    relay.cut()
    a.wait_for(r"Cluster node a: lost NATS")
    b.wait_for(r"sending the wills of node a \(process \w+\): 2 record", timeout=WILL_WAIT)
    (message,) = real(on_b, 1, timeout=WILL_WAIT)
    assert (message.topic, message.payload) == ("wills/dev", b"gone")
    relay.refusing = False

    back_after_being_taken_for_dead(a, b, on_b, [dev], late, nats_server.url)


def test_the_delayed_wills_of_a_reaper_that_dies_are_sent_by_another_node(
    make_node: NodeFactory, nats_server: NatsServer
) -> None:
    a, b, c = (make_node(name, cluster_extra=FAST) for name in "abc")
    watchers = {}
    for node in (b, c):
        watcher = PahoClient(node.port, f"on-{node.port}", MQTT_5)
        watcher.subscribe("wills/#", 1)
        watchers[node] = watcher
    linked(PahoClient(b.port, "from-b", MQTT_5), watchers[c], "wills/probe")
    linked(PahoClient(c.port, "from-c", MQTT_5), watchers[b], "wills/probe")
    will = ("wills/dev", b"late", 1, False, will_properties(delay=8))
    PahoClient(a.port, "dev", MQTT_5, session_expiry=300, will=will)
    wait_for_nats(lambda: has_record(nats_server.url, "dev", "a"))

    a.kill()
    decisions = {node: decided(node, "a") for node in (b, c)}
    (reaper,) = (node for node, d in decisions.items() if d.startswith("sending"))
    (survivor,) = (node for node in (b, c) if node is not reaper)
    reaper.kill()  # before the will's 8 s delay is over

    survivor.wait_for(r"died while sending the wills of node a \(process \w+\): taking them over")
    (message,) = real(watchers[survivor], 1, timeout=WILL_WAIT)
    assert (message.topic, message.payload) == ("wills/dev", b"late")
    from_survivor = PahoClient(survivor.port, "from-survivor", MQTT_5)
    linked(from_survivor, watchers[survivor], "wills/probe")
    nothing_more(from_survivor, watchers[survivor])
    assert left_in_stream(nats_server.url, "dev") == 0
