"""A throw-away certificate authority and server certificate for HTTPS on 127.0.0.1 / localhost.

The official Vonage SDK always builds ``https://{host}`` URLs, so the sandbox must speak
TLS for it. Everything is generated at run time with ``cryptography`` (nothing is ever
committed): a CA whose certificate a client trusts (``REQUESTS_CA_BUNDLE``, httpx
``verify=``) and a server certificate it signs for ``127.0.0.1``, ``::1`` and ``localhost``.
A separate CA, rather than one self-signed leaf, is what strict verifiers (OpenSSL's
X509_STRICT, used by newer Pythons) accept.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import ssl
import tempfile
from dataclasses import dataclass

__all__ = ["TLSMaterial", "create_tls_material"]

VALIDITY = dt.timedelta(days=2)  # long enough for any test run or local session


@dataclass(frozen=True)
class TLSMaterial:
    """Files of one generated CA and server certificate, in a private temporary directory."""

    directory: str
    ca_file: str  # PEM of the CA certificate: what clients should trust
    cert_file: str  # server certificate followed by the CA certificate
    key_file: str  # server private key (mode 0600)

    def server_context(self) -> ssl.SSLContext:
        """An SSLContext for the server side, TLS 1.2 or newer."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def remove(self) -> None:
        """Delete the files (the server key included)."""
        shutil.rmtree(self.directory, ignore_errors=True)


def create_tls_material(*, ca_file: str | None = None) -> TLSMaterial:
    """Generate a CA and a server certificate for loopback names; write them to a temp dir.

    ``ca_file``, when given, also receives a copy of the CA certificate (for the CLI, so
    another process can trust the sandbox).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)  # tolerate small clock skew
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Vonage sandbox local CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + VALIDITY)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    directory = tempfile.mkdtemp(prefix="vonage-sandbox-tls-")
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    material = TLSMaterial(
        directory=directory,
        ca_file=os.path.join(directory, "ca.pem"),
        cert_file=os.path.join(directory, "server.pem"),
        key_file=os.path.join(directory, "server.key"),
    )
    _write(material.ca_file, ca_pem)
    _write(material.cert_file, server_cert.public_bytes(serialization.Encoding.PEM) + ca_pem)
    key_pem = server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write(material.key_file, key_pem, mode=0o600)
    if ca_file:
        _write(ca_file, ca_pem)
    return material


def _write(path: str, data: bytes, *, mode: int = 0o644) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
