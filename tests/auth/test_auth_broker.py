"""Password and ACL files in a running broker, over real sockets; reload and SIGHUP."""

from __future__ import annotations

import base64
import hashlib
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from roost.broker.auth.manager import AuthSetupError
from roost.broker.auth.password_file import PasswordFile
from roost.broker.config import BrokerConfig
from roost.broker.server import Broker
from roost.codec import (
    MQTT_3_1_1,
    MQTT_5,
    Connack,
    Connect,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Subscription,
)
from roost.codec.packets import Pingreq, Pingresp
from tests.auth.real_mosquitto import mosquitto_passwd, needs_mosquitto_passwd
from tests.support.broker_thread import BrokerThread
from tests.support.raw import RawClient, open_client, publishes, settle, sync

MakeBroker = Callable[..., BrokerThread]
VERSIONS = [MQTT_3_1_1, MQTT_5]


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    passwords = PasswordFile()
    passwords.set("alice", "wonderland")
    passwords.set("bob", "builder")
    passwords.set("admin", "root")
    path = tmp_path / "passwords"
    passwords.save(path)
    return path


def acl(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "acl"
    path.write_text(text)
    return path


def login(
    port: int, version: int, client_id: str, username: str | None, password: str | None
) -> Connack:
    client = open_client(port, version)
    fields: dict[str, object] = {"username": username}
    if password is not None:
        fields["password"] = password.encode()
    connack = client.connect(client_id, **fields)
    assert isinstance(connack, Connack)
    if connack.reason_code:
        assert client.expect_closed() == []
    return connack


def user(port: int, version: int, client_id: str, username: str, password: str) -> RawClient:
    client = open_client(port, version)
    connack = client.connect(client_id, username=username, password=password.encode())
    assert isinstance(connack, Connack)
    assert connack.reason_code == 0, connack
    return client


# -- authentication -----------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_the_right_password_lets_a_user_in(
    make_broker: MakeBroker, password_file: Path, version: int
) -> None:
    broker = make_broker(password_file=str(password_file))
    assert login(broker.port, version, "c1", "alice", "wonderland").reason_code == 0


@pytest.mark.parametrize(("version", "code"), [(MQTT_3_1_1, 0x04), (MQTT_5, 0x86)])
def test_a_wrong_password_or_unknown_user_is_refused_alike(
    make_broker: MakeBroker, password_file: Path, version: int, code: int
) -> None:
    broker = make_broker(password_file=str(password_file))
    # 5.0 [MQTT-3.1.4-2]: failed authentication: CONNACK with the reason, then closed.
    wrong = login(broker.port, version, "c1", "alice", "builder")
    unknown = login(broker.port, version, "c2", "mallory", "wonderland")
    no_password = login(broker.port, version, "c3", "alice", None)
    assert wrong.reason_code == unknown.reason_code == no_password.reason_code == code
    # Not even the reason string tells an unknown user from a wrong password.
    assert wrong.reason_string == unknown.reason_string


@pytest.mark.parametrize(("version", "code"), [(MQTT_3_1_1, 0x05), (MQTT_5, 0x87)])
def test_anonymous_clients_are_refused_where_not_allowed(
    make_broker: MakeBroker, password_file: Path, version: int, code: int
) -> None:
    broker = make_broker(password_file=str(password_file), allow_anonymous=False)
    assert login(broker.port, version, "anon", None, None).reason_code == code
    assert login(broker.port, version, "alice", "alice", "wonderland").reason_code == 0


def test_anonymous_clients_need_no_password_where_allowed(
    make_broker: MakeBroker, password_file: Path
) -> None:
    broker = make_broker(password_file=str(password_file), allow_anonymous=True)
    assert login(broker.port, MQTT_5, "anon", None, None).reason_code == 0


@needs_mosquitto_passwd
def test_files_written_by_mosquitto_passwd_and_old_sha512_entries(
    make_broker: MakeBroker, tmp_path: Path
) -> None:
    path = tmp_path / "passwords"
    assert mosquitto_passwd("-c", "-b", str(path), "alice", "wonderland").returncode == 0
    assert mosquitto_passwd("-b", str(path), "bob", "builder").returncode == 0
    # A $6$ line as Mosquitto 1.6 wrote it: base64(SHA-512(password + salt)).
    salt = b"0123456789ab"
    digest = hashlib.sha512(b"old secret" + salt).digest()
    with path.open("a") as handle:
        handle.write(
            f"carol:$6${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}\n"
        )
    broker = make_broker(password_file=str(path))
    for name, password in [("alice", "wonderland"), ("bob", "builder"), ("carol", "old secret")]:
        assert login(broker.port, MQTT_5, name, name, password).reason_code == 0
        assert login(broker.port, MQTT_5, name, name, password + "!").reason_code == 0x86


def test_packets_sent_right_after_connect_wait_for_the_password_check(
    make_broker: MakeBroker, password_file: Path
) -> None:
    broker = make_broker(password_file=str(password_file))
    client = open_client(broker.port, MQTT_5)
    # All in one write: the broker must not handle SUBSCRIBE/PUBLISH before CONNACK.
    client.send(
        b"".join(
            (
                Connect("pipelined", MQTT_5, username="alice", password=b"wonderland").encode(),
                Subscribe(1, (Subscription("alice/#", 1),)).encode(MQTT_5),
                Publish("alice/x", b"hello", 1, packet_id=2).encode(MQTT_5),
                Pingreq().encode(MQTT_5),
            )
        )
    )
    packets = [client.recv() for _ in range(5)]
    assert isinstance(packets[0], Connack)
    assert packets[0].reason_code == 0
    assert packets[1] == Suback(1, (1,))
    # The message to our own subscription and its PUBACK, in either order, then PINGRESP.
    assert {type(p) for p in packets[2:4]} == {Publish, Puback}
    assert isinstance(packets[4], Pingresp)


def test_a_slow_password_hash_does_not_hold_up_other_clients(
    make_broker: MakeBroker, tmp_path: Path
) -> None:
    passwords = PasswordFile()
    passwords.set("slow", "pw", iterations=1_000_000)  # PBKDF2-SHA512: some 0.4 s here
    path = tmp_path / "passwords"
    passwords.save(path)
    broker = make_broker(password_file=str(path), allow_anonymous=True)
    slow = open_client(broker.port, MQTT_5)
    slow.send(Connect("slow", MQTT_5, username="slow", password=b"pw"))
    # Meanwhile another client connects and round-trips. Were the hash computed on the
    # event loop, this could only finish after it, with the slow CONNACK already sent.
    other = open_client(broker.port, MQTT_5)
    assert isinstance(other.connect("other"), Connack)
    assert sync(other) == []
    readable, _, _ = select.select([slow.sock], [], [], 0)
    assert not readable, "the other client waited for the hash"
    connack = slow.recv(timeout=30)
    assert isinstance(connack, Connack)
    assert connack.reason_code == 0


# -- authorization: publishing -----------------------------------------------------------

ACL = """\
topic read public/#

user alice
topic readwrite shared/#
topic deny shared/secret
topic write alice/#
topic read $SYS/broker/uptime

user bob
topic read shared/#
topic read alice/#

user admin
topic readwrite #

pattern readwrite devices/%c/#
pattern read inbox/%u
"""


@pytest.fixture
def acl_broker(make_broker: MakeBroker, password_file: Path, tmp_path: Path) -> BrokerThread:
    return make_broker(password_file=str(password_file), acl_file=str(acl(tmp_path, ACL)))


def test_v5_publish_denied_gets_0x87_and_reaches_nobody(acl_broker: BrokerThread) -> None:
    bob = user(acl_broker.port, MQTT_5, "bob", "bob", "builder")
    bob.send(Subscribe(1, (Subscription("shared/#", 1),)))
    assert bob.recv() == Suback(1, (1,))
    alice = user(acl_broker.port, MQTT_5, "alice", "alice", "wonderland")
    alice.send(Publish("shared/secret", b"x", 1, packet_id=1))
    assert alice.recv() == Puback(1, 0x87)
    alice.send(Publish("elsewhere", b"x", 2, packet_id=2))
    assert alice.recv() == Pubrec(2, 0x87)
    # The id is free again after PUBREC 0x87 [MQTT-4.3.3-9]: reusing it is a new message.
    alice.send(Publish("shared/open", b"ok", 2, packet_id=2))
    assert alice.recv() == Pubrec(2)
    alice.send(Pubrel(2))
    assert alice.recv() == Pubcomp(2)
    [received] = settle(alice, bob)
    assert [(p.topic, p.payload) for p in publishes(received)] == [("shared/open", b"ok")]


def test_v311_publish_denied_is_acknowledged_but_not_delivered(acl_broker: BrokerThread) -> None:
    bob = user(acl_broker.port, MQTT_3_1_1, "bob", "bob", "builder")
    bob.send(Subscribe(1, (Subscription("shared/#", 1),)))
    assert bob.recv() == Suback(1, (1,))
    alice = user(acl_broker.port, MQTT_3_1_1, "alice", "alice", "wonderland")
    # 3.1.1 [MQTT-3.3.5-2]: an unauthorized PUBLISH is acknowledged normally.
    alice.send(Publish("shared/secret", b"x", 1, packet_id=1))
    assert alice.recv() == Puback(1)
    alice.send(Publish("shared/secret", b"x", 2, packet_id=2))
    assert alice.recv() == Pubrec(2)
    alice.send(Pubrel(2))
    assert alice.recv() == Pubcomp(2)
    alice.send(Publish("shared/open", b"ok", 0))
    [received] = settle(alice, bob)
    assert [p.topic for p in publishes(received)] == ["shared/open"]


@pytest.mark.parametrize("version", VERSIONS)
def test_subscribe_denied_in_the_suback(acl_broker: BrokerThread, version: int) -> None:
    alice = user(acl_broker.port, version, "alice", "alice", "wonderland")
    alice.send(
        Subscribe(
            1,
            (
                Subscription("shared/#", 1),  # allowed
                Subscription("alice/#", 1),  # write-only: refused
                Subscription("shared/secret", 0),  # wholly denied
                Subscription("$share/g/shared/x", 1),  # judged by its inner filter
                Subscription("#", 0),  # reaches shared/...: allowed, filtered per message
            ),
        )
    )
    denied = 0x87 if version == MQTT_5 else 0x80
    assert alice.recv() == Suback(1, (1, denied, denied, 1, 0))
    subscriptions = acl_broker.call(lambda: set(acl_broker.broker.sessions["alice"].subscriptions))
    assert subscriptions == {"shared/#", "$share/g/shared/x", "#"}


def test_messages_on_topics_a_subscriber_may_not_read_are_not_delivered(
    acl_broker: BrokerThread,
) -> None:
    alice = user(acl_broker.port, MQTT_5, "alice", "alice", "wonderland")
    alice.send(Subscribe(1, (Subscription("#", 0),)))
    assert alice.recv() == Suback(1, (0,))
    admin = user(acl_broker.port, MQTT_5, "admin", "admin", "root")
    anonymous = open_client(acl_broker.port, MQTT_5)
    assert isinstance(anonymous.connect("anon"), Connack)
    anonymous.send(Subscribe(1, (Subscription("#", 0),)))
    assert anonymous.recv() == Suback(1, (0,))
    for topic in ("public/news", "shared/open", "shared/secret", "devices/bob/temp"):
        admin.send(Publish(topic, topic.encode(), 0))
    to_alice, to_anonymous = settle(admin, alice, anonymous)
    # alice reads shared/# but not shared/secret, not public/# (anonymous only), not devices/bob.
    assert [p.topic for p in publishes(to_alice)] == ["shared/open"]
    assert [p.topic for p in publishes(to_anonymous)] == ["public/news"]


def test_patterns_give_each_client_its_own_subtree(acl_broker: BrokerThread) -> None:
    c1 = user(acl_broker.port, MQTT_5, "dev1", "bob", "builder")
    c2 = user(acl_broker.port, MQTT_5, "dev2", "alice", "wonderland")
    c1.send(Subscribe(1, (Subscription("devices/dev1/#", 1), Subscription("devices/dev2/#", 1))))
    assert c1.recv() == Suback(1, (1, 0x87))
    c1.send(Subscribe(2, (Subscription("inbox/bob", 1), Subscription("inbox/alice", 1))))
    assert c1.recv() == Suback(2, (1, 0x87))
    c2.send(Publish("devices/dev1/cmd", b"x", 1, packet_id=1))
    assert c2.recv() == Puback(1, 0x87)
    c1.send(Publish("devices/dev1/cmd", b"mine", 1, packet_id=1))
    # Routed (to its own subscription) before it is acknowledged.
    delivered, ack = sync(c1)
    assert isinstance(delivered, Publish)
    assert delivered.payload == b"mine"
    assert ack == Puback(1)


def test_retained_messages_are_filtered_by_read_access_too(acl_broker: BrokerThread) -> None:
    alice = user(acl_broker.port, MQTT_5, "alice", "alice", "wonderland")
    for topic in ("shared/open", "shared/secret", "alice/private"):
        alice.send(Publish(topic, b"kept", 0, retain=True))
    # alice may not write shared/secret: only two are retained. Stored by the broker:
    assert sync(alice) == []
    alice.send(Subscribe(1, (Subscription("#", 0),)))
    assert alice.recv() == Suback(1, (0,))
    # alice may read shared/open only (alice/# is write-only for her).
    assert [p.topic for p in publishes(sync(alice))] == ["shared/open"]


def test_sys_topics_cannot_be_published_unless_allowed(make_broker: MakeBroker) -> None:
    broker = make_broker(allow_sys_publish=["$SYS/broker/connection/+/state"])
    watcher = open_client(broker.port, MQTT_5)
    assert isinstance(watcher.connect("watcher"), Connack)
    watcher.send(Subscribe(1, (Subscription("$SYS/broker/connection/#", 0),)))
    assert watcher.recv() == Suback(1, (0,))
    bridge = open_client(broker.port, MQTT_5)
    assert isinstance(bridge.connect("bridge"), Connack)
    bridge.send(Publish("$SYS/broker/connection/bridge/state", b"1", 1, packet_id=1))
    assert bridge.recv() == Puback(1)
    bridge.send(Publish("$SYS/broker/uptime", b"forged", 1, packet_id=2))
    assert bridge.recv() == Puback(2, 0x87)
    bridge.send(Publish("$other", b"x", 1, packet_id=3))
    assert bridge.recv() == Puback(3, 0x87)
    [received] = settle(bridge, watcher)
    assert [p.topic for p in publishes(received)] == ["$SYS/broker/connection/bridge/state"]


def test_the_acl_applies_to_allowed_sys_topics_as_well(
    make_broker: MakeBroker, tmp_path: Path
) -> None:
    path = acl(tmp_path, "topic write $SYS/broker/connection/b1/state\n")
    broker = make_broker(acl_file=str(path), allow_sys_publish=["$SYS/broker/connection/+/state"])
    client = open_client(broker.port, MQTT_5)
    assert isinstance(client.connect("b2"), Connack)
    client.send(Publish("$SYS/broker/connection/b2/state", b"1", 1, packet_id=1))
    assert client.recv() == Puback(1, 0x87)
    client.send(Publish("$SYS/broker/connection/b1/state", b"1", 1, packet_id=2))
    assert client.recv() == Puback(2, 0x10)  # allowed; nobody subscribed


def test_decisions_are_cached_per_client(acl_broker: BrokerThread) -> None:
    alice = user(acl_broker.port, MQTT_5, "alice", "alice", "wonderland")
    for _ in range(50):
        alice.send(Publish("shared/a", b"x", 0))
        alice.send(Publish("shared/b", b"x", 0))
    assert sync(alice) == []
    access = acl_broker.call(lambda: acl_broker.broker.auth.accesses["alice"])
    assert acl_broker.call(access.cached) == 2


# -- reloading ------------------------------------------------------------------------------


def test_reload_reads_new_passwords_and_rules_for_connected_clients(
    make_broker: MakeBroker, password_file: Path, tmp_path: Path
) -> None:
    acl_path = acl(tmp_path, "user alice\ntopic readwrite a/#\n")
    broker = make_broker(password_file=str(password_file), acl_file=str(acl_path))
    alice = user(broker.port, MQTT_5, "alice", "alice", "wonderland")
    alice.send(Subscribe(1, (Subscription("a/#", 0),)))
    assert alice.recv() == Suback(1, (0,))
    alice.send(Publish("a/1", b"before", 0))
    assert [p.payload for p in publishes(sync(alice))] == [b"before"]

    passwords = PasswordFile.load(password_file)
    passwords.set("alice", "looking-glass")
    passwords.save(password_file)
    acl_path.write_text("user alice\ntopic write a/#\n")  # no more reading
    broker.call(broker.broker.reload)

    assert login(broker.port, MQTT_5, "again", "alice", "wonderland").reason_code == 0x86
    assert login(broker.port, MQTT_5, "again", "alice", "looking-glass").reason_code == 0
    # The connected client's existing subscription follows the new rules at once.
    alice.send(Publish("a/1", b"after", 0))
    assert sync(alice) == []


def test_a_broken_file_on_reload_keeps_the_old_one(
    make_broker: MakeBroker, password_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    acl_path = acl(tmp_path, "user alice\ntopic write a/#\n")
    broker = make_broker(password_file=str(password_file), acl_file=str(acl_path))
    password_file.write_text("alice:not-a-hash\n")
    acl_path.write_text("user alice\ntopic sideways a/#\n")
    broker.call(broker.broker.reload)
    assert "previous one stays in use" in caplog.text
    # Neither "allow all" nor "deny all": the old files still rule.
    alice = user(broker.port, MQTT_5, "alice", "alice", "wonderland")
    alice.send(Publish("a/x", b"x", 1, packet_id=1))
    assert alice.recv() == Puback(1, 0x10)
    alice.send(Publish("b/x", b"x", 1, packet_id=2))
    assert alice.recv() == Puback(2, 0x87)


def test_a_broken_file_at_start_stops_the_start(tmp_path: Path) -> None:
    bad = acl(tmp_path, "topic read a\nnonsense\n")
    with pytest.raises(AuthSetupError, match=r"acl:2: unknown line"):
        Broker(BrokerConfig(acl_file=str(bad), persistence="memory"))


class BrokerProcess:
    """``roost broker`` as a process, its log read line by line."""

    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "roost", "broker", "-c", str(config), "-p", "0"],
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.port = int(self.wait_for(r"Listening on 127\.0\.0\.1:(\d+)").group(1))

    def wait_for(self, pattern: str, timeout: float = 15.0) -> re.Match[str]:
        assert self.proc.stderr is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            if match := re.search(pattern, line):
                return match
        raise AssertionError(f"no log line matching {pattern!r} in:\n{''.join(self.lines)}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(15)
        assert self.proc.stderr is not None
        self.proc.stderr.close()


@pytest.fixture
def broker_process(tmp_path: Path, password_file: Path) -> Iterator[BrokerProcess]:
    acl_path = acl(tmp_path, "user alice\ntopic readwrite a/#\n")
    config = tmp_path / "roost.toml"
    config.write_text(
        f'password_file = "{password_file}"\nacl_file = "{acl_path}"\npersistence = "memory"\n'
    )
    process = BrokerProcess(config)
    yield process
    process.stop()


def test_sighup_reloads_the_files_of_a_running_broker(
    broker_process: BrokerProcess, password_file: Path, tmp_path: Path
) -> None:
    broker_process.wait_for(
        r"Authentication and authorization: password file .* \(3 users\), ACL file"
    )
    assert login(broker_process.port, MQTT_5, "c1", "carol", "singer").reason_code == 0x86
    passwords = PasswordFile.load(password_file)
    passwords.set("carol", "singer")
    passwords.save(password_file)
    broker_process.proc.send_signal(signal.SIGHUP)
    broker_process.wait_for(r"Reloaded password file .* \(4 users\)")
    broker_process.wait_for(r"Reloaded ACL file")
    assert login(broker_process.port, MQTT_5, "c1", "carol", "singer").reason_code == 0


def test_roost_broker_stops_at_start_on_a_broken_file(tmp_path: Path) -> None:
    config = tmp_path / "roost.toml"
    config.write_text(f'password_file = "{tmp_path / "missing"}"\npersistence = "memory"\n')
    result = subprocess.run(
        [sys.executable, "-m", "roost", "broker", "-c", str(config), "-p", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert f"roost broker: {tmp_path / 'missing'}: cannot read the file" in result.stderr
