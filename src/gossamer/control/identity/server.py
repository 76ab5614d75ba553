"""The identity gRPC service: Certify trades a token and a CSR for a leaf certificate.

One request is checked in the order that costs an unauthenticated caller the least of our
time: field sizes, then the token (`TokenValidator`), then that the token proves the
identity asked for, then the CSR (`csr.check_csr`), then the issuer signs (`Issuer.issue`).
Each refusal is a `CertifyError`, logged with its reason (never the token) and turned into a
gRPC status here and nowhere else (`STATUS_CODES`). Messages over 16 KiB are refused by gRPC
itself (RESOURCE_EXHAUSTED) before any parsing; at most `max_concurrent` requests are in
flight, later ones are refused rather than queued without bound.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import grpc

from gossamer.api.gen import identity_pb2 as pb
from gossamer.api.gen import identity_pb2_grpc as pb_grpc
from gossamer.control.identity.ca import DEFAULT_CLOCK_SKEW
from gossamer.control.identity.csr import MAX_CSR_BYTES, check_csr
from gossamer.control.identity.errors import (
    CertifyError,
    CsrRejected,
    IdentityMismatch,
    InvalidRequest,
    InvalidToken,
    IssuerUnavailable,
    ValidatorUnavailable,
)
from gossamer.control.identity.issuer import DEFAULT_LEAF_LIFETIME, Issuer
from gossamer.control.identity.validator import MAX_TOKEN_BYTES, TokenValidator

log = logging.getLogger("gossamer.control.identity")

MAX_IDENTITY_CHARS = 253
MAX_MESSAGE_BYTES = 16 * 1024
DEFAULT_MAX_CONCURRENT = 256

STATUS_CODES: dict[type[CertifyError], grpc.StatusCode] = {
    InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    InvalidToken: grpc.StatusCode.UNAUTHENTICATED,
    IdentityMismatch: grpc.StatusCode.PERMISSION_DENIED,
    CsrRejected: grpc.StatusCode.INVALID_ARGUMENT,
    ValidatorUnavailable: grpc.StatusCode.UNAVAILABLE,
    IssuerUnavailable: grpc.StatusCode.UNAVAILABLE,
}


class IdentityServer(pb_grpc.IdentityServicer):
    def __init__(
        self,
        issuer: Issuer,
        validator: TokenValidator,
        *,
        lifetime: timedelta = DEFAULT_LEAF_LIFETIME,
        clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if lifetime <= timedelta(0):
            raise ValueError(f"a certificate lifetime must be positive, not {lifetime}")
        self._issuer = issuer
        self._validator = validator
        self._lifetime = lifetime
        self._clock_skew = clock_skew
        self._max_concurrent = max_concurrent
        self._clock = clock
        self._server: grpc.aio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Starts serving; returns the bound port."""
        server = grpc.aio.server(
            options=[
                ("grpc.so_reuseport", 0),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ],
            maximum_concurrent_rpcs=self._max_concurrent,
        )
        pb_grpc.add_IdentityServicer_to_server(self, server)
        bound = server.add_insecure_port(f"{host}:{port}")
        if bound == 0:
            raise OSError(f"identity: cannot listen on {host}:{port}")
        await server.start()
        self._server = server
        log.info(
            "identity service listening on %s:%s (issuer %s, valid until %s)",
            host,
            bound,
            self._issuer.certificate.subject.rfc4514_string(),
            self._issuer.not_after,
        )
        return bound

    async def stop(self, grace: float = 1.0) -> None:
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None

    async def Certify(  # the generated servicer names it
        self, request: pb.CertifyRequest, context: grpc.aio.ServicerContext
    ) -> pb.CertifyResponse:
        try:
            return await self.certify(request)
        except CertifyError as error:
            code, message = status_code(error), str(error)
            log.warning(
                "certify refused (%s) for %r from %s: %s",
                error.reason,
                request.identity[:MAX_IDENTITY_CHARS],
                context.peer(),
                message,
            )
        except Exception:
            code, message = grpc.StatusCode.INTERNAL, "internal error"
            log.exception(
                "certify failed for %r from %s",
                request.identity[:MAX_IDENTITY_CHARS],
                context.peer(),
            )
        await context.abort(code, message)
        raise AssertionError("unreachable: abort raises")

    async def certify(self, request: pb.CertifyRequest) -> pb.CertifyResponse:
        """The whole check and issuance, without gRPC: a response or a CertifyError."""
        identity = request.identity
        token = request.token
        der = request.certificate_signing_request
        _require("identity", len(identity), MAX_IDENTITY_CHARS, "characters")
        _require("token", len(token), MAX_TOKEN_BYTES, "bytes")
        _require("certificate_signing_request", len(der), MAX_CSR_BYTES, "bytes")
        proven = await self._validator.validate(token)
        if proven != identity:
            raise IdentityMismatch(
                f"the token proves {proven!r}, not the requested {identity[:MAX_IDENTITY_CHARS]!r}"
            )
        public_key = check_csr(der, identity)
        leaf = self._issuer.issue(
            public_key,
            identity,
            now=datetime.fromtimestamp(self._clock(), UTC),
            lifetime=self._lifetime,
            clock_skew=self._clock_skew,
        )
        log.info(
            "certified %s until %s (serial %x)",
            identity,
            leaf.not_after.isoformat(),
            leaf.certificate.serial_number,
        )
        return pb.CertifyResponse(
            leaf_certificate=leaf.der,
            intermediate_certificates=leaf.chain_der,
            valid_until_unix_ms=int(leaf.not_after.timestamp() * 1000),
        )


def status_code(error: CertifyError) -> grpc.StatusCode:
    """The gRPC status a refusal is answered with (the nearest mapped class's)."""
    for kind in type(error).__mro__:
        if kind in STATUS_CODES:
            return STATUS_CODES[kind]
    return grpc.StatusCode.PERMISSION_DENIED


def _require(field: str, size: int, limit: int, unit: str) -> None:
    if size == 0:
        raise InvalidRequest(f"{field} is required")
    if size > limit:
        raise InvalidRequest(f"{field} is {size} {unit}; at most {limit} are accepted")
