"""Certificates the transport tests make for themselves: trustme for the ordinary ones,
``cryptography`` (which trustme is built on) for a certificate revocation list."""

from __future__ import annotations

import datetime
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey


class ClientCert:
    """A client certificate and its key, as files for mosquitto_pub, paho and ssl."""

    def __init__(self, leaf: trustme.LeafCert, directory: Path, name: str) -> None:
        self.leaf = leaf
        self.certfile = directory / f"{name}.crt"
        self.keyfile = directory / f"{name}.key"
        leaf.cert_chain_pems[0].write_to_path(str(self.certfile))
        leaf.private_key_pem.write_to_path(str(self.keyfile))

    @property
    def serial_number(self) -> int:
        return x509.load_pem_x509_certificate(self.leaf.cert_chain_pems[0].bytes()).serial_number


class Pki:
    """A CA with a server certificate for localhost/127.0.0.1, and a second, unrelated CA."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca = trustme.CA()
        self.cafile = directory / "ca.crt"
        self.ca.cert_pem.write_to_path(str(self.cafile))
        self.other_ca = trustme.CA()
        self.other_cafile = directory / "other-ca.crt"
        self.other_ca.cert_pem.write_to_path(str(self.other_cafile))
        self.certfile, self.keyfile = self.server_files("server")

    def server_files(self, name: str, ca: trustme.CA | None = None) -> tuple[Path, Path]:
        """A new server certificate (chain) and key for localhost and 127.0.0.1."""
        leaf = (ca or self.ca).issue_cert("localhost", "127.0.0.1", common_name="roost-test")
        certfile = self.directory / f"{name}.crt"
        keyfile = self.directory / f"{name}.key"
        leaf.private_key_pem.write_to_path(str(keyfile))
        certfile.write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
        return certfile, keyfile

    def client(
        self,
        name: str,
        *identities: str,
        ca: trustme.CA | None = None,
        expired: bool = False,
    ) -> ClientCert:
        """A client certificate with common name ``name`` and the given SANs, or, with none
        given, the email address ``name@clients.example``: a certificate needs at least one
        subject alternative name (cryptography refuses an empty list), as real ones have."""
        identities = identities or (f"{name}@clients.example",)
        not_before = not_after = None
        if expired:  # trustme takes the validity period as it is given, past or not
            now = datetime.datetime.now(datetime.UTC)
            not_before = now - datetime.timedelta(days=30)
            not_after = now - datetime.timedelta(days=1)
        leaf = (ca or self.ca).issue_cert(
            *identities, common_name=name, not_before=not_before, not_after=not_after
        )
        return ClientCert(leaf, self.directory, name)

    def crl(self, *revoked: ClientCert) -> Path:
        """A CRL, signed by the CA, that revokes the given certificates."""
        ca_cert = x509.load_pem_x509_certificate(self.ca.cert_pem.bytes())
        ca_key = serialization.load_pem_private_key(self.ca.private_key_pem.bytes(), None)
        assert isinstance(ca_key, EllipticCurvePrivateKey)
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca_cert.subject)
            .last_update(now - datetime.timedelta(days=1))
            .next_update(now + datetime.timedelta(days=1))
        )
        for cert in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(cert.serial_number)
                .revocation_date(now - datetime.timedelta(hours=1))
                .build()
            )
        crl = builder.sign(ca_key, hashes.SHA256())
        path = self.directory / "ca.crl"
        path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        return path
