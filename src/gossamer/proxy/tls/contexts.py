"""TLS contexts for mesh connections, built from the proxy's in-memory key and certificate.

The `ssl` module loads certificates and keys only from files. The key must not touch a
disk, so it goes through an anonymous memory file (memfd): the path `/proc/self/fd/N`
exists only for this process and only while we hold the descriptor.

Mesh TLS is TLS 1.3 only, mutual, and checked against the trust anchors alone (never the
system store). A client names the peer identity it expects as the server name; the
certificate's DNS SAN must equal it exactly.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass


@dataclass(frozen=True)
class IdentityMaterial:
    """What a proxy holds once certified: its key, its chain (leaf first), the anchors."""

    name: str
    key_pem: bytes
    chain_pem: bytes
    anchors_pem: bytes
    not_after: float  # unix time


def _load_chain(context: ssl.SSLContext, material: IdentityMaterial) -> None:
    fd = os.memfd_create("gossamer-identity", os.MFD_CLOEXEC)
    try:
        os.write(fd, material.chain_pem + b"\n" + material.key_pem)
        context.load_cert_chain(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def _mesh_context(protocol: int, material: IdentityMaterial) -> ssl.SSLContext:
    context = ssl.SSLContext(protocol)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=material.anchors_pem.decode("ascii"))
    _load_chain(context, material)
    return context


def server_context(material: IdentityMaterial) -> ssl.SSLContext:
    """For inbound mesh connections: present our certificate, require the client's."""
    return _mesh_context(ssl.PROTOCOL_TLS_SERVER, material)


def client_context(material: IdentityMaterial) -> ssl.SSLContext:
    """For outbound mesh connections: present ours, accept only the expected identity."""
    context = _mesh_context(ssl.PROTOCOL_TLS_CLIENT, material)
    context.check_hostname = True
    return context


def peer_identity(peercert: dict[str, object] | None) -> str | None:
    """The identity a verified peer certificate proves: its (single) DNS SAN."""
    if not peercert:
        return None
    names = [value for kind, value in peercert.get("subjectAltName", ()) if kind == "DNS"]  # type: ignore[attr-defined]
    return names[0] if len(names) == 1 else None
