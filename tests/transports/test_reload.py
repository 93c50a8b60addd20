"""Certificates reloaded on SIGHUP: connections already up keep working, new ones get the
new certificate, and files that do not load leave the old certificate in use."""

from __future__ import annotations

import re
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

from roost.codec import MQTT_5, Connack, Pingreq, Pingresp, Publish, Suback, Subscribe, Subscription
from tests.support.raw import TIMEOUT, RawClient
from tests.transports.conftest import StartBroker
from tests.transports.helpers import BrokerLog, client_context, tls_client, tls_listener
from tests.transports.pki import Pki


def served_certificate(client: RawClient) -> bytes:
    sock = client.sock
    assert isinstance(sock, ssl.SSLSocket)
    der = sock.getpeercert(binary_form=True)
    assert der is not None
    return der


def pem_to_der(path: Path) -> bytes:
    text = path.read_text()
    first = text[: text.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")]
    return ssl.PEM_cert_to_DER_cert(first)


def still_talking(client: RawClient, topic: str) -> None:
    """The connection carries traffic both ways: a message to itself, and a ping."""
    client.send(Subscribe(1, (Subscription(topic, 0),)))
    assert isinstance(client.recv(), Suback)
    client.send(Publish(topic, b"still here"))
    message = client.recv()
    assert isinstance(message, Publish)
    assert message.payload == b"still here"
    client.send(Pingreq())
    assert isinstance(client.recv(), Pingresp)


def replace_server_files(pki: Pki, name: str) -> None:
    """Write a new certificate and key over the files the listener was started with."""
    certfile, keyfile = pki.server_files(name)
    pki.certfile.write_bytes(certfile.read_bytes())
    pki.keyfile.write_bytes(keyfile.read_bytes())


def test_reload_serves_new_connections_the_new_certificate(
    pki: Pki, start_broker: StartBroker, broker_log: BrokerLog
) -> None:
    broker = start_broker(tls_listener(pki))
    old_der = pem_to_der(pki.certfile)
    before = tls_client(broker.port, client_context(pki), MQTT_5)
    assert isinstance(before.connect("before"), Connack)
    assert served_certificate(before) == old_der

    replace_server_files(pki, "renewed")
    broker.call(broker.broker.reload_tls)
    broker_log.wait_for(r"^Listener tls 127\.0\.0\.1:\d+: TLS certificates reloaded\.$")

    after = tls_client(broker.port, client_context(pki), MQTT_5)
    assert isinstance(after.connect("after"), Connack)
    assert served_certificate(after) == pem_to_der(pki.certfile) != old_der
    still_talking(before, "before/t")
    still_talking(after, "after/t")


def test_files_that_do_not_load_keep_the_old_certificate(
    pki: Pki, start_broker: StartBroker, broker_log: BrokerLog
) -> None:
    broker = start_broker(tls_listener(pki))
    old_der = pem_to_der(pki.certfile)
    pki.certfile.write_text("not a certificate\n")
    broker.call(broker.broker.reload_tls)
    broker_log.wait_for(
        r"^Listener tls 127\.0\.0\.1:\d+: TLS files not reloaded, the previous ones stay in "
        r"use: cannot load certfile '.*server\.crt': .*"
    )
    client = tls_client(broker.port, client_context(pki), MQTT_5)
    assert isinstance(client.connect("unchanged"), Connack)
    assert served_certificate(client) == old_der


def test_a_new_ca_and_crl_are_read_on_reload(
    pki: Pki, start_broker: StartBroker, broker_log: BrokerLog
) -> None:
    alice = pki.client("alice")
    crlfile = pki.crl()  # revokes nothing yet
    listener = tls_listener(
        pki, cafile=str(pki.cafile), require_certificate=True, crlfile=str(crlfile)
    )
    broker = start_broker(listener)
    first = tls_client(broker.port, client_context(pki, cert=alice), MQTT_5)
    assert isinstance(first.connect("alice-1"), Connack)

    pki.crl(alice)  # now she is revoked
    broker.call(broker.broker.reload_tls)
    broker_log.wait_for(r"TLS certificates reloaded")
    try:
        second = tls_client(broker.port, client_context(pki, cert=alice), MQTT_5)
        second.connect("alice-2")
    except (ssl.SSLError, ConnectionError):
        pass
    broker_log.wait_for(r"client certificate rejected: certificate revoked")
    still_talking(first, "alice/t")  # revocation applies to new handshakes only


# --- a real SIGHUP to a real `roost broker` process ------------------------------------


class BrokerProcess:
    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "roost", "broker", "-c", str(config), "--no-persistence"],
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []

    def wait_for(self, pattern: str) -> re.Match[str]:
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 15
        for line in self.lines:
            if match := re.search(pattern, line):
                return match
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            if match := re.search(pattern, line):
                return match
        raise AssertionError(f"no log line matching {pattern!r} in:\n{''.join(self.lines)}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(TIMEOUT)
        assert self.proc.stderr is not None
        self.proc.stderr.close()
        return code


def test_sighup_reloads_the_certificates_of_a_running_broker(pki: Pki, tmp_path: Path) -> None:
    config = tmp_path / "roost.toml"
    config.write_text(
        f"""
[[listeners]]
type = "tls"
port = 0
certfile = "{pki.certfile}"
keyfile = "{pki.keyfile}"
"""
    )
    process = BrokerProcess(config)
    try:
        port = int(process.wait_for(r"Listening on 127\.0\.0\.1:(\d+) \(MQTT over TLS").group(1))
        old_der = pem_to_der(pki.certfile)
        before = tls_client(port, client_context(pki), MQTT_5)
        assert isinstance(before.connect("before"), Connack)

        replace_server_files(pki, "renewed")
        process.proc.send_signal(signal.SIGHUP)
        process.wait_for(r"TLS certificates reloaded")

        after = tls_client(port, client_context(pki), MQTT_5)
        assert isinstance(after.connect("after"), Connack)
        assert served_certificate(before) == old_der
        assert served_certificate(after) == pem_to_der(pki.certfile) != old_der
        still_talking(before, "before/t")
        before.close()
        after.close()
    finally:
        assert process.stop() == 0
