"""Auth plugins loaded by dotted path: authenticate, authorize (plain and async), caching."""

from __future__ import annotations

import select
from collections.abc import Callable
from pathlib import Path

import pytest

from roost.broker.auth.access import CACHE_SIZE, ClientAccess
from roost.broker.auth.base import Access, ClientInfo
from roost.broker.auth.manager import AuthSetupError
from roost.broker.auth.password_file import PasswordFile
from roost.broker.auth.plugins import PluginError, load_plugin
from roost.broker.config import BrokerConfig
from roost.broker.server import Broker
from roost.codec import (
    MQTT_5,
    Connack,
    Pingreq,
    Pingresp,
    Puback,
    Publish,
    Suback,
    Subscribe,
    Subscription,
)
from tests.auth import plugins
from tests.support.broker_thread import BrokerThread
from tests.support.raw import RawClient, open_client, publishes, settle, sync
from tests.support.waiting import wait_until

MakeBroker = Callable[..., BrokerThread]

ALLOW_LIST = "tests.auth.plugins:AllowList"
OPTIONS = {"users": ["alice", "root"], "admins": ["root"], "password": "shared"}


def connect(
    port: int, client_id: str, username: str | None = None, password: bytes | None = None
) -> tuple[RawClient, Connack]:
    client = open_client(port, MQTT_5)
    connack = client.connect(client_id, username=username, password=password)
    assert isinstance(connack, Connack)
    return client, connack


def plugin_of(broker: BrokerThread) -> object:
    return broker.broker.auth.plugin


# -- loading --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["tests.auth.plugins:AllowList", "tests.auth.plugins.AllowList"])
def test_a_class_is_made_with_the_options(path: str) -> None:
    plugin = load_plugin(path, {"users": ["a"], "password": "p"})
    assert isinstance(plugin, plugins.AllowList)
    assert plugin.users == {"a"}


def test_an_object_is_used_as_it_is() -> None:
    assert load_plugin("tests.auth.plugins:instance") is plugins.instance


@pytest.mark.parametrize(
    ("path", "options", "problem"),
    [
        ("tests.auth.nothing_here:X", None, "cannot import 'tests.auth.nothing_here'"),
        ("tests.auth.plugins:Missing", None, "has no 'Missing'"),
        ("plugins", None, "expected MODULE:ATTRIBUTE"),
        ("tests.auth.plugins:instance", {"a": 1}, "cannot take auth_plugin_options"),
        ("tests.auth.plugins:not_a_plugin", None, "none of the methods"),
    ],
)
def test_loading_problems_are_explained(
    path: str, options: dict[str, object] | None, problem: str
) -> None:
    with pytest.raises(PluginError, match=problem):
        load_plugin(path, options)


def test_a_broker_with_a_broken_plugin_path_does_not_start() -> None:
    with pytest.raises(AuthSetupError, match="has no 'Nope'"):
        Broker(BrokerConfig(auth_plugin="tests.auth.plugins:Nope", persistence="memory"))


# -- authentication ---------------------------------------------------------------------------


def test_the_plugin_authenticates_its_users_and_leaves_others_to_the_password_file(
    make_broker: MakeBroker, tmp_path: Path
) -> None:
    passwords = PasswordFile()
    passwords.set("bob", "builder")
    path = tmp_path / "passwords"
    passwords.save(path)
    broker = make_broker(
        password_file=str(path), auth_plugin=ALLOW_LIST, auth_plugin_options=OPTIONS
    )
    assert connect(broker.port, "c1", "alice", b"shared")[1].reason_code == 0
    wrong = connect(broker.port, "c2", "alice", b"nope")[1]
    assert (wrong.reason_code, wrong.reason_string) == (0x86, "wrong shared password")
    assert connect(broker.port, "c3", "bob", b"builder")[1].reason_code == 0
    assert connect(broker.port, "c4", "bob", b"shared")[1].reason_code == 0x86
    assert connect(broker.port, "c5", "mallory", b"shared")[1].reason_code == 0x86
    assert connect(broker.port, "c6")[1].reason_code == 0  # anonymous: plugin passes


def test_authorize_sees_the_attributes_authenticate_gave(make_broker: MakeBroker) -> None:
    broker = make_broker(auth_plugin=ALLOW_LIST, auth_plugin_options=OPTIONS)
    alice, _ = connect(broker.port, "alice-1", "alice", b"shared")
    root, _ = connect(broker.port, "root-1", "root", b"shared")
    alice.send(Subscribe(1, (Subscription("alice/#", 0), Subscription("root/#", 0))))
    assert alice.recv() == Suback(1, (0, 0x87))
    alice.send(Publish("root/inbox", b"x", 1, packet_id=1))
    assert alice.recv() == Puback(1, 0x87)
    root.send(Publish("alice/inbox", b"from root", 1, packet_id=1))  # an admin: anything
    assert root.recv() == Puback(1)
    [received] = settle(root, alice)
    assert [p.payload for p in publishes(received)] == [b"from root"]


def test_each_question_reaches_the_plugin_once_per_client_and_topic(
    make_broker: MakeBroker,
) -> None:
    broker = make_broker(auth_plugin=ALLOW_LIST, auth_plugin_options=OPTIONS)
    alice, _ = connect(broker.port, "alice-1", "alice", b"shared")
    alice.send(Subscribe(1, (Subscription("alice/#", 0),)))
    assert alice.recv() == Suback(1, (0,))
    for _ in range(20):
        alice.send(Publish("alice/a", b"x", 0))
        alice.send(Publish("alice/b", b"x", 0))
    assert len(publishes(sync(alice))) == 40
    plugin = plugin_of(broker)
    assert isinstance(plugin, plugins.AllowList)
    calls = broker.call(lambda: sorted(plugin.authorize_calls))
    assert calls == [
        ("alice-1", Access.READ, "alice/a"),
        ("alice-1", Access.READ, "alice/b"),
        ("alice-1", Access.SUBSCRIBE, "alice/#"),
        ("alice-1", Access.WRITE, "alice/a"),
        ("alice-1", Access.WRITE, "alice/b"),
    ]


def test_reload_reaches_the_plugin(make_broker: MakeBroker) -> None:
    broker = make_broker(auth_plugin=ALLOW_LIST, auth_plugin_options=OPTIONS)
    broker.call(broker.broker.reload)
    plugin = plugin_of(broker)
    assert isinstance(plugin, plugins.AllowList)
    assert plugin.reloads == 1


def test_a_failing_plugin_refuses_rather_than_allows(make_broker: MakeBroker) -> None:
    broker = make_broker(auth_plugin="tests.auth.plugins:Broken")
    refused = connect(broker.port, "c1", "alice", b"x")[1]
    assert refused.reason_code == 0x88  # server unavailable: try again later
    _client, connack = connect(broker.port, "c2")  # anonymous: authenticate still raises
    assert connack.reason_code == 0x88


def test_a_failing_authorize_denies(make_broker: MakeBroker, tmp_path: Path) -> None:
    passwords = PasswordFile()
    passwords.set("bob", "builder")
    path = tmp_path / "passwords"
    passwords.save(path)
    # Broken's authenticate fails, but the password file decides for bob first.
    broker = make_broker(password_file=str(path), auth_plugin="tests.auth.plugins:Broken")
    bob, connack = connect(broker.port, "c1", "bob", b"builder")
    assert connack.reason_code == 0
    bob.send(Publish("a", b"x", 1, packet_id=1))
    assert bob.recv() == Puback(1, 0x87)


# -- an asynchronous authorize ------------------------------------------------------------------


GATE = "tests.auth.plugins:Gate"


def gate_of(broker: BrokerThread) -> plugins.Gate:
    plugin = plugin_of(broker)
    assert isinstance(plugin, plugins.Gate)
    return plugin


def test_packets_wait_in_order_behind_an_async_answer(make_broker: MakeBroker) -> None:
    broker = make_broker(auth_plugin=GATE, auth_plugin_options={"allowed": ["ok"]})
    gate = gate_of(broker)
    client, _ = connect(broker.port, "c1")
    client.send(Publish("ok/1", b"x", 1, packet_id=1))
    client.send(Publish("no/2", b"x", 1, packet_id=2))
    client.send(Pingreq())
    wait_until(lambda: broker.call(lambda: list(gate.calls)) == [(Access.WRITE, "ok/1")])
    # The broker waits for the first answer and has not looked at the later packets.
    assert select.select([client.sock], [], [], 0)[0] == []
    # Other clients are served meanwhile.
    other, connack = connect(broker.port, "c2")
    assert connack.reason_code == 0
    assert sync(other) == []
    broker.call(gate.open)
    assert [client.recv(), client.recv(), client.recv()] == [
        Puback(1, 0x10),
        Puback(2, 0x87),
        Pingresp(),
    ]
    assert broker.call(lambda: list(gate.calls)) == [(Access.WRITE, "ok/1"), (Access.WRITE, "no/2")]


def test_a_publish_held_for_an_async_answer_counts_once_against_the_publish_rate(
    make_broker: MakeBroker,
) -> None:
    """The PUBLISH is handled again once the answer comes; max_publish_rate (here one
    message, then one per 1000 s) must not count it twice and disconnect the client."""
    broker = make_broker(
        auth_plugin=GATE, auth_plugin_options={"allowed": ["ok"]}, max_publish_rate=0.001
    )
    gate = gate_of(broker)
    client, _ = connect(broker.port, "once")
    client.send(Publish("ok/1", b"x", 1, packet_id=1))
    wait_until(lambda: broker.call(lambda: list(gate.calls)) == [(Access.WRITE, "ok/1")])
    broker.call(gate.open)
    assert client.recv() == Puback(1, 0x10)


def test_deliveries_wait_for_an_async_read_answer_and_keep_their_order(
    make_broker: MakeBroker,
) -> None:
    # May publish to no/..., may not read it.
    options = {"allowed": ["ok", "#", "no"], "unreadable": ["no"], "gated": ["read"]}
    broker = make_broker(auth_plugin=GATE, auth_plugin_options=options)
    gate = gate_of(broker)
    subscriber, _ = connect(broker.port, "sub")
    subscriber.send(Subscribe(1, (Subscription("#", 1),)))
    assert subscriber.recv() == Suback(1, (1,))
    publisher, _ = connect(broker.port, "pub")
    for index in range(3):
        publisher.send(Publish("ok/a", str(index).encode(), 0))
        publisher.send(Publish("no/b", str(index).encode(), 0))
    wait_until(lambda: broker.call(lambda: (Access.READ, "no/b") in gate.calls))
    # Routed, but held for the answers: nothing delivered yet.
    assert select.select([subscriber.sock], [], [], 0)[0] == []
    broker.call(gate.open)
    [received] = settle(publisher, subscriber)
    assert [(p.topic, p.payload) for p in publishes(received)] == [
        ("ok/a", b"0"),
        ("ok/a", b"1"),
        ("ok/a", b"2"),
    ]


# -- the per-client cache -----------------------------------------------------------------------


def test_the_cache_is_bounded_and_forgets_the_least_recently_used() -> None:
    asked: list[str] = []

    def authorize(client: ClientInfo, access: Access, topic: str) -> bool:
        asked.append(topic)
        return True

    access = ClientAccess(ClientInfo("c", None), None, authorize, lambda topic: False)
    for index in range(CACHE_SIZE):
        assert access.may_write(f"t/{index}") is True
    assert access.may_write("t/0") is True  # cached, and now the most recently used
    assert len(asked) == CACHE_SIZE
    assert access.may_write("t/new") is True  # evicts t/1, the least recently used
    assert access.may_write("t/0") is True
    assert len(asked) == CACHE_SIZE + 1
    assert access.may_write("t/1") is True
    assert asked[-1] == "t/1"
    assert access.cached() == CACHE_SIZE
