"""`gossamer controller identity` as its own process: serves Certify, stops on SIGTERM, and
refuses to start on unusable trust files with a clear message."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import grpc

from gossamer.api.gen import identity_pb2 as pb
from gossamer.api.gen import identity_pb2_grpc as pb_grpc
from gossamer.control.identity import (
    ensure_token_key,
    ensure_trust,
    generate_trust_anchor,
    mint_join_token,
    write_public,
)
from gossamer.control.store import SQLiteStore
from tests.control.identity_support import IDENTITY, add_pod, make_csr


async def start(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gossamer", "controller", "identity", *args,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def prepare(tmp_path: Path) -> tuple[list[str], bytes]:
    trust = ensure_trust(tmp_path / "identity")
    token_key = ensure_token_key(tmp_path / "token.key")
    store = SQLiteStore(tmp_path / "store.db")
    pod = await add_pod(store)
    await store.close()
    token = mint_join_token(token_key, "demo", "web-1", pod.metadata.uid, "web", 3600)
    args = [
        "--trust-anchors", str(trust.trust_anchors),
        "--issuer-cert", str(trust.issuer_certificate),
        "--issuer-key", str(trust.issuer_key),
        "--token-key", str(tmp_path / "token.key"),
        "--store", str(tmp_path / "store.db"),
        "--addr", "127.0.0.1:0",
        "--lifetime", "90s",
    ]  # fmt: skip
    return args, token


async def test_serves_certify_and_stops_on_sigterm(tmp_path: Path) -> None:
    args, token = await prepare(tmp_path)
    process = await start(*args)
    assert process.stderr is not None
    try:
        port = None
        while port is None:
            line = (await asyncio.wait_for(process.stderr.readline(), 20)).decode()
            assert line, "the identity controller exited before listening"
            if match := re.search(r"listening on 127\.0\.0\.1:(\d+)", line):
                port = int(match.group(1))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            response = await pb_grpc.IdentityStub(channel).Certify(
                pb.CertifyRequest(
                    identity=IDENTITY, token=token, certificate_signing_request=make_csr()
                ),
                timeout=10,
            )
        assert response.leaf_certificate and len(response.intermediate_certificates) == 1
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0
        rest = (await process.stderr.read()).decode()
        assert "certified " + IDENTITY in rest and token.decode() not in rest
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_refuses_to_start_with_an_issuer_of_another_anchor(tmp_path: Path) -> None:
    args, _ = await prepare(tmp_path)
    write_public(Path(args[1]), generate_trust_anchor().certificate_pem())
    process = await start(*args)
    _, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 1
    assert "not signed by any trust anchor" in err.decode()
    assert "Traceback" not in err.decode()


async def test_refuses_a_bad_lifetime_or_a_missing_token_key(tmp_path: Path) -> None:
    args, _ = await prepare(tmp_path)
    process = await start(*args[:-1], "soon")
    _, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 2 and "--lifetime" in err.decode()
    (tmp_path / "token.key").unlink()
    process = await start(*args)
    _, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 1 and "cannot read the token key" in err.decode()
