"""`python -m bench.certify`: how many certificates per second the identity service issues.

A measurement, not a test. It starts `gossamer controller identity` as its own process (trust
from `ensure_trust`, pods in a SQLite store, join tokens, every request checked end to end:
HMAC, store lookup, CSR signature, leaf signing, one log line), and drives Certify over real
gRPC on loopback from this process with a fixed number of requests in flight. CSRs and
tokens are made beforehand, so the client's key generation is not measured. With two or more
cores the service runs on cpu1 and the client on cpu0, as in the main benchmark.

Prints certificates per second, latency percentiles, the service's CPU time per certificate
and its peak RSS.

`bench/run` measures the same thing as its `certify/grpc` scenario, with the pieces here:
`prepare` makes the store, trust and requests (written with `write_requests`), the testbed
runs the service in its control pod, and the runner starts this module with `--drive` in
that pod: it warms up, prints `warm`, waits for a line on stdin (so the runner's CPU and RSS
meter covers exactly the measured run), drives, and prints the result as one JSON line.
`--check` sends one request and checks the certificate (the scenario's preflight).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bench.loadgen import percentile
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
NAMESPACE = "bench"
IN_FLIGHT = 16


async def prepare(
    directory: Path, addr: str = "127.0.0.1:0"
) -> tuple[list[str], list[pb.CertifyRequest]]:
    """Trust, token key and a store of `PODS` pods in `directory`; returns the identity
    service's arguments (listening on `addr`) and one Certify request per pod."""
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
                    "metadata": {"name": name, "namespace": NAMESPACE},
                    "spec": {
                        "serviceAccountName": account,
                        "containers": [{"name": "app", "command": ["true"]}],
                    },
                }
            )
        )
        identity = identity_name(account, NAMESPACE)
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([]))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(identity)]), critical=False)
            .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
        )
        requests.append(
            pb.CertifyRequest(
                identity=identity,
                token=mint_join_token(key, NAMESPACE, name, pod.metadata.uid, account, 3600),
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
        "--addr", addr,
    ]  # fmt: skip
    return args, requests


def write_requests(path: Path, requests: list[pb.CertifyRequest]) -> None:
    """Length-prefixed serialized requests, for a driver in another process."""
    with path.open("wb") as out:
        for request in requests:
            data = request.SerializeToString()
            out.write(struct.pack(">I", len(data)) + data)


def read_requests(path: Path) -> list[pb.CertifyRequest]:
    data, requests, offset = path.read_bytes(), [], 0
    while offset < len(data):
        (size,) = struct.unpack_from(">I", data, offset)
        offset += 4
        requests.append(pb.CertifyRequest.FromString(data[offset : offset + size]))
        offset += size
    return requests


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


async def _run(
    stub: pb_grpc.IdentityStub,
    requests: list[pb.CertifyRequest],
    seconds: float,
    in_flight: int,
    latencies: list[float],
) -> int:
    """Closed loop: `in_flight` workers, each sending its next request when the previous
    one is answered, for `seconds`. Returns the number of failed requests."""
    end = time.monotonic() + seconds
    failed = 0

    async def worker(offset: int) -> None:
        nonlocal failed
        index = offset
        while time.monotonic() < end:
            start = time.perf_counter()
            try:
                await stub.Certify(requests[index % len(requests)], timeout=10)
            except grpc.aio.AioRpcError:
                failed += 1
            else:
                latencies.append(time.perf_counter() - start)
            index += in_flight

    await asyncio.gather(*(worker(i) for i in range(in_flight)))
    return failed


async def _drive(
    port: int, requests: list[pb.CertifyRequest], seconds: float, in_flight: int
) -> list[float]:
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.IdentityStub(channel)
        for request in requests[:in_flight]:  # warm up
            await stub.Certify(request, timeout=10)
        failed = await _run(stub, requests, seconds, in_flight, latencies)
    if failed:
        raise SystemExit(f"certify: {failed} Certify requests failed")
    return latencies


async def drive_for_runner(
    addr: str, requests: list[pb.CertifyRequest], warmup: float, seconds: float, in_flight: int
) -> dict[str, object]:
    """The `--drive` mode: warm up, print `warm`, wait for a line on stdin, drive."""
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(addr) as channel:
        stub = pb_grpc.IdentityStub(channel)
        warm_failed = await _run(stub, requests, warmup, in_flight, [])
        print("warm", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        started = time.monotonic()
        failed = await _run(stub, requests, seconds, in_flight, latencies)
        elapsed = time.monotonic() - started
    ordered = sorted(latencies)
    ms = [value * 1000 for value in ordered]
    return {
        "certificates": len(latencies),
        "seconds": elapsed,
        "failed": failed + warm_failed,
        "in_flight": in_flight,
        "p50_ms": percentile(ms, 0.50) if ms else None,
        "p99_ms": percentile(ms, 0.99) if ms else None,
        "max_ms": ms[-1] if ms else None,
    }


async def check(addr: str, request: pb.CertifyRequest) -> dict[str, object]:
    """One Certify: the leaf must name the requested identity (the runner's preflight)."""
    async with grpc.aio.insecure_channel(addr) as channel:
        stub = pb_grpc.IdentityStub(channel)
        response = await stub.Certify(request, timeout=10)
    leaf = x509.load_der_x509_certificate(response.leaf_certificate)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = names.get_values_for_type(x509.DNSName)
    return {"ok": dns == [request.identity], "identity": request.identity, "san": dns}


async def standalone(seconds: float, in_flight: int) -> None:
    two_cores = len(os.sched_getaffinity(0)) >= 2
    with tempfile.TemporaryDirectory(prefix="gossamer-certify-") as temp:
        directory = Path(temp)
        args, requests = await prepare(directory)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.certify",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--in-flight", type=int, default=IN_FLIGHT)
    parser.add_argument("--drive", metavar="HOST:PORT", help="drive this service (runner mode)")
    parser.add_argument("--check", metavar="HOST:PORT", help="one checked Certify (preflight)")
    parser.add_argument("--requests", type=Path, help="requests file (with --drive/--check)")
    parser.add_argument("--warmup", type=float, default=1.0, help="with --drive")
    options = parser.parse_args(argv)
    if options.drive or options.check:
        if options.requests is None:
            parser.error("--drive and --check need --requests")
        requests = read_requests(options.requests)
        if options.check:
            result = asyncio.run(check(options.check, requests[0]))
        else:
            result = asyncio.run(
                drive_for_runner(
                    options.drive, requests, options.warmup, options.seconds, options.in_flight
                )
            )
        print(json.dumps(result), flush=True)
        return 0 if result.get("ok", True) else 1
    asyncio.run(standalone(options.seconds, options.in_flight))
    return 0


if __name__ == "__main__":
    sys.exit(main())
