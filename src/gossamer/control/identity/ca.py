"""Making the mesh's certificate authorities: a trust anchor and an issuer signed by it.

The trust anchor (root) is what every proxy trusts; the issuer is the intermediate CA the
identity service signs leaves with. Both are ECDSA P-256, valid 365 days by default, as
`gossamer install` / `gossamer up` make them (Linkerd's `root.linkerd.cluster.local` and
`identity.linkerd.cluster.local`, under our names). Path lengths allow exactly the shape the
mesh uses: anchor (pathlen 1) → issuer (pathlen 0) → leaf.

Pure functions of a clock reading: no files (see `bootstrap`), no global state.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gossamer.control.identity.names import DEFAULT_TRUST_DOMAIN

DEFAULT_CA_LIFETIME = timedelta(days=365)
# Certificates start this long before "now", so a peer whose clock is a little behind
# accepts them at once.
DEFAULT_CLOCK_SKEW = timedelta(seconds=20)


class Credentials(NamedTuple):
    """A certificate and its private key: `cert, key = generate_trust_anchor()`."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        """PKCS#8 PEM, unencrypted: write it with `write_private` only."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def anchor_common_name(trust_domain: str = DEFAULT_TRUST_DOMAIN) -> str:
    return f"root.gossamer.{trust_domain}"


def issuer_common_name(trust_domain: str = DEFAULT_TRUST_DOMAIN) -> str:
    return f"identity.gossamer.{trust_domain}"


def generate_trust_anchor(
    trust_domain: str = DEFAULT_TRUST_DOMAIN,
    *,
    lifetime: timedelta = DEFAULT_CA_LIFETIME,
    now: datetime | None = None,
) -> Credentials:
    """A new self-signed root CA (pathlen 1: it may sign issuers, which sign leaves)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(anchor_common_name(trust_domain))
    certificate = (
        _ca_builder(name, key.public_key(), path_length=1, lifetime=lifetime, now=now)
        .issuer_name(name)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .sign(key, signature_hash(key))
    )
    return Credentials(certificate, key)


def generate_issuer(
    anchor_cert: x509.Certificate,
    anchor_key: ec.EllipticCurvePrivateKey,
    trust_domain: str = DEFAULT_TRUST_DOMAIN,
    *,
    lifetime: timedelta = DEFAULT_CA_LIFETIME,
    now: datetime | None = None,
) -> Credentials:
    """A new issuer CA signed by the anchor (pathlen 0: it signs leaves only). Its validity
    ends no later than the anchor's."""
    key = ec.generate_private_key(ec.SECP256R1())
    current = now or datetime.now(UTC)
    lifetime = min(lifetime, anchor_cert.not_valid_after_utc - current)
    certificate = (
        _ca_builder(
            _name(issuer_common_name(trust_domain)),
            key.public_key(),
            path_length=0,
            lifetime=lifetime,
            now=current,
        )
        .issuer_name(anchor_cert.subject)
        .add_extension(authority_key_identifier(anchor_cert), critical=False)
        .sign(anchor_key, signature_hash(anchor_key))
    )
    return Credentials(certificate, key)


def authority_key_identifier(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """The AKI of a certificate `issuer` signs: its SKI when it has one."""
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        public_key = issuer.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key)
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def signature_hash(key: ec.EllipticCurvePrivateKey) -> hashes.SHA256 | hashes.SHA384:
    """The hash matching the key's curve: SHA-256 for P-256, SHA-384 for P-384."""
    return hashes.SHA384() if key.curve.key_size >= 384 else hashes.SHA256()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca_builder(
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    *,
    path_length: int,
    lifetime: timedelta,
    now: datetime | None,
) -> x509.CertificateBuilder:
    start = now or datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - DEFAULT_CLOCK_SKEW)
        .not_valid_after(start + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
