"""Authentication and authorization on a cluster: every node has the same password and
ACL files, and each decision is made where the client is connected (write access on
the publishing node, read access on each receiving node), as on one broker."""

from __future__ import annotations

from pathlib import Path

from roost.broker.auth.password_file import PasswordFile
from roost.codec import MQTT_3_1_1, MQTT_5
from tests.cluster.conftest import NodeFactory
from tests.cluster.nodes import leftovers, linked, real
from tests.support.mosquitto_tools import mosquitto_pub
from tests.support.paho import PahoClient

ACL = """\
user alice
topic write sensors/#

user bob
topic read sensors/#

user carol
topic read sensors/#
topic deny sensors/secret

user root
topic readwrite #
"""


PASSWORDS = {"alice": "a", "bob": "b", "carol": "c", "root": "r"}


def user(port: int, name: str, version: int = MQTT_5) -> PahoClient:
    return PahoClient(port, name, version, username=name, password=PASSWORDS[name])


def auth_settings(tmp_path: Path) -> str:
    passwords = PasswordFile()
    for user, password in PASSWORDS.items():
        passwords.set(user, password)
    passwords.save(tmp_path / "passwords")
    (tmp_path / "acl").write_text(ACL, encoding="utf-8")
    return (
        f'allow_anonymous = false\npassword_file = "{tmp_path / "passwords"}"\n'
        f'acl_file = "{tmp_path / "acl"}"'
    )


def test_password_file_and_acl_apply_on_every_node(make_node: NodeFactory, tmp_path: Path) -> None:
    settings = auth_settings(tmp_path)
    a, b = make_node("a", extra=settings), make_node("b", extra=settings)
    alice = user(a.port, "alice")
    bob = user(b.port, "bob")
    bob.subscribe("sensors/#", 1)
    carol = user(b.port, "carol", MQTT_3_1_1)
    carol.subscribe("sensors/#", 1)
    root = user(b.port, "root")
    root.subscribe("#", 1)
    anonymous = mosquitto_pub(b.port, "-t", "sensors/x", "-m", "x", check=False)
    assert anonymous.returncode != 0
    assert "not authorised" in anonymous.stderr.lower() or "refused" in anonymous.stderr.lower()
    for subscriber in (bob, carol, root):
        linked(alice, subscriber, "sensors/probe")

    alice.publish("sensors/secret", b"s", 1)
    alice.publish("sensors/temp", b"t", 1)
    # Refused on node a (no write access): it never reaches node b, not even root.
    mosquitto_pub(a.port, "-u", "alice", "-P", "a", "-q", "1", "-t", "admin/x", "-m", "no")
    alice.publish("sensors/end", b"end", 1)

    assert [m.payload for m in real(bob, 3)] == [b"s", b"t", b"end"]
    # carol's subscription matches sensors/secret, but she may not read it: node b,
    # where she is connected, leaves her out.
    assert [m.payload for m in real(carol, 2)] == [b"t", b"end"]
    assert [(m.topic, m.payload) for m in real(root, 3)] == [
        ("sensors/secret", b"s"),
        ("sensors/temp", b"t"),
        ("sensors/end", b"end"),
    ]
    assert leftovers(bob) == leftovers(carol) == leftovers(root) == []
