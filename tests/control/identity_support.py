"""Helpers for the identity tests: CSRs made the way a proxy makes them, pods in a store."""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from gossamer.control.store import Store
from gossamer.core.resources import Resource

IDENTITY = "web.demo.serviceaccount.identity.gossamer.cluster.local"


def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make_csr(
    identity: str = IDENTITY,
    *,
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None = None,
    common_names: Sequence[str] | None = None,
    san: Sequence[x509.GeneralName] | None = None,
) -> bytes:
    """A DER CSR naming `identity` as CN and SAN DNS (unless told otherwise)."""
    key = key or p256()
    names = [identity] if common_names is None else list(common_names)
    subject = x509.Name(
        # _validate=False: a proxy's OpenSSL CSR may carry a CN over 64 characters.
        [x509.NameAttribute(NameOID.COMMON_NAME, cn, _validate=False) for cn in names]
    )
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    alt = [x509.DNSName(identity)] if san is None else list(san)
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    csr = builder.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.DER)


def tamper_signature(der: bytes) -> bytes:
    """The same CSR with its signature's last byte changed (still parses, no longer verifies)."""
    return der[:-1] + bytes([der[-1] ^ 0x01])


async def add_pod(
    store: Store, name: str = "web-1", namespace: str = "demo", service_account: str = "web"
) -> Resource:
    return await store.create(
        Resource.from_dict(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": namespace, "labels": {"app": "web"}},
                "spec": {
                    "serviceAccountName": service_account,
                    "containers": [{"name": "app", "command": ["sleep", "60"]}],
                },
            }
        )
    )
