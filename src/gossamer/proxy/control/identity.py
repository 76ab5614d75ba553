"""The proxy's certificate lifecycle: make a key, get it certified, renew before expiry.

The key is generated in memory at start (tls/keys.py) and never leaves the process. The
proxy sends a CSR and its token to the identity service's `Certify`, builds TLS contexts
from the answer, and is not ready until it holds a certificate. It renews at 70% of the
lifetime; a failed renewal is retried with jittered backoff while the current certificate
keeps serving until it expires. New connections use the newest contexts; connections
already open keep theirs.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections.abc import Iterator

from gossamer.api.gen import identity_pb2 as pb
from gossamer.proxy.config import IdentityConfig
from gossamer.proxy.control.grpc import GrpcConnection, GrpcError
from gossamer.proxy.exposition import MetricFamily
from gossamer.proxy.tls.contexts import IdentityMaterial, client_context, server_context
from gossamer.proxy.tls.keys import new_key_and_csr

log = logging.getLogger("gossamer.proxy.identity")

CERTIFY_PATH = "/gossamer.identity.v1.Identity/Certify"


class CertifyError(Exception):
    pass


class IdentityManager:
    def __init__(self, config: IdentityConfig) -> None:
        self.config = config
        self.name = config.local_name
        self._key = new_key_and_csr(config.local_name)
        self.material: IdentityMaterial | None = None
        self.server_context: ssl.SSLContext | None = None
        self.client_context: ssl.SSLContext | None = None
        self.refreshes = 0
        self.failures = 0
        self._task: asyncio.Task[None] | None = None
        self.certified = asyncio.Event()

    def ready(self) -> bool:
        material = self.material
        return material is not None and material.not_after > time.time()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="identity")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        config = self.config
        delay = config.backoff_min
        while True:
            try:
                material = await self.certify()
            except asyncio.CancelledError:
                raise
            except (CertifyError, GrpcError, OSError, TimeoutError, ssl.SSLError) as error:
                self.failures += 1
                remaining = (self.material.not_after - time.time()) if self.material else 0
                log.warning(
                    "certify as %s failed: %s; retrying in %.1fs%s", self.name, error, delay,
                    f" (current certificate valid {remaining:.0f}s more)" if remaining > 0 else "",
                )  # fmt: skip
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, config.backoff_max)
                continue
            delay = config.backoff_min
            self._install(material)
            lifetime = material.not_after - time.time()
            await asyncio.sleep(max(lifetime * config.refresh_fraction, 0.05))

    def _install(self, material: IdentityMaterial) -> None:
        self.server_context = server_context(material)
        self.client_context = client_context(material)
        first = self.material is None
        self.material = material
        self.refreshes += 1
        self.certified.set()
        log.info(
            "%s certificate for %s, valid until %s",
            "got" if first else "renewed", self.name,
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(material.not_after)),
        )  # fmt: skip

    async def certify(self) -> IdentityMaterial:
        config = self.config
        try:
            with open(config.token_file, "rb") as handle:
                token = handle.read().strip()
        except OSError as error:
            raise CertifyError(f"cannot read the identity token: {error}") from None
        request = pb.CertifyRequest(
            identity=self.name, token=token, certificate_signing_request=self._key.csr_der
        ).SerializeToString()
        conn = await GrpcConnection.connect(config.svc_addr.host, config.svc_addr.port, 5.0)
        try:
            call = conn.call(CERTIFY_PATH, request)
            message = await asyncio.wait_for(call.message(), 10.0)
            if message is None:
                raise CertifyError("the identity service sent no certificate")
            await asyncio.wait_for(call.message(), 5.0)  # the call's status
        finally:
            conn.close()
        response = pb.CertifyResponse.FromString(message)
        if not response.leaf_certificate:
            raise CertifyError("the identity service sent an empty certificate")
        chain = [response.leaf_certificate, *response.intermediate_certificates]
        chain_pem = "".join(ssl.DER_cert_to_PEM_cert(der) for der in chain).encode("ascii")
        return IdentityMaterial(
            name=self.name,
            key_pem=self._key.key_pem,
            chain_pem=chain_pem,
            anchors_pem=self.config.trust_anchors_pem,
            not_after=response.valid_until_unix_ms / 1000.0,
        )

    def collect(self) -> Iterator[MetricFamily]:
        expiry = MetricFamily(
            "identity_cert_expiration_timestamp_seconds",
            "Time when this proxy's current certificate expires (in seconds since the epoch)",
            "gauge",
        )
        expiry.add(
            "identity_cert_expiration_timestamp_seconds",
            (),
            self.material.not_after if self.material else 0,
        )
        refresh = MetricFamily(
            "identity_cert_refresh_count", "The total number of certificate refreshes", "counter"
        )
        refresh.add("identity_cert_refresh_count", (), self.refreshes)
        failures = MetricFamily(
            "identity_cert_refresh_failures_total",
            "Failed attempts to get a certificate",
            "counter",
        )
        failures.add("identity_cert_refresh_failures_total", (), self.failures)
        yield from (expiry, refresh, failures)
