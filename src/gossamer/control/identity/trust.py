"""Loading trust anchors and issuer credentials from PEM files, and checking them.

The anchors file may hold several certificates: during a rotation it is a bundle of the old
and the new anchor, so proxies trust leaves of either issuer. The issuer certificate file
holds the issuer first, optionally followed by intermediates up to (not including) an anchor;
the key file holds the issuer's unencrypted private key (PKCS#8 or SEC1 PEM).

An issuer is accepted when every certificate of its chain is a CA allowed to sign
certificates (basicConstraints CA, keyUsage keyCertSign if present, path lengths leaving room
for what is below it), valid now, signed by the next one, the last signed by a valid anchor,
and the key is an EC P-256/P-384 key matching the issuer's certificate. Anything else is a
`TrustError` naming the file and the fault, raised at load time rather than at the first
handshake a proxy fails.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gossamer.control.identity.errors import TrustError
from gossamer.control.identity.issuer import Issuer

log = logging.getLogger("gossamer.control.identity")

ACCEPTED_CURVES = (ec.SECP256R1, ec.SECP384R1)


def load_trust_anchors(path: Path | str, *, now: datetime | None = None) -> list[x509.Certificate]:
    """Every anchor of a PEM bundle; TrustError if there is none, or one is no CA."""
    return parse_trust_anchors(_read(path, "trust anchors"), str(path), now=now)


def parse_trust_anchors(
    pem: bytes, source: str = "trust anchors", *, now: datetime | None = None
) -> list[x509.Certificate]:
    anchors = _parse_certificates(pem, source)
    current = now or datetime.now(UTC)
    for index, anchor in enumerate(anchors):
        what = f"{source}: certificate {index + 1} ({_subject(anchor)})"
        _require_ca(anchor, what)
        if not _valid_at(anchor, current):
            log.warning("%s is not valid now (%s to %s)", what, *_window(anchor))
    return anchors


def load_issuer(
    certificate_path: Path | str,
    key_path: Path | str,
    anchors: Sequence[x509.Certificate],
    *,
    now: datetime | None = None,
) -> Issuer:
    """The issuer of the files, checked against `anchors` (see the module docstring)."""
    chain = _parse_certificates(
        _read(certificate_path, "issuer certificate"), str(certificate_path)
    )
    key = parse_private_key(_read(key_path, "issuer key"), str(key_path))
    check_issuer(chain, key, anchors, now=now, source=str(certificate_path))
    return Issuer(chain[0], key, tuple(chain[1:]))


def parse_private_key(pem: bytes, source: str) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise TrustError(f"{source}: not an unencrypted PEM private key ({error})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
        key.curve, ACCEPTED_CURVES
    ):
        raise TrustError(f"{source}: the issuer key must be EC P-256 or P-384, not {_kind(key)}")
    return key


def check_issuer(
    chain: Sequence[x509.Certificate],
    key: ec.EllipticCurvePrivateKey,
    anchors: Sequence[x509.Certificate],
    *,
    now: datetime | None = None,
    source: str = "issuer certificate",
) -> None:
    """TrustError unless `chain` (issuer first) is a usable CA chain ending at an anchor and
    `key` belongs to the issuer."""
    if not chain:
        raise TrustError(f"{source}: no certificate")
    current = now or datetime.now(UTC)
    for depth, certificate in enumerate(chain):
        what = f"{source}: {_subject(certificate)}"
        _require_ca(certificate, what, below=depth)
        if not _valid_at(certificate, current):
            start, end = _window(certificate)
            raise TrustError(f"{what} is valid from {start} to {end}, not now ({current})")
        if depth + 1 < len(chain) and not _issued_by(certificate, chain[depth + 1]):
            raise TrustError(
                f"{what} is not signed by the next certificate of the file "
                f"({_subject(chain[depth + 1])})"
            )
    top = chain[-1]
    signers = [anchor for anchor in anchors if _issued_by(top, anchor)]
    if not signers:
        names = ", ".join(_subject(anchor) for anchor in anchors) or "none"
        raise TrustError(
            f"{source}: {_subject(top)} (issued by {top.issuer.rfc4514_string()}) is not "
            f"signed by any trust anchor ({names})"
        )
    usable = [anchor for anchor in signers if _valid_at(anchor, current)]
    if not usable:
        raise TrustError(f"{source}: the trust anchor {_subject(signers[0])} has expired")
    for anchor in usable:
        _require_ca(anchor, f"trust anchor {_subject(anchor)}", below=len(chain))
    if key.public_key().public_numbers() != _ec_public_key(chain[0], source).public_numbers():
        raise TrustError(f"{source}: the issuer key does not match the issuer certificate")


def _read(path: Path | str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise TrustError(f"cannot read the {what} file {path}: {error.strerror}") from None


def _parse_certificates(pem: bytes, source: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError as error:
        raise TrustError(f"{source}: no PEM certificates ({error})") from None


def _require_ca(certificate: x509.Certificate, what: str, *, below: int = 0) -> None:
    """`below`: how many CA certificates of the chain it must be allowed to sign."""
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        raise TrustError(f"{what} is not a CA (no basicConstraints)") from None
    except ValueError as error:
        raise TrustError(f"{what} has malformed extensions ({error})") from None
    if not constraints.ca:
        raise TrustError(f"{what} is not a CA (basicConstraints CA:FALSE)")
    if constraints.path_length is not None and constraints.path_length < below:
        raise TrustError(
            f"{what} has pathlen {constraints.path_length}; it must allow {below} CA(s) below it"
        )
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not usage.key_cert_sign:
        raise TrustError(f"{what} may not sign certificates (keyUsage lacks keyCertSign)")


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _ec_public_key(certificate: x509.Certificate, source: str) -> ec.EllipticCurvePublicKey:
    try:
        public_key = certificate.public_key()
    except (ValueError, UnsupportedAlgorithm) as error:
        raise TrustError(f"{source}: unreadable public key ({error})") from None
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise TrustError(
            f"{source}: the issuer certificate's key must be EC, not {_kind(public_key)}"
        )
    return public_key


def _valid_at(certificate: x509.Certificate, now: datetime) -> bool:
    return certificate.not_valid_before_utc <= now < certificate.not_valid_after_utc


def _window(certificate: x509.Certificate) -> tuple[datetime, datetime]:
    return certificate.not_valid_before_utc, certificate.not_valid_after_utc


def _subject(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string() or "(empty subject)"


def _kind(key: object) -> str:
    curve = getattr(key, "curve", None)
    if curve is not None:
        return f"EC {curve.name}"
    size = getattr(key, "key_size", None)
    name = type(key).__name__.removeprefix("_").replace("PrivateKey", "").replace("PublicKey", "")
    return f"{name} {size}" if size else name
