"""A client certificate as the credential: no password check, and the ACL by its identity."""

from __future__ import annotations

from pathlib import Path

from roost.broker.auth.password_file import PasswordFile
from roost.codec import MQTT_5, Connack, Puback, Publish
from tests.transports.helpers import ListenersBroker, client_context, tls_client, tls_listener
from tests.transports.pki import Pki


def test_a_certificate_identity_skips_the_password_file_and_meets_the_acl(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    passwords = PasswordFile()
    passwords.set("alice", "a password the client does not know")
    password_file = tmp_path / "passwords"
    passwords.save(password_file)
    acl = tmp_path / "acl"
    acl.write_text("user alice\ntopic readwrite alice/#\n")
    listener = tls_listener(
        pki, cafile=str(pki.cafile), require_certificate=True, use_identity_as_username="cn"
    )
    broker = ListenersBroker(
        [listener], password_file=str(password_file), acl_file=str(acl), allow_anonymous=False
    )
    broker.start()
    try:
        client = tls_client(broker.port, client_context(pki, cert=pki.client("alice")), MQTT_5)
        connack = client.connect("alice-1", username="whoever", password=b"wrong")
        assert isinstance(connack, Connack)
        assert connack.reason_code == 0
        client.send(Publish("alice/x", b"ok", 1, packet_id=1))
        assert client.recv() == Puback(1, 0x10)
        client.send(Publish("bob/x", b"no", 1, packet_id=2))
        assert client.recv() == Puback(2, 0x87)
        client.close()
    finally:
        broker.stop()
