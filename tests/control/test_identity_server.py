"""The identity service over real gRPC on loopback: issuance, rotation, refusals, limits."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from gossamer.api.gen import identity_pb2 as pb
from gossamer.api.gen import identity_pb2_grpc as pb_grpc
from gossamer.control.identity import (
    Credentials,
    IdentityServer,
    InvalidToken,
    Issuer,
    LocalTokenValidator,
    TokenValidator,
    generate_issuer,
    generate_trust_anchor,
    mint_join_token,
)
from gossamer.control.store import MemoryStore
from gossamer.core.resources import PodSpec
from tests.control.identity_support import IDENTITY, add_pod, make_csr, p256, tamper_signature

KEY = bytes(range(32))
OTHER = "api.demo.serviceaccount.identity.gossamer.cluster.local"


@dataclass
class Mesh:
    anchor: Credentials
    issuer: Credentials
    store: MemoryStore
    stub: pb_grpc.IdentityStub
    servers: list[IdentityServer] = field(default_factory=list)

    async def token(self, name: str = "web-1", service_account: str = "web") -> bytes:
        pod = await add_pod(self.store, name, service_account=service_account)
        return mint_join_token(
            KEY, "demo", name, pod.metadata.uid, pod.spec_as(PodSpec).service_account_name, 3600
        )

    async def certify(
        self, token: bytes, csr: bytes | None = None, identity: str = IDENTITY
    ) -> pb.CertifyResponse:
        request = pb.CertifyRequest(
            identity=identity,
            token=token,
            certificate_signing_request=make_csr(identity) if csr is None else csr,
        )
        return await self.stub.Certify(request, timeout=10)


Serve = Callable[..., Any]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """`await serve(**IdentityServer options)` starts a service on loopback: a Mesh."""
    started: list[tuple[IdentityServer, grpc.aio.Channel, MemoryStore]] = []

    async def start(
        *,
        anchor: Credentials | None = None,
        issuer: Credentials | None = None,
        validator: TokenValidator | None = None,
        **options: Any,
    ) -> Mesh:
        anchor = anchor or generate_trust_anchor()
        issuer = issuer or generate_issuer(*anchor)
        store = MemoryStore()
        server = IdentityServer(
            Issuer(issuer.certificate, issuer.key),
            validator or LocalTokenValidator(store, KEY),
            **options,
        )
        port = await server.start("127.0.0.1", 0)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        started.append((server, channel, store))
        return Mesh(anchor, issuer, store, pb_grpc.IdentityStub(channel), [server])

    yield start
    for server, channel, store in started:
        await channel.close()
        await server.stop(0)
        await store.close()


def verify(
    response: pb.CertifyResponse, anchors: Sequence[x509.Certificate], identity: str = IDENTITY
) -> x509.Certificate:
    """Verifies the leaf as a TLS client and as a TLS server would; returns it."""
    leaf = x509.load_der_x509_certificate(response.leaf_certificate)
    chain = [x509.load_der_x509_certificate(der) for der in response.intermediate_certificates]
    store = verification.Store(list(anchors))
    builder = verification.PolicyBuilder().store(store)
    client = builder.build_client_verifier().verify(leaf, chain)
    assert client.subjects is not None
    assert [name.value for name in client.subjects] == [identity]
    builder.build_server_verifier(verification.DNSName(identity)).verify(leaf, chain)
    return leaf


async def test_a_leaf_for_the_identity_that_chains_to_the_anchor(serve: Serve) -> None:
    mesh = await serve()
    key = p256()
    before = datetime.now(UTC).replace(microsecond=0)
    response = await mesh.certify(await mesh.token(), make_csr(key=key))
    leaf = verify(response, [mesh.anchor.certificate])
    assert leaf.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [IDENTITY] and len(list(san)) == 1
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    issuer_ski = mesh.issuer.certificate.extensions.get_extension_for_class(
        x509.SubjectKeyIdentifier
    )
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == issuer_ski.value.digest
    assert leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    # Validity: 20 s of clock skew before now, 24 h after.
    after = datetime.now(UTC)
    assert before - timedelta(seconds=21) <= leaf.not_valid_before_utc <= after
    assert before + timedelta(hours=24) <= leaf.not_valid_after_utc
    assert leaf.not_valid_after_utc <= after + timedelta(hours=24)
    assert response.valid_until_unix_ms == int(leaf.not_valid_after_utc.timestamp() * 1000)
    assert list(response.intermediate_certificates) == [
        mesh.issuer.certificate.public_bytes(serialization.Encoding.DER)
    ]
    again = await mesh.certify(await mesh.token("web-2"))
    assert x509.load_der_x509_certificate(again.leaf_certificate).serial_number != (
        leaf.serial_number
    )


async def test_two_leaves_do_mutual_tls_with_openssl(serve: Serve, tmp_path: Path) -> None:
    """What the proxies do: each presents its leaf and the issuer, trusts the anchor."""
    mesh = await serve()

    async def credentials(name: str, identity: str, service_account: str) -> ssl.SSLContext:
        key = p256()
        response = await mesh.certify(
            await mesh.token(name, service_account), make_csr(identity, key=key), identity
        )
        chain = tmp_path / f"{name}.pem"
        chain.write_bytes(
            b"".join(
                x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
                for der in [response.leaf_certificate, *response.intermediate_certificates]
            )
        )
        key_file = tmp_path / f"{name}.key"
        key_file.write_bytes(Credentials(mesh.anchor.certificate, key).key_pem())
        side = ssl.Purpose.CLIENT_AUTH if name == "server" else ssl.Purpose.SERVER_AUTH
        context = ssl.create_default_context(side, cadata=mesh.anchor.certificate_pem().decode())
        context.load_cert_chain(chain, key_file)
        context.verify_mode = ssl.CERT_REQUIRED
        return context

    server_context = await credentials("server", IDENTITY, "web")
    client_context = await credentials("client", OTHER, "api")
    seen: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.set_result(writer.get_extra_info("peercert"))
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_context)
    port = listener.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_context, server_hostname=IDENTITY
        )
        assert await reader.read() == b"ok"
        writer.close()
        peer = await asyncio.wait_for(seen, 5)
        assert peer["subjectAltName"] == (("DNS", OTHER),)
    finally:
        listener.close()
        await listener.wait_closed()


async def test_rotation_a_bundle_trusts_leaves_of_the_old_and_the_new_issuer(
    serve: Serve,
) -> None:
    old = await serve()
    new_anchor = generate_trust_anchor()
    new = await serve(anchor=new_anchor)
    bundle = [old.anchor.certificate, new_anchor.certificate]
    verify(await old.certify(await old.token()), bundle)
    from_new = await new.certify(await new.token())
    verify(from_new, bundle)
    with pytest.raises(verification.VerificationError):
        verify(from_new, [old.anchor.certificate])


async def test_the_lifetime_is_configurable_down_to_seconds(serve: Serve) -> None:
    mesh = await serve(lifetime=timedelta(seconds=3))
    response = await mesh.certify(await mesh.token())
    assert 2.0 < response.valid_until_unix_ms / 1000 - time.time() <= 3.0
    verify(response, [mesh.anchor.certificate])


async def test_a_leaf_never_outlives_its_issuer(serve: Serve) -> None:
    anchor = generate_trust_anchor()
    issuer = generate_issuer(*anchor, lifetime=timedelta(hours=1))
    mesh = await serve(anchor=anchor, issuer=issuer)
    response = await mesh.certify(await mesh.token())
    leaf = x509.load_der_x509_certificate(response.leaf_certificate)
    assert leaf.not_valid_after_utc == issuer.certificate.not_valid_after_utc


@dataclass
class Refusal:
    code: grpc.StatusCode
    message: str


async def refusal(mesh: Mesh, request: pb.CertifyRequest) -> Refusal:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await mesh.stub.Certify(request, timeout=10)
    return Refusal(raised.value.code(), raised.value.details() or "")


async def test_every_bad_request_gets_a_precise_refusal(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    mesh = await serve()
    token = await mesh.token()
    expired = mint_join_token(
        KEY, "demo", "web-1", (await mesh.store.get("Pod", "demo", "web-1")).metadata.uid,
        "web", 60, now=time.time() - 120,
    )  # fmt: skip
    replayed = await mesh.token("web-old")
    await mesh.store.delete("Pod", "demo", "web-old")
    replaced = await mesh.token("web-3")
    await mesh.store.delete("Pod", "demo", "web-3")
    await add_pod(mesh.store, "web-3")
    good_csr = make_csr()
    codes = grpc.StatusCode
    cases: list[tuple[dict[str, Any], grpc.StatusCode, str]] = [
        ({"token": b"not a token"}, codes.UNAUTHENTICATED, "malformed"),
        ({"token": token[:-3] + b"abc"}, codes.UNAUTHENTICATED, "signature does not match"),
        ({"token": expired}, codes.UNAUTHENTICATED, "expired"),
        ({"token": replayed}, codes.UNAUTHENTICATED, "no longer exists"),
        ({"token": replaced}, codes.UNAUTHENTICATED, "replaced"),
        ({"identity": OTHER, "csr": make_csr(OTHER)}, codes.PERMISSION_DENIED, "token proves"),
        ({"csr": make_csr(OTHER)}, codes.INVALID_ARGUMENT, "not the requested identity"),
        ({"csr": tamper_signature(good_csr)}, codes.INVALID_ARGUMENT, "signature does not"),
        ({"csr": make_csr(key=rsa.generate_private_key(65537, 2048))}, codes.INVALID_ARGUMENT,
         "only EC P-256"),
        ({"csr": make_csr(key=ec.generate_private_key(ec.SECP384R1()))}, codes.INVALID_ARGUMENT,
         "only EC P-256"),
        ({"csr": b"\x00garbage\xff"}, codes.INVALID_ARGUMENT, "not a DER"),
        ({"csr": b""}, codes.INVALID_ARGUMENT, "certificate_signing_request is required"),
        ({"token": b""}, codes.INVALID_ARGUMENT, "token is required"),
        ({"identity": ""}, codes.INVALID_ARGUMENT, "identity is required"),
        ({"identity": "x" * 300}, codes.INVALID_ARGUMENT, "at most 253"),
        ({"csr": good_csr + bytes(5000)}, codes.INVALID_ARGUMENT, "at most 4096"),
        ({"token": bytes(9000)}, codes.INVALID_ARGUMENT, "at most 8192"),
        ({"token": bytes(20000)}, codes.RESOURCE_EXHAUSTED, "larger than max"),
    ]  # fmt: skip
    caplog.set_level(logging.INFO, "gossamer.control.identity")
    for fields, code, message in cases:
        request = pb.CertifyRequest(
            identity=fields.get("identity", IDENTITY),
            token=fields.get("token", token),
            certificate_signing_request=fields.get("csr", good_csr),
        )
        got = await refusal(mesh, request)
        assert got.code is code and message in got.message, (sorted(fields), got)
    # Nothing crashed: the service still certifies, and logged every refusal it saw.
    verify(await mesh.certify(token), [mesh.anchor.certificate])
    refused = [r for r in caplog.records if "certify refused" in r.getMessage()]
    assert len(refused) == len(cases) - 1  # gRPC itself refused the oversized message
    assert {r.getMessage().split("(")[1].split(")")[0] for r in refused} == {
        "invalid-token",
        "identity-mismatch",
        "bad-csr",
        "invalid-request",
    }
    # The token never appears in a log line.
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (token, expired, replayed, replaced):
        assert secret.decode() not in logged
        assert secret.split(b".")[2].decode() not in logged


async def test_an_expired_issuer_is_unavailability(serve: Serve) -> None:
    mesh = await serve(clock=lambda: time.time() + 400 * 86400)
    got = await refusal(
        mesh,
        pb.CertifyRequest(
            identity=IDENTITY, token=await mesh.token(), certificate_signing_request=make_csr()
        ),
    )
    assert got.code is grpc.StatusCode.UNAVAILABLE and "rotate it" in got.message


class BrokenValidator:
    async def validate(self, token: bytes) -> str:
        raise RuntimeError(f"bug while reading {token!r}")


async def test_an_unexpected_failure_is_internal_and_logs_no_secret(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    mesh = await serve(validator=BrokenValidator())
    request = pb.CertifyRequest(
        identity=IDENTITY, token=b"secret-token", certificate_signing_request=make_csr()
    )
    got = await refusal(mesh, request)
    assert (got.code, got.message) == (grpc.StatusCode.INTERNAL, "internal error")
    assert any("certify failed" in r.getMessage() for r in caplog.records)


class GateValidator:
    def __init__(self) -> None:
        self.entered = 0
        self.gate = asyncio.Event()

    async def validate(self, token: bytes) -> str:
        self.entered += 1
        await self.gate.wait()
        raise InvalidToken("closed")


async def test_requests_beyond_the_concurrency_bound_are_refused_not_queued(
    serve: Serve,
) -> None:
    validator = GateValidator()
    mesh = await serve(validator=validator, max_concurrent=2)
    request = pb.CertifyRequest(identity=IDENTITY, token=b"t", certificate_signing_request=b"c")
    waiting = [asyncio.create_task(refusal(mesh, request)) for _ in range(2)]
    while validator.entered < 2:
        await asyncio.sleep(0.01)
    third = await refusal(mesh, request)
    assert third.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    validator.gate.set()
    assert {r.code for r in await asyncio.gather(*waiting)} == {grpc.StatusCode.UNAUTHENTICATED}


async def test_concurrent_requests_each_get_their_own_leaf(serve: Serve) -> None:
    mesh = await serve()
    tokens = [await mesh.token(f"web-{i}") for i in range(40)]
    responses = await asyncio.gather(*(mesh.certify(token) for token in tokens))
    serials = {x509.load_der_x509_certificate(r.leaf_certificate).serial_number for r in responses}
    assert len(serials) == 40


async def test_the_issuer_key_never_leaves_the_service(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    mesh = await serve()
    response = await mesh.certify(await mesh.token())
    scalar = mesh.issuer.key.private_numbers().private_value.to_bytes(32, "big")
    assert scalar not in response.SerializeToString()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "PRIVATE KEY" not in logged and scalar.hex() not in logged
    assert "key" not in repr(mesh.servers[0]._issuer).lower()
