"""The test bed's small certificate authority (issue 13), built with `cryptography`.

One CA (EC P-256, 10 years, basicConstraints CA:TRUE pathlen 0) issues a server certificate
for the TLS gateway (`gw.example`) and one for the correspondent (`cn.example`), serverAuth,
and a client certificate for the terminal (`mn.example`, clientAuth) with which the guest
authenticates itself to the gateway; each carries its name and its IPv6 address as
subjectAltName. Files in <state_dir>/tls/:
ca.pem (what `mip6term testbed ca` prints and clients trust), <name>.pem + <name>.key (key
mode 0640). Keys are fresh per bed: nothing secret is ever checked in.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from ipaddress import IPv6Address

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_NAME = "mip6term test CA"
_VALIDITY = datetime.timedelta(days=3650)
_BACKDATE = datetime.timedelta(hours=1)  # clocks of namespaces are the same, of VMs not quite


@dataclass(frozen=True)
class ServerFiles:
    certificate: str
    key: str


def tls_dir(state_dir: str) -> str:
    return os.path.join(state_dir, "tls")


def ca_certificate_path(state_dir: str) -> str:
    return os.path.join(tls_dir(state_dir), "ca.pem")


def server_files(state_dir: str, name: str) -> ServerFiles:
    base = os.path.join(tls_dir(state_dir), name)
    return ServerFiles(certificate=f"{base}.pem", key=f"{base}.key")


def _write(path: str, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mip6term test bed"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(now: datetime.datetime | None = None) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    now = now or datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(CA_NAME)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE).not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def issue_server(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, dns_name: str,
                 address: IPv6Address | None = None, now: datetime.datetime | None = None,
                 usage: x509.ObjectIdentifier = ExtendedKeyUsageOID.SERVER_AUTH,
                 ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A certificate for `dns_name` (and `address`) signed by the CA: serverAuth, or
    `usage` = clientAuth for a terminal that authenticates itself to the gateway."""
    now = now or datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(dns_name)]
    if address is not None:
        names.append(x509.IPAddress(address))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(dns_name)).issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE).not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def create(state_dir: str, servers: dict[str, IPv6Address | None],
           key_owner: tuple[int, int] | None = None,
           clients: dict[str, IPv6Address | None] | None = None) -> str:
    """Write the CA and one certificate per server name (and per client name: clientAuth,
    key mode 0600); returns the CA certificate's path.

    `key_owner` (uid, gid) is given to the servers' key files (Squid reads its key after
    dropping root).
    """
    directory = tls_dir(state_dir)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    os.chmod(directory, 0o755)
    ca_key, ca_cert = make_ca()
    pem = serialization.Encoding.PEM
    _write(ca_certificate_path(state_dir), ca_cert.public_bytes(pem), 0o644)
    for name, address in servers.items():
        key, cert = issue_server(ca_key, ca_cert, name, address)
        files = server_files(state_dir, name)
        _write(files.certificate, cert.public_bytes(pem), 0o644)
        _write(files.key, _key_pem(key), 0o640)
        if key_owner is not None:
            os.chown(files.key, *key_owner)
    for name, address in (clients or {}).items():
        key, cert = issue_server(ca_key, ca_cert, name, address,
                                 usage=ExtendedKeyUsageOID.CLIENT_AUTH)
        files = server_files(state_dir, name)
        _write(files.certificate, cert.public_bytes(pem), 0o644)
        _write(files.key, _key_pem(key), 0o600)
    return ca_certificate_path(state_dir)
