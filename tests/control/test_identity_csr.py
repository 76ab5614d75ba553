"""CSR checks, without sockets: what a proxy may ask to be certified for."""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from gossamer.control.identity import MAX_CSR_BYTES, CsrRejected, check_csr
from tests.control.identity_support import IDENTITY, make_csr, p256, tamper_signature

LONG = "a-rather-long-service-account.production.serviceaccount.identity.gossamer.cluster.local"
VALID = make_csr()


def test_accepts_cn_and_san_or_either_alone() -> None:
    key = p256()
    public = check_csr(make_csr(key=key), IDENTITY)
    assert public.public_numbers() == key.public_key().public_numbers()
    check_csr(make_csr(common_names=[]), IDENTITY)
    check_csr(make_csr(san=[]), IDENTITY)
    # Over 64 characters: fine as SAN, and as a CN as OpenSSL writes it.
    assert len(LONG) > 64
    check_csr(make_csr(LONG, common_names=[]), LONG)
    with pytest.warns(UserWarning, match="length"):  # only the test's builder warns
        long_cn = make_csr(LONG)
    check_csr(long_cn, LONG)


@pytest.mark.parametrize(
    ("identity", "subject"),
    [(IDENTITY, f"/CN={IDENTITY}"), (LONG, "/")],  # OpenSSL refuses a CN over 64 characters
)
def test_accepts_a_csr_made_by_openssl(tmp_path: Path, identity: str, subject: str) -> None:
    """The proxy builds its CSR with OpenSSL (libcrypto), not with `cryptography`."""
    key, csr = tmp_path / "key.pem", tmp_path / "csr.der"
    subprocess.run(
        ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-subj", subject,
         "-addext", f"subjectAltName=DNS:{identity}", "-outform", "DER", "-out", str(csr)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    check_csr(csr.read_bytes(), identity)


@pytest.mark.parametrize(
    ("der", "message"),
    [
        (make_csr("other.demo.serviceaccount.identity.gossamer.cluster.local"), "names 'other"),
        (make_csr(common_names=["other"]), "names 'other'"),
        (make_csr(san=[x509.DNSName(IDENTITY), x509.DNSName("evil.example")]), "evil.example"),
        (make_csr(common_names=[IDENTITY, "x"]), "names 'x'"),
        (make_csr(common_names=[], san=[]), "names no identity"),
        (make_csr(san=[x509.IPAddress(ipaddress.ip_address("10.0.0.1"))]), "IPAddress"),
        (make_csr(san=[x509.UniformResourceIdentifier("spiffe://x")]), "only DNS names"),
        (make_csr(IDENTITY.upper(), common_names=[IDENTITY]), "names 'WEB"),
        (tamper_signature(VALID), "signature does not verify"),
        (make_csr(key=rsa.generate_private_key(65537, 2048)), "RSA"),
        (make_csr(key=ec.generate_private_key(ec.SECP384R1())), "secp384r1"),
        (b"", "not a DER"),
        (b"garbage", "not a DER"),
        (VALID[:-10], "not a DER"),
        (b"-----BEGIN CERTIFICATE REQUEST-----\n", "not a DER"),
        (b"\x30" + b"\x82\xff\xff" + b"\x00" * 100, "not a DER"),
        (bytes(MAX_CSR_BYTES + 1), "at most 4096"),
    ],
)
def test_refusals_say_why(der: bytes, message: str) -> None:
    with pytest.raises(CsrRejected, match=message):
        check_csr(der, IDENTITY)


@settings(max_examples=300)
@given(st.binary(max_size=600))
def test_random_bytes_are_refused_never_crash(der: bytes) -> None:
    with pytest.raises(CsrRejected):
        check_csr(der, IDENTITY)


@settings(max_examples=500)
@given(st.integers(0, len(VALID) - 1), st.integers(1, 255))
def test_a_corrupted_byte_is_refused_never_crashes(position: int, flip: int) -> None:
    der = bytearray(VALID)
    der[position] ^= flip
    try:
        check_csr(bytes(der), IDENTITY)
    except CsrRejected:
        return
    # A few bytes may change without harm (the signature BIT STRING's unused-bits count,
    # which the parser tolerates): accepted only if the signed request itself is intact.
    original = x509.load_der_x509_csr(VALID)
    accepted = x509.load_der_x509_csr(bytes(der))
    assert accepted.tbs_certrequest_bytes == original.tbs_certrequest_bytes, (
        f"corrupting byte {position} with {flip:#x} changed the signed request and was accepted"
    )
