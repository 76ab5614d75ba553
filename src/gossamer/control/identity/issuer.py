"""Signing leaf certificates: the issuer's key turned into short-lived workload identities.

A leaf is what a proxy presents on both sides of mutual TLS: its only name is the identity
(SAN DNS), it may sign TLS handshakes (keyUsage digitalSignature) as a server and as a
client (extendedKeyUsage serverAuth, clientAuth), it is no CA, and it expires after
`lifetime` (never after the issuer itself). Nothing of the CSR but its public key is
copied: extensions a CSR asks for are ignored.

The `Issuer` holds the private key; it has no method that returns or prints it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gossamer.control.identity.ca import (
    DEFAULT_CLOCK_SKEW,
    authority_key_identifier,
    signature_hash,
)
from gossamer.control.identity.errors import IssuerUnavailable

DEFAULT_LEAF_LIFETIME = timedelta(hours=24)
# RFC 5280's upper bound for a CN; longer identities are named by the SAN alone.
_CN_MAX = 64

_LEAF_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)
_LEAF_EKU = x509.ExtendedKeyUsage(
    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
)
_NOT_CA = x509.BasicConstraints(ca=False, path_length=None)


@dataclass(frozen=True, slots=True)
class IssuedLeaf:
    certificate: x509.Certificate
    der: bytes
    chain_der: tuple[bytes, ...]  # the issuer, then any intermediates up to an anchor

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc


class Issuer:
    """An issuer CA ready to sign: its certificate, its key and its chain (validated by
    `trust.load_issuer` or made by `ca.generate_issuer`)."""

    __slots__ = ("_aki", "_chain_der", "_hash", "_key", "certificate", "chain")

    def __init__(
        self,
        certificate: x509.Certificate,
        key: ec.EllipticCurvePrivateKey,
        chain: tuple[x509.Certificate, ...] = (),
    ) -> None:
        self.certificate = certificate
        # The issuer first, then the intermediates above it (never the anchor).
        self.chain = (certificate, *chain)
        self._key = key
        self._hash = signature_hash(key)
        self._aki = authority_key_identifier(certificate)
        self._chain_der = tuple(c.public_bytes(serialization.Encoding.DER) for c in self.chain)

    def __repr__(self) -> str:
        return f"Issuer({self.certificate.subject.rfc4514_string()!r})"

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc

    def issue(
        self,
        public_key: ec.EllipticCurvePublicKey,
        identity: str,
        *,
        now: datetime,
        lifetime: timedelta = DEFAULT_LEAF_LIFETIME,
        clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
    ) -> IssuedLeaf:
        """A leaf for `identity` and `public_key` (both already checked by the caller)."""
        if not self.certificate.not_valid_before_utc <= now < self.not_after:
            raise IssuerUnavailable(
                f"the issuer certificate is valid from {self.certificate.not_valid_before_utc}"
                f" to {self.not_after}, not now ({now}): rotate it"
            )
        subject = (
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity)])
            if len(identity) <= _CN_MAX
            else x509.Name([])
        )
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(max(now - clock_skew, self.certificate.not_valid_before_utc))
            .not_valid_after(min(now + lifetime, self.not_after))
            .add_extension(_NOT_CA, critical=True)
            .add_extension(_LEAF_KEY_USAGE, critical=True)
            .add_extension(_LEAF_EKU, critical=False)
            # RFC 5280: the SAN is critical when it is the only name.
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(identity)]),
                critical=not subject.rdns,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(self._aki, critical=False)
            .sign(self._key, self._hash)
        )
        return IssuedLeaf(
            certificate, certificate.public_bytes(serialization.Encoding.DER), self._chain_der
        )
