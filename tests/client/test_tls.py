"""TLS against a real Mosquitto with certificates the test makes (trustme)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from roost.client import Client, TLSError, tls_context
from tests.support.mosquitto import Mosquitto


@dataclass
class TlsBroker:
    port: int
    ca: Path
    client_cert: Path  # certificate and key, one PEM


@contextlib.contextmanager
def _tls_broker(
    tmp_path: Path, names: tuple[str, ...], require_certificate: bool
) -> Iterator[TlsBroker]:
    ca = trustme.CA()
    server_cert = ca.issue_cert(*names)
    ca_path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    server_pem = tmp_path / "server.pem"
    server_cert.private_key_and_cert_chain_pem.write_to_path(str(server_pem))
    client_pem = tmp_path / "client.pem"
    ca.issue_cert("client.example").private_key_and_cert_chain_pem.write_to_path(str(client_pem))
    config = (
        f"cafile {ca_path}\ncertfile {server_pem}\nkeyfile {server_pem}\n"
        f"require_certificate {'true' if require_certificate else 'false'}\n"
    )
    broker = Mosquitto(tmp_path, config).start()
    try:
        yield TlsBroker(broker.port, ca_path, client_pem)
    finally:
        broker.stop()


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[TlsBroker]:
    with _tls_broker(tmp_path, ("127.0.0.1", "localhost"), require_certificate=False) as broker:
        yield broker


async def test_tls_round_trip(tls_broker: TlsBroker) -> None:
    context = tls_context(tls_broker.ca)
    async with Client("127.0.0.1", tls_broker.port, tls=context) as client:
        await client.subscribe("secure", qos=1)
        stream = client.messages()
        await client.publish("secure", "sealed", qos=1)
        async with asyncio.timeout(5):
            assert (await anext(stream)).payload == b"sealed"


async def test_untrusted_certificate_is_a_tls_error(tls_broker: TlsBroker, tmp_path: Path) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    with pytest.raises(TLSError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        await Client("127.0.0.1", tls_broker.port, tls=tls_context(other)).connect()


async def test_hostname_mismatch_and_insecure(tmp_path: Path) -> None:
    with _tls_broker(tmp_path, ("broker.example",), require_certificate=False) as broker:
        with pytest.raises(TLSError):
            await Client("127.0.0.1", broker.port, tls=tls_context(broker.ca)).connect()
        # --insecure skips only the name check; the chain is still verified.
        insecure = tls_context(broker.ca, insecure=True)
        async with Client("127.0.0.1", broker.port, tls=insecure) as client:
            assert client.connected


async def test_client_certificate(tmp_path: Path) -> None:
    with _tls_broker(tmp_path, ("127.0.0.1",), require_certificate=True) as broker:
        with_cert = tls_context(broker.ca, broker.client_cert)
        async with Client("127.0.0.1", broker.port, tls=with_cert) as client:
            assert client.connected
        without = Client("127.0.0.1", broker.port, tls=tls_context(broker.ca))
        # TLS 1.3 finishes the client's side of the handshake before the server checks
        # the client certificate; the reset that follows is still reported as TLS.
        with pytest.raises(TLSError, match="client certificate"):
            await without.connect()
