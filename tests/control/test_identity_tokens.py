"""Join tokens: minted by the local runtime, validated against the key and the store.

Runs on both store backends (the `store` fixture of tests/control/conftest.py).
"""

from __future__ import annotations

import base64
import json
import stat
import time
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gossamer.control.identity import (
    InvalidToken,
    LocalTokenValidator,
    TokenKeyError,
    ValidatorUnavailable,
    ensure_token_key,
    load_token_key,
    mint_join_token,
)
from gossamer.control.identity.jointoken import PREFIX, _b64, _mac
from gossamer.control.store import Store
from gossamer.core.resources import PodSpec
from tests.control.identity_support import IDENTITY, add_pod

KEY = bytes(range(32))
DAY = 86400.0


async def token_for(store: Store, *, ttl: float = DAY, key: bytes = KEY, **pod: str) -> bytes:
    resource = await add_pod(store, **pod)
    return mint_join_token(
        key,
        resource.namespace,
        resource.name,
        resource.metadata.uid,
        resource.spec_as(PodSpec).service_account_name,
        ttl,
    )


async def test_a_live_pods_token_proves_its_service_account(store: Store) -> None:
    token = await token_for(store)
    assert await LocalTokenValidator(store, KEY).validate(token) == IDENTITY
    other_domain = LocalTokenValidator(store, KEY, trust_domain="example.org")
    assert await other_domain.validate(token) == (
        "web.demo.serviceaccount.identity.gossamer.example.org"
    )


async def test_the_format_is_compact_and_readable(store: Store) -> None:
    pod = await add_pod(store)
    token = mint_join_token(KEY, "demo", "web-1", pod.metadata.uid, "web", 60, now=1000)
    prefix, payload, mac = token.split(b".")
    assert prefix == b"gjt1" and len(mac) == 43 and len(token) < 300
    claims = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
    assert claims == {
        "exp": 1060,
        "iat": 1000,
        "ns": "demo",
        "pod": "web-1",
        "sa": "web",
        "uid": pod.metadata.uid,
    }
    assert token.isascii() and b"=" not in token


async def test_forged_tokens_are_refused(store: Store) -> None:
    token = await token_for(store)
    validator = LocalTokenValidator(store, KEY)
    prefix, payload, mac = token.split(b".")
    # Another pod's claims under the original MAC.
    claims = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
    claims["sa"] = "admin"
    forged_payload = _b64(json.dumps(claims, sort_keys=True, separators=(",", ":")).encode())
    forged = [
        b".".join((prefix, forged_payload, mac)),
        token[:-2] + (b"AA" if token[-2:] != b"AA" else b"BB"),
        mint_join_token(bytes(32), "demo", "web-1", claims["uid"], "web", DAY),  # other key
    ]
    for candidate in forged:
        with pytest.raises(InvalidToken, match="signature does not match"):
            await validator.validate(candidate)
    for malformed in [b"", b"gjt1..", b"gjt2" + token[4:], token + b".x", token[:-1], b"x" * 5000]:
        with pytest.raises(InvalidToken, match="malformed"):
            await validator.validate(malformed)


async def test_a_well_signed_but_malformed_payload_is_refused(store: Store) -> None:
    validator = LocalTokenValidator(store, KEY)
    for payload in [b"[]", b"{}", b'{"exp":"1"}', b"\xff", b'{"exp":1,"iat":1,"ns":1,"pod":"p",'
                    b'"sa":"s","uid":"u"}']:  # fmt: skip
        signed = PREFIX + _b64(payload)
        token = signed + b"." + _b64(_mac(KEY, signed))
        with pytest.raises(InvalidToken, match="payload is malformed"):
            await validator.validate(token)


async def test_an_expired_token_is_refused(store: Store) -> None:
    token = await token_for(store, ttl=60)
    now = time.time()
    assert await LocalTokenValidator(store, KEY, clock=lambda: now + 59).validate(token)
    with pytest.raises(InvalidToken, match="expired"):
        await LocalTokenValidator(store, KEY, clock=lambda: now + 61).validate(token)


async def test_a_token_dies_with_its_pod(store: Store) -> None:
    """A replayed token: the pod was deleted, or replaced by a new pod of the same name."""
    token = await token_for(store)
    validator = LocalTokenValidator(store, KEY)
    await store.delete("Pod", "demo", "web-1")
    with pytest.raises(InvalidToken, match="no longer exists"):
        await validator.validate(token)
    replacement = await add_pod(store)
    with pytest.raises(InvalidToken, match="replaced"):
        await validator.validate(token)
    fresh = mint_join_token(KEY, "demo", "web-1", replacement.metadata.uid, "web", DAY)
    assert await validator.validate(fresh) == IDENTITY


async def test_a_changed_service_account_voids_the_token(store: Store) -> None:
    token = await token_for(store)
    pod = await store.get("Pod", "demo", "web-1")
    spec = replace(pod.spec_as(PodSpec), service_account_name="admin")
    await store.update(replace(pod, spec=spec))
    with pytest.raises(InvalidToken, match="service account 'admin'"):
        await LocalTokenValidator(store, KEY).validate(token)


async def test_a_failing_store_is_unavailability_not_a_refusal(store: Store) -> None:
    token = await token_for(store)
    validator = LocalTokenValidator(store, KEY)
    await store.close()
    with pytest.raises(ValidatorUnavailable, match="closed"):
        await validator.validate(token)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.binary(max_size=400) | st.from_regex(rb"gjt1\.[A-Za-z0-9_-]{0,80}\.[A-Za-z0-9_-]{43}")
)
async def test_arbitrary_bytes_are_refused_never_crash(store: Store, data: bytes) -> None:
    with pytest.raises(InvalidToken):
        await LocalTokenValidator(store, KEY).validate(data)


def test_minting_refuses_what_could_never_validate() -> None:
    with pytest.raises(TokenKeyError):
        mint_join_token(b"short", "demo", "web-1", "uid", "web", DAY)
    with pytest.raises(ValueError, match="uid"):
        mint_join_token(KEY, "demo", "web-1", "", "web", DAY)
    with pytest.raises(ValueError, match="service account"):
        mint_join_token(KEY, "demo", "web-1", "uid", "Not_Valid", DAY)


def test_the_signing_key_is_made_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "token.key"
    key = ensure_token_key(path)
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_token_key(path) == key == load_token_key(path)
    assert ensure_token_key(tmp_path / "other.key") != key
    path.write_bytes(b"short")
    with pytest.raises(TokenKeyError, match="32 random bytes"):
        load_token_key(path)
    with pytest.raises(TokenKeyError, match="cannot read"):
        load_token_key(tmp_path / "missing.key")
