"""The mesh's CAs: generation, loading with checks, ensure_trust, and private file modes."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gossamer.control.identity import (
    Credentials,
    Issuer,
    TrustError,
    ensure_trust,
    generate_issuer,
    generate_trust_anchor,
    load_issuer,
    load_trust_anchors,
    write_private,
    write_public,
)
from gossamer.control.identity.bootstrap import ANCHOR_KEY_FILE

NOW = datetime.now(UTC)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def ext(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.Extension:
    return cert.extensions.get_extension_for_class(kind)


def not_a_ca(anchor: Credentials) -> Credentials:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(anchor.certificate.subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(minutes=1))
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(anchor.key, hashes.SHA256())
    )
    return Credentials(cert, key)


def write_pki(tmp: Path, anchors: list[Credentials], issuer: Credentials) -> tuple[Path, ...]:
    paths = (tmp / "anchors.pem", tmp / "issuer.crt", tmp / "issuer.key")
    write_public(paths[0], b"".join(a.certificate_pem() for a in anchors))
    write_public(paths[1], issuer.certificate_pem())
    write_private(paths[2], issuer.key_pem())
    return paths


@pytest.fixture
def umask_zero() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


# -- generation -------------------------------------------------------------------------


def test_trust_anchor_is_a_p256_root_ca_for_365_days() -> None:
    cert, key = generate_trust_anchor()
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    cert.verify_directly_issued_by(cert)
    assert cert.subject.rfc4514_string() == "CN=root.gossamer.cluster.local"
    constraints = ext(cert, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 1
    usage = ext(cert, x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert timedelta(days=365) <= life <= timedelta(days=365, minutes=1)
    assert ext(cert, x509.SubjectKeyIdentifier)


def test_issuer_is_signed_by_the_anchor_and_signs_leaves_only() -> None:
    anchor = generate_trust_anchor("example.org")
    issuer = generate_issuer(anchor.certificate, anchor.key, "example.org")
    issuer.certificate.verify_directly_issued_by(anchor.certificate)
    assert issuer.certificate.subject.rfc4514_string() == "CN=identity.gossamer.example.org"
    assert ext(issuer.certificate, x509.BasicConstraints).value.path_length == 0
    aki = ext(issuer.certificate, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ext(anchor.certificate, x509.SubjectKeyIdentifier).value.digest
    assert repr(Issuer(issuer.certificate, issuer.key)) == (
        "Issuer('CN=identity.gossamer.example.org')"
    )


def test_issuer_never_outlives_its_anchor() -> None:
    anchor = generate_trust_anchor(lifetime=timedelta(days=10))
    issuer = generate_issuer(*anchor, lifetime=timedelta(days=365))
    assert issuer.certificate.not_valid_after_utc <= anchor.certificate.not_valid_after_utc


# -- loading and checking ---------------------------------------------------------------


def test_a_bundle_of_two_anchors_accepts_the_issuer_of_either(tmp_path: Path) -> None:
    old, new = generate_trust_anchor(), generate_trust_anchor()
    for signer in (old, new):
        anchors_file, cert_file, key_file = write_pki(
            tmp_path, [old, new], generate_issuer(*signer)
        )
        anchors = load_trust_anchors(anchors_file)
        assert [a.serial_number for a in anchors] == [
            old.certificate.serial_number,
            new.certificate.serial_number,
        ]
        issuer = load_issuer(cert_file, key_file, anchors)
        assert issuer.certificate.issuer == signer.certificate.subject


def test_an_issuer_of_another_anchor_is_refused(tmp_path: Path) -> None:
    stranger = generate_trust_anchor()
    files = write_pki(tmp_path, [generate_trust_anchor()], generate_issuer(*stranger))
    with pytest.raises(TrustError, match="not signed by any trust anchor"):
        load_issuer(files[1], files[2], load_trust_anchors(files[0]))


def test_a_leaf_or_expired_or_mismatched_issuer_is_refused(tmp_path: Path) -> None:
    anchor = generate_trust_anchor()
    issuer = generate_issuer(*anchor)
    files = write_pki(tmp_path, [anchor], issuer)
    anchors = load_trust_anchors(files[0])
    later = NOW + timedelta(days=400)
    with pytest.raises(TrustError, match="not now"):
        load_issuer(files[1], files[2], anchors, now=later)
    write_private(files[2], generate_issuer(*anchor).key_pem())
    with pytest.raises(TrustError, match="key does not match"):
        load_issuer(files[1], files[2], anchors)
    # A certificate that is no CA cannot issue.
    leaf, leaf_key = not_a_ca(anchor)
    write_public(files[1], leaf.public_bytes(serialization.Encoding.PEM))
    write_private(files[2], Credentials(leaf, leaf_key).key_pem())
    with pytest.raises(TrustError, match="is not a CA"):
        load_issuer(files[1], files[2], anchors)


def test_an_anchor_that_forbids_intermediates_is_refused(tmp_path: Path) -> None:
    anchor = generate_trust_anchor()
    issuer = generate_issuer(*anchor)
    files = write_pki(tmp_path, [anchor], issuer)
    # The issuer as an "anchor": pathlen 0 leaves no room for a CA below it.
    below = generate_issuer(issuer.certificate, issuer.key)
    write_public(files[1], below.certificate_pem())
    write_private(files[2], below.key_pem())
    with pytest.raises(TrustError, match="pathlen 0"):
        load_issuer(files[1], files[2], [issuer.certificate])


def test_unusable_files_say_what_is_wrong(tmp_path: Path) -> None:
    anchor = generate_trust_anchor()
    files = write_pki(tmp_path, [anchor], generate_issuer(*anchor))
    with pytest.raises(TrustError, match=r"cannot read the trust anchors file .*missing"):
        load_trust_anchors(tmp_path / "missing")
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"hello")
    with pytest.raises(TrustError, match="no PEM certificates"):
        load_trust_anchors(garbage)
    with pytest.raises(TrustError, match="not an unencrypted PEM private key"):
        load_issuer(files[1], garbage, [anchor.certificate])
    rsa_key = rsa.generate_private_key(65537, 2048)
    rsa_pem = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_private(files[2], rsa_pem)
    with pytest.raises(TrustError, match="must be EC P-256 or P-384"):
        load_issuer(files[1], files[2], [anchor.certificate])
    encrypted = anchor.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    write_private(files[2], encrypted)
    with pytest.raises(TrustError, match="unencrypted"):
        load_issuer(files[1], files[2], [anchor.certificate])
    # A certificate that is no CA has no place in the anchors bundle.
    write_public(files[0], anchor.certificate_pem() + not_a_ca(anchor).certificate_pem())
    with pytest.raises(TrustError, match=r"certificate 2 .* is not a CA"):
        load_trust_anchors(files[0])


# -- ensure_trust ----------------------------------------------------------------------


def test_ensure_trust_makes_files_once_with_private_modes(tmp_path: Path) -> None:
    paths = ensure_trust(tmp_path / "identity")
    assert mode(paths.trust_anchors) == 0o644
    assert mode(paths.issuer_certificate) == 0o644
    assert mode(paths.issuer_key) == 0o600
    assert mode(tmp_path / "identity" / ANCHOR_KEY_FILE) == 0o600
    before = {p: p.read_bytes() for p in (tmp_path / "identity").iterdir()}
    assert ensure_trust(tmp_path / "identity") == paths
    assert {p: p.read_bytes() for p in (tmp_path / "identity").iterdir()} == before
    issuer = load_issuer(
        paths.issuer_certificate, paths.issuer_key, load_trust_anchors(paths.trust_anchors)
    )
    assert issuer.certificate.subject.rfc4514_string() == "CN=identity.gossamer.cluster.local"


def test_ensure_trust_renews_an_expired_issuer_from_the_anchor(tmp_path: Path) -> None:
    paths = ensure_trust(tmp_path)
    anchor_pem = paths.trust_anchors.read_bytes()
    old_issuer = paths.issuer_certificate.read_bytes()
    # The anchor outlives a first issuer only if that issuer was made shorter; emulate one
    # that expired by asking again at a time after its end but inside the anchor's life.
    anchor = load_trust_anchors(paths.trust_anchors)[0]
    short = generate_issuer(
        anchor,
        _anchor_key(tmp_path),
        lifetime=timedelta(days=1),
    )
    write_public(paths.issuer_certificate, short.certificate_pem())
    write_private(paths.issuer_key, short.key_pem())
    later = NOW + timedelta(days=2)
    assert ensure_trust(tmp_path, now=later) == paths
    assert paths.trust_anchors.read_bytes() == anchor_pem
    assert paths.issuer_certificate.read_bytes() not in (old_issuer, short.certificate_pem())
    load_issuer(paths.issuer_certificate, paths.issuer_key, [anchor], now=later)
    with pytest.raises(TrustError, match=r"expired .*remove"):
        ensure_trust(tmp_path, now=NOW + timedelta(days=400))


def _anchor_key(directory: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(
        (directory / ANCHOR_KEY_FILE).read_bytes(), password=None
    )
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def test_ensure_trust_uses_and_checks_the_users_files(tmp_path: Path) -> None:
    anchor = generate_trust_anchor()
    anchors_file, cert_file, key_file = write_pki(tmp_path, [anchor], generate_issuer(*anchor))
    state = tmp_path / "state"
    paths = ensure_trust(
        state, anchors_file=anchors_file, issuer_cert_file=cert_file, issuer_key_file=key_file
    )
    assert (paths.trust_anchors, paths.issuer_certificate, paths.issuer_key) == (
        anchors_file,
        cert_file,
        key_file,
    )
    assert not state.exists()  # nothing copied, no key duplicated
    with pytest.raises(TrustError, match="give all three"):
        ensure_trust(state, anchors_file=anchors_file)
    write_public(anchors_file, generate_trust_anchor().certificate_pem())
    with pytest.raises(TrustError, match="not signed by any trust anchor"):
        ensure_trust(
            state, anchors_file=anchors_file, issuer_cert_file=cert_file, issuer_key_file=key_file
        )


# -- files -------------------------------------------------------------------------------


def test_private_files_are_0600_and_public_0644_whatever_the_umask(
    tmp_path: Path, umask_zero: None
) -> None:
    write_private(tmp_path / "key", b"secret")
    write_public(tmp_path / "cert", b"public")
    assert mode(tmp_path / "key") == 0o600
    assert mode(tmp_path / "cert") == 0o644
    os.umask(0o077)
    write_public(tmp_path / "cert", b"again")
    assert mode(tmp_path / "cert") == 0o644
    (tmp_path / "loose").write_bytes(b"x")
    os.chmod(tmp_path / "loose", 0o666)
    write_private(tmp_path / "loose", b"now secret")
    assert mode(tmp_path / "loose") == 0o600
    assert (tmp_path / "loose").read_bytes() == b"now secret"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cert", "key", "loose"]
