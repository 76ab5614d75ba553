"""`ensure_trust`: the trust anchor and issuer a local mesh runs with, made once, then reused.

`gossamer up` calls it with its state directory. With the user's files
(`--identity-trust-anchors-file`, `--identity-issuer-certificate-file`,
`--identity-issuer-key-file`: all three or none) it checks them and points at them; nothing
is copied, so a key stays where its owner put it. Without them it keeps its own under
`<dir>`:

    trust-anchors.pem   the anchor certificate (0644): what proxies trust
    trust-anchor.key    the anchor's key (0600), kept so an expired issuer can be renewed
    issuer.crt          the issuer certificate (0644)
    issuer.key          the issuer's key (0600)

Idempotent: files that exist and check out are reused. An issuer that no longer checks out
(expired, or not matching the anchor) is replaced from the anchor key; an expired anchor is
an error naming the directory to remove, since a new anchor means restarting every pod.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

from gossamer.control.identity.ca import generate_issuer, generate_trust_anchor
from gossamer.control.identity.errors import TrustError
from gossamer.control.identity.files import write_private, write_public
from gossamer.control.identity.names import DEFAULT_TRUST_DOMAIN
from gossamer.control.identity.trust import (
    load_issuer,
    load_trust_anchors,
    parse_private_key,
)

log = logging.getLogger("gossamer.control.identity")

ANCHORS_FILE = "trust-anchors.pem"
ANCHOR_KEY_FILE = "trust-anchor.key"
ISSUER_CERT_FILE = "issuer.crt"
ISSUER_KEY_FILE = "issuer.key"


@dataclass(frozen=True, slots=True)
class TrustPaths:
    """Where the identity service and the proxies find the mesh's trust."""

    trust_anchors: Path
    issuer_certificate: Path
    issuer_key: Path


def ensure_trust(
    directory: Path | str,
    trust_domain: str = DEFAULT_TRUST_DOMAIN,
    *,
    anchors_file: Path | str | None = None,
    issuer_cert_file: Path | str | None = None,
    issuer_key_file: Path | str | None = None,
    now: datetime | None = None,
) -> TrustPaths:
    """Checked trust files: the user's if given, else this directory's (made if needed).
    TrustError says what is wrong and with which file."""
    current = now or datetime.now(UTC)
    given = (anchors_file, issuer_cert_file, issuer_key_file)
    if any(given):
        if not all(given):
            raise TrustError(
                "the trust anchors file, the issuer certificate file and the issuer key file "
                "go together: give all three, or none to have them generated"
            )
        assert anchors_file and issuer_cert_file and issuer_key_file
        paths = TrustPaths(
            Path(anchors_file).absolute(),
            Path(issuer_cert_file).absolute(),
            Path(issuer_key_file).absolute(),
        )
        anchors = load_trust_anchors(paths.trust_anchors, now=current)
        load_issuer(paths.issuer_certificate, paths.issuer_key, anchors, now=current)
        return paths
    return _ensure_own(Path(directory).absolute(), trust_domain, current)


def _ensure_own(directory: Path, trust_domain: str, now: datetime) -> TrustPaths:
    directory.mkdir(parents=True, exist_ok=True)
    paths = TrustPaths(
        directory / ANCHORS_FILE, directory / ISSUER_CERT_FILE, directory / ISSUER_KEY_FILE
    )
    anchor_key_path = directory / ANCHOR_KEY_FILE
    if not paths.trust_anchors.exists():
        anchor = generate_trust_anchor(trust_domain, now=now)
        write_private(anchor_key_path, anchor.key_pem())
        write_public(paths.trust_anchors, anchor.certificate_pem())
        log.info("identity: made a new trust anchor in %s", paths.trust_anchors)
    anchors = load_trust_anchors(paths.trust_anchors, now=now)
    if paths.issuer_certificate.exists() and paths.issuer_key.exists():
        try:
            load_issuer(paths.issuer_certificate, paths.issuer_key, anchors, now=now)
            return paths
        except TrustError as error:
            log.warning("identity: replacing the issuer in %s: %s", directory, error)
    _renew_issuer(paths, anchor_key_path, anchors, trust_domain, now)
    load_issuer(paths.issuer_certificate, paths.issuer_key, anchors, now=now)
    return paths


def _renew_issuer(
    paths: TrustPaths,
    anchor_key_path: Path,
    anchors: list[x509.Certificate],
    trust_domain: str,
    now: datetime,
) -> None:
    try:
        pem = anchor_key_path.read_bytes()
    except OSError as error:
        raise TrustError(
            f"cannot make an issuer: the trust anchor key {anchor_key_path} is unreadable "
            f"({error.strerror}); remove {paths.trust_anchors.parent} to start a new trust"
        ) from None
    anchor_key = parse_private_key(pem, str(anchor_key_path))
    public = anchor_key.public_key().public_numbers()
    matching = [a for a in anchors if _public_numbers(a) == public]
    if not matching:
        raise TrustError(
            f"{anchor_key_path} is the key of none of the anchors in {paths.trust_anchors}"
        )
    anchor = matching[0]
    if not anchor.not_valid_before_utc <= now < anchor.not_valid_after_utc:
        raise TrustError(
            f"the trust anchor in {paths.trust_anchors} expired on {anchor.not_valid_after_utc}: "
            f"remove {paths.trust_anchors.parent} to make a new one (every pod must then restart)"
        )
    issuer = generate_issuer(anchor, anchor_key, trust_domain, now=now)
    write_private(paths.issuer_key, issuer.key_pem())
    write_public(paths.issuer_certificate, issuer.certificate_pem())
    log.info("identity: made a new issuer, valid until %s", issuer.certificate.not_valid_after_utc)


def _public_numbers(certificate: x509.Certificate) -> object:
    key = certificate.public_key()
    numbers = getattr(key, "public_numbers", None)
    return numbers() if numbers is not None else None
