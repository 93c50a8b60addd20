"""TLS listeners with certificates the tests make: real clients (raw ssl sockets, paho,
mosquitto_pub/sub), client certificates, and every refusal named in the broker's log."""

from __future__ import annotations

import asyncio
import datetime
import ssl
import subprocess

import pytest

from roost.broker.config import BrokerConfig, ListenerConfig
from roost.broker.listeners import ListenerError
from roost.broker.server import Broker
from roost.codec import (
    MQTT_5,
    Connack,
    ConnackReturnCode,
    ConnectReasonCode,
    Publish,
    Suback,
    Subscribe,
    Subscription,
)
from tests.support.raw import TIMEOUT
from tests.support.waiting import wait_for_broker
from tests.transports.conftest import StartBroker
from tests.transports.helpers import (
    BrokerLog,
    Paho,
    client_context,
    refused_tls_client,
    subscribed,
    tls_client,
    tls_listener,
)
from tests.transports.pki import Pki


def connack_of(client: object, client_id: str, **fields: object) -> Connack:
    connack = client.connect(client_id, **fields)  # type: ignore[attr-defined]
    assert isinstance(connack, Connack)
    return connack


# --- connecting and talking ------------------------------------------------------------


def test_raw_client_connects_publishes_and_receives_over_tls(
    pki: Pki, start_broker: StartBroker
) -> None:
    broker = start_broker(tls_listener(pki))
    client = tls_client(broker.port, client_context(pki), MQTT_5)
    assert connack_of(client, "tls-raw").reason_code == 0
    client.send(Subscribe(1, (Subscription("t", 1),)))
    assert isinstance(client.recv(), Suback)
    client.send(Publish("t", b"over tls", qos=1, packet_id=2))
    packets = [client.recv(), client.recv()]
    delivered = [p for p in packets if isinstance(p, Publish)]
    assert [p.payload for p in delivered] == [b"over tls"]
    cipher = client.sock.cipher()  # type: ignore[attr-defined]
    assert cipher is not None


def test_paho_over_tls_talks_to_a_plain_tcp_client(pki: Pki, start_broker: StartBroker) -> None:
    broker = start_broker(ListenerConfig(port=0), tls_listener(pki))
    plain = Paho(broker.port_of(0), "plain")
    plain.subscribe("across/#")
    secure = Paho(broker.port_of(1), "secure", tls=client_context(pki))
    secure.publish("across/tls", b"from tls")
    message = plain.next_message()
    assert (message.topic, message.payload) == ("across/tls", b"from tls")


def test_mosquitto_clients_with_cafile(pki: Pki, start_broker: StartBroker) -> None:
    broker = start_broker(tls_listener(pki))
    tls_args = ["-h", "localhost", "-p", str(broker.port), "--cafile", str(pki.cafile)]
    sub = subprocess.Popen(
        ["mosquitto_sub", *tls_args, "-i", "mosq-sub", "-t", "mosq/tls", "-C", "1", "-W", "10"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_broker(broker, lambda: subscribed(broker, "mosq-sub", "mosq/tls"))
        subprocess.run(
            ["mosquitto_pub", *tls_args, "-t", "mosq/tls", "-m", "hello"],
            check=True,
            timeout=TIMEOUT,
            capture_output=True,
        )
        out, err = sub.communicate(timeout=TIMEOUT)
        assert (out, sub.returncode) == ("hello\n", 0), err
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.communicate()


def test_mosquitto_pub_with_a_client_certificate(
    pki: Pki, start_broker: StartBroker, broker_log: BrokerLog
) -> None:
    alice = pki.client("alice")
    listener = tls_listener(pki, cafile=str(pki.cafile), require_certificate=True)
    broker = start_broker(listener, allow_anonymous=True)
    result = subprocess.run(
        [
            "mosquitto_pub",
            *("-h", "localhost", "-p", str(broker.port), "-i", "alice-pub"),
            *("--cafile", str(pki.cafile), "--cert", str(alice.certfile)),
            *("--key", str(alice.keyfile), "-t", "certs", "-m", "signed"),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    broker_log.wait_for(r"New client connected from .* as alice-pub")


def test_paho_with_a_client_certificate_as_its_identity(
    pki: Pki, start_broker: StartBroker, broker_log: BrokerLog
) -> None:
    bob = pki.client("bob")
    listener = tls_listener(
        pki, cafile=str(pki.cafile), require_certificate=True, use_identity_as_username="cn"
    )
    broker = start_broker(listener, allow_anonymous=False)
    client = Paho(broker.port, "bob-paho", tls=client_context(pki, cert=bob))
    assert client.reason == 0
    broker_log.wait_for(r"New client connected from .* as bob-paho .*u'bob'")


# --- refusals, each with its reason in the log -------------------------------------------


def test_a_client_trusting_another_ca_is_refused(
    pki: Pki, start_broker: StartBroker, broker_log: BrokerLog
) -> None:
    broker = start_broker(tls_listener(pki))
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_client(broker.port, client_context(pki, cafile=pki.other_cafile))
    broker_log.wait_for(
        r"TLS handshake with 127\.0\.0\.1:\d+ on listener tls 127\.0\.0\.1:\d+ failed: "
        r"the client does not trust this listener's certificate \(unknown CA\)"
    )


def test_mosquitto_pub_with_the_wrong_ca_is_refused(
    pki: Pki, start_broker: StartBroker, broker_log: BrokerLog
) -> None:
    broker = start_broker(tls_listener(pki))
    result = subprocess.run(
        [
            "mosquitto_pub",
            *("-h", "localhost", "-p", str(broker.port), "--cafile", str(pki.other_cafile)),
            *("-t", "t", "-m", "m"),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode != 0
    broker_log.wait_for(r"TLS handshake .* failed: .*\(TLSV1_ALERT_UNKNOWN_CA\)")


def test_a_missing_client_certificate_is_refused_when_required(
    pki: Pki, start_broker: StartBroker, broker_log: BrokerLog
) -> None:
    listener = tls_listener(pki, cafile=str(pki.cafile), require_certificate=True)
    broker = start_broker(listener)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        refused_tls_client(broker.port, client_context(pki), MQTT_5)
    broker_log.wait_for(
        r"TLS handshake .* failed: the client sent no certificate and this listener "
        r"requires one \(PEER_DID_NOT_RETURN_A_CERTIFICATE\)"
    )


def test_mosquitto_pub_without_a_required_certificate_is_refused(
    pki: Pki, start_broker: StartBroker, broker_log: BrokerLog
) -> None:
    listener = tls_listener(pki, cafile=str(pki.cafile), require_certificate=True)
    broker = start_broker(listener)
    result = subprocess.run(
        [
            "mosquitto_pub",
            *("-h", "localhost", "-p", str(broker.port), "--cafile", str(pki.cafile)),
            *("-t", "t", "-m", "m"),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode != 0
    broker_log.wait_for(r"TLS handshake .* failed: .*PEER_DID_NOT_RETURN_A_CERTIFICATE")


def test_an_expired_client_certificate_is_refused(
    pki: Pki, start_broker: StartBroker, broker_log: BrokerLog
) -> None:
    old = pki.client("old-timer", expired=True)
    listener = tls_listener(pki, cafile=str(pki.cafile), require_certificate=True)
    broker = start_broker(listener)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        refused_tls_client(broker.port, client_context(pki, cert=old), MQTT_5)
    broker_log.wait_for(
        r"TLS handshake .* failed: client certificate rejected: certificate has expired"
    )


def test_mosquitto_pub_with_an_expired_certificate_is_refused(
    pki: Pki, start_broker: StartBroker, broker_log: BrokerLog
) -> None:
    old = pki.client("old-timer", expired=True)
    listener = tls_listener(pki, cafile=str(pki.cafile), require_certificate=True)
    broker = start_broker(listener)
    result = subprocess.run(
        [
            "mosquitto_pub",
            *("-h", "localhost", "-p", str(broker.port), "--cafile", str(pki.cafile)),
            *("--cert", str(old.certfile), "--key", str(old.keyfile), "-t", "t", "-m", "m"),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode != 0
    broker_log.wait_for(r"client certificate rejected: certificate has expired")


def test_an_expired_server_certificate_is_refused_by_the_client(
    pki: Pki, start_broker: StartBroker, broker_log: BrokerLog
) -> None:
    stale = pki.ca.issue_cert(
        "localhost",
        not_before=datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC),
        not_after=datetime.datetime(2021, 1, 1, tzinfo=datetime.UTC),
    )
    certfile = pki.directory / "stale.pem"
    stale.private_key_and_cert_chain_pem.write_to_path(str(certfile))
    broker = start_broker(ListenerConfig(port=0, type="tls", certfile=str(certfile)))
    with pytest.raises(ssl.SSLCertVerificationError, match="expired"):
        tls_client(broker.port, client_context(pki))
    broker_log.wait_for(r"TLS handshake .* failed: .*\(SSLV3_ALERT_CERTIFICATE_EXPIRED\)")


def test_a_revoked_client_certificate_is_refused_with_a_crl(
    pki: Pki, start_broker: StartBroker, broker_log: BrokerLog
) -> None:
    good = pki.client("good")
    revoked = pki.client("revoked")
    crlfile = pki.crl(revoked)
    listener = tls_listener(
        pki, cafile=str(pki.cafile), require_certificate=True, crlfile=str(crlfile)
    )
    broker = start_broker(listener)
    client = tls_client(broker.port, client_context(pki, cert=good), MQTT_5)
    assert connack_of(client, "good").reason_code == 0
    with pytest.raises((ssl.SSLError, ConnectionError)):
        refused_tls_client(broker.port, client_context(pki, cert=revoked), MQTT_5)
    broker_log.wait_for(r"client certificate rejected: certificate revoked")


def test_tls_below_the_minimum_version_is_refused(
    pki: Pki, start_broker: StartBroker, broker_log: BrokerLog
) -> None:
    broker = start_broker(tls_listener(pki, tls_version="1.3"))
    old_client = client_context(pki, maximum_version=ssl.TLSVersion.TLSv1_2)
    with pytest.raises(ssl.SSLError):
        tls_client(broker.port, old_client)
    broker_log.wait_for(r"TLS handshake .* failed: .*TLS versions below .*tls_version")
    # TLS 1.3 itself is welcome.
    client = tls_client(broker.port, client_context(pki))
    assert client.sock.version() == "TLSv1.3"  # type: ignore[attr-defined]


def test_plain_mqtt_on_a_tls_listener_is_refused(
    pki: Pki, start_broker: StartBroker, broker_log: BrokerLog
) -> None:
    from tests.support.raw import open_client

    broker = start_broker(tls_listener(pki))
    client = open_client(broker.port, MQTT_5)
    client.send(b"\x10\x10\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x03abc")
    assert client.expect_closed() == []
    broker_log.wait_for(r"did not start a TLS handshake \(plain MQTT on a TLS listener\?\)")


# --- the certificate as the username ---------------------------------------------------


@pytest.mark.parametrize(
    ("san", "source", "username"),
    [
        ("alice@example.org", "cn", "alice"),
        ("alice@example.org", "san", "alice@example.org"),
        ("alice.devices.example", "san", "alice.devices.example"),  # a DNS name
    ],
)
def test_the_certificate_identity_becomes_the_username(
    pki: Pki,
    start_broker: StartBroker,
    broker_log: BrokerLog,
    san: str,
    source: str,
    username: str,
) -> None:
    alice = pki.client("alice", san)
    listener = tls_listener(
        pki,
        cafile=str(pki.cafile),
        require_certificate=True,
        use_identity_as_username=source,
        allow_anonymous=False,
    )
    broker = start_broker(listener)
    client = tls_client(broker.port, client_context(pki, cert=alice), MQTT_5)
    # No username in CONNECT, and anonymous clients are refused: the certificate counts.
    assert connack_of(client, "alice-1").reason_code == 0
    broker_log.wait_for(rf"New client connected from .* as alice-1 .*u'{username}'")


def test_a_username_in_connect_is_replaced_by_the_certificate_identity(
    pki: Pki, start_broker: StartBroker, broker_log: BrokerLog
) -> None:
    alice = pki.client("alice")
    listener = tls_listener(
        pki, cafile=str(pki.cafile), require_certificate=True, use_identity_as_username="cn"
    )
    broker = start_broker(listener)
    client = tls_client(broker.port, client_context(pki, cert=alice), MQTT_5)
    assert connack_of(client, "mallory-1", username="mallory").reason_code == 0
    broker_log.wait_for(r"as mallory-1 .*u'alice'")


def test_optional_certificates_without_one_and_identity_as_username_is_refused(
    pki: Pki, start_broker: StartBroker, broker_log: BrokerLog
) -> None:
    listener = tls_listener(pki, cafile=str(pki.cafile), use_identity_as_username="cn")
    broker = start_broker(listener)
    client = tls_client(broker.port, client_context(pki), MQTT_5)
    connack = connack_of(client, "anon")
    assert connack.reason_code == ConnectReasonCode.NOT_AUTHORIZED
    broker_log.wait_for(r"Refused connection .*'anon'.*no client certificate identity")


def test_optional_certificates_let_clients_in_with_or_without_one(
    pki: Pki, start_broker: StartBroker
) -> None:
    alice = pki.client("alice")
    broker = start_broker(tls_listener(pki, cafile=str(pki.cafile)), allow_anonymous=True)
    without = tls_client(broker.port, client_context(pki))
    assert connack_of(without, "without").reason_code == ConnackReturnCode.ACCEPTED
    with_cert = tls_client(broker.port, client_context(pki, cert=alice))
    assert connack_of(with_cert, "with").reason_code == ConnackReturnCode.ACCEPTED
    # An optional certificate is still checked when one is sent.
    stranger = pki.client("stranger", ca=pki.other_ca)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        refused_tls_client(broker.port, client_context(pki, cert=stranger))


# --- files that cannot be loaded ---------------------------------------------------------


def test_a_missing_certificate_file_stops_the_start(pki: Pki) -> None:
    listener = ListenerConfig(port=0, type="tls", certfile=str(pki.directory / "nope.pem"))

    async def start() -> None:
        config = BrokerConfig(listeners=[ListenerConfig(port=0), listener], persistence="memory")
        async with Broker(config):
            pass

    with pytest.raises(ListenerError) as excinfo:
        asyncio.run(start())
    assert str(excinfo.value) == (
        "listeners[1] (tls 127.0.0.1:0): cannot load certfile "
        f"'{pki.directory / 'nope.pem'}': No such file or directory"
    )


def test_a_key_that_does_not_match_stops_the_start(pki: Pki) -> None:
    _other_cert, other_key = pki.server_files("other")
    listener = tls_listener(pki, keyfile=str(other_key))

    async def start() -> None:
        async with Broker(BrokerConfig(listeners=[listener], persistence="memory")):
            pass

    with pytest.raises(ListenerError, match=r"cannot load certfile .*KEY_VALUES_MISMATCH"):
        asyncio.run(start())
