"""Checking a proxy's certificate signing request before anything is signed for it.

A CSR is accepted when it is a DER PKCS#10 request whose signature verifies with its own
public key (proof that the caller holds the private key), the key is EC P-256 (the leaf key
type of the design; P-384 and RSA are refused: the proxy makes P-256 keys, and one key type
keeps every TLS peer's work predictable), and every name it carries, the subject CN(s) and
the SAN DNS names, equals the requested identity exactly, with at least one of them present.
A SAN of any other type (IP, URI, email) is refused. Other subject attributes are ignored:
only the public key of the CSR goes into the leaf.

Pure: bytes in, a public key or a `CsrRejected` out.
"""

from __future__ import annotations

import warnings

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gossamer.control.identity.errors import CsrRejected

MAX_CSR_BYTES = 4096
_PARSE_ERRORS = (ValueError, TypeError, UnsupportedAlgorithm, x509.InvalidVersion)


def check_csr(der: bytes, identity: str) -> ec.EllipticCurvePublicKey:
    """The CSR's public key, if the CSR may be certified as `identity`."""
    if len(der) > MAX_CSR_BYTES:
        raise CsrRejected(f"the CSR is {len(der)} bytes; at most {MAX_CSR_BYTES} are accepted")
    try:
        csr = x509.load_der_x509_csr(der)
        public_key = csr.public_key()
    except _PARSE_ERRORS:
        raise CsrRejected("not a DER-encoded PKCS#10 certificate signing request") from None
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
        public_key.curve, ec.SECP256R1
    ):
        raise CsrRejected(f"its key is {_describe(public_key)}; only EC P-256 is accepted")
    try:
        signed = csr.is_signature_valid
    except _PARSE_ERRORS:
        signed = False
    if not signed:
        raise CsrRejected("its signature does not verify (no proof of possession of the key)")
    names = _names(csr)
    if not names:
        raise CsrRejected("it names no identity: set the subject CN or a SAN DNS name")
    for name in names:
        if name != identity:
            raise CsrRejected(f"it names {name[:256]!r}, not the requested identity")
    return public_key


def _names(csr: x509.CertificateSigningRequest) -> list[str]:
    try:
        with warnings.catch_warnings():
            # cryptography warns of a CN over 64 characters; OpenSSL-made CSRs may hold one.
            warnings.simplefilter("ignore", UserWarning)
            common_names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        names = [attribute.value for attribute in common_names]
        try:
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return [str(name) for name in names]
    except _PARSE_ERRORS:
        raise CsrRejected("its subject or extensions are malformed") from None
    for general_name in san:
        if not isinstance(general_name, x509.DNSName):
            raise CsrRejected(
                f"its SAN holds a {type(general_name).__name__}; only DNS names are accepted"
            )
        names.append(general_name.value)
    return [str(name) for name in names]


def _describe(key: object) -> str:
    curve = getattr(key, "curve", None)
    if curve is not None:
        return f"EC {curve.name}"
    size = getattr(key, "key_size", None)
    kind = type(key).__name__.removeprefix("_").replace("PublicKey", "")
    return f"{kind} {size}" if size else kind
