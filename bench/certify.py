"""`python -m bench.certify`: how many certificates per second the identity service issues.

A measurement, not a test. It starts `gossamer controller identity` as its own process (trust
from `ensure_trust`, pods in a SQLite store, join tokens, every request checked end to end:
HMAC, store lookup, CSR signature, leaf signing, one log line), and drives Certify over real
gRPC on loopback from this process with a fixed number of requests in flight. CSRs and
tokens are made beforehand, so the client's key generation is not measured. With two or more
cores the service runs on cpu1 and the client on cpu0, as in the main benchmark.

Prints certificates per second, latency percentiles, the service's CPU time per certificate
and its peak RSS. Not yet part of `bench/run`'s table: a scenario there is an HTTP path.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bench.procstat import cpu_seconds, rss_kb
from gossamer.api.gen import identity_pb2 as pb
from gossamer.api.gen import identity_pb2_grpc as pb_grpc
from gossamer.control.identity import (
    ensure_token_key,
    ensure_trust,
    identity_name,
    mint_join_token,
)
from gossamer.control.store import SQLiteStore
from gossamer.core.resources import Resource

PODS = 64


async def _prepare(directory: Path) -> tuple[list[str], list[pb.CertifyRequest]]:
    trust = ensure_trust(directory / "identity")
    key = ensure_token_key(directory / "token.key")
    store = SQLiteStore(directory / "store.db")
    requests = []
    for index in range(PODS):
        name, account = f"web-{index}", f"sa-{index % 8}"
        pod = await store.create(
            Resource.from_dict(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": name, "namespace": "bench"},
                    "spec": {
                        "serviceAccountName": account,
                        "containers": [{"name": "app", "command": ["true"]}],
                    },
                }
            )
        )
        identity = identity_name(account, "bench")
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([]))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(identity)]), critical=False)
            .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
        )
        requests.append(
            pb.CertifyRequest(
                identity=identity,
                token=mint_join_token(key, "bench", name, pod.metadata.uid, account, 3600),
                certificate_signing_request=csr.public_bytes(serialization.Encoding.DER),
            )
        )
    await store.close()
    args = [
        "--trust-anchors", str(trust.trust_anchors),
        "--issuer-cert", str(trust.issuer_certificate),
        "--issuer-key", str(trust.issuer_key),
        "--token-key", str(directory / "token.key"),
        "--store", str(directory / "store.db"),
        "--addr", "127.0.0.1:0",
    ]  # fmt: skip
    return args, requests


async def _listening_port(log: Path, process: asyncio.subprocess.Process) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise SystemExit(f"the identity service exited:\n{log.read_text()}")
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", log.read_text())
        if match:
            return int(match.group(1))
        await asyncio.sleep(0.05)
    raise SystemExit("the identity service did not start listening within 20 s")


async def _drive(
    port: int, requests: list[pb.CertifyRequest], seconds: float, in_flight: int
) -> list[float]:
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.IdentityStub(channel)
        for request in requests[:in_flight]:  # warm up
            await stub.Certify(request, timeout=10)
        end = time.monotonic() + seconds

        async def worker(offset: int) -> None:
            index = offset
            while time.monotonic() < end:
                start = time.perf_counter()
                await stub.Certify(requests[index % len(requests)], timeout=10)
                latencies.append(time.perf_counter() - start)
                index += in_flight

        await asyncio.gather(*(worker(i) for i in range(in_flight)))
    return latencies


async def main(seconds: float, in_flight: int) -> None:
    two_cores = len(os.sched_getaffinity(0)) >= 2
    with tempfile.TemporaryDirectory(prefix="gossamer-certify-") as temp:
        directory = Path(temp)
        args, requests = await _prepare(directory)
        log = directory / "identity.log"
        with log.open("wb") as sink:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gossamer", "controller", "identity", *args,
                stdout=asyncio.subprocess.DEVNULL, stderr=sink,
            )  # fmt: skip
        try:
            if two_cores:
                os.sched_setaffinity(process.pid, {1})
                os.sched_setaffinity(0, {0})
            port = await _listening_port(log, process)
            cpu_before = cpu_seconds(process.pid)
            started = time.monotonic()
            latencies = await _drive(port, requests, seconds, in_flight)
            elapsed = time.monotonic() - started
            cpu = cpu_seconds(process.pid) - cpu_before
            rss = rss_kb(process.pid)
        finally:
            process.terminate()
            await process.wait()
    count = len(latencies)
    cuts = statistics.quantiles(latencies, n=100)
    print(f"certify: {count / elapsed:.0f} certificates/s over real gRPC on loopback")
    print(
        f"  {count} certificates in {elapsed:.1f} s, {in_flight} in flight, "
        f"{'service on cpu1, client on cpu0' if two_cores else 'one core shared'}"
    )
    print(
        f"  latency p50 {cuts[49] * 1000:.2f} ms, p99 {cuts[98] * 1000:.2f} ms; "
        f"service CPU {cpu / count * 1e6:.0f} us/certificate; service RSS {rss / 1024:.0f} MiB"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.certify", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--in-flight", type=int, default=16)
    options = parser.parse_args()
    asyncio.run(main(options.seconds, options.in_flight))
