"""Local mode's per-pod join tokens: what a pod's proxy shows to get its certificate.

`gossamer up` keeps a random 32-byte signing key in the state directory (0600,
`ensure_token_key`). When a pod starts, the local runtime mints a token for it
(`mint_join_token`) and writes it 0600 into the pod's state directory for its proxy.

Format (ASCII, about 250 bytes):

    gjt1.<payload>.<mac>

    payload = base64url, unpadded, of the UTF-8 JSON object (keys sorted, no spaces)
              {"exp": <unix s>, "iat": <unix s>, "ns": <namespace>, "pod": <pod name>,
               "sa": <service account>, "uid": <pod uid>}
    mac     = base64url, unpadded, of HMAC-SHA256(key, "gjt1." + payload)

`LocalTokenValidator` accepts a token when its MAC matches (compared in constant time, before
the payload is even decoded), it has not expired, and the pod it names still exists in the
store with the same uid and service account. A token of a deleted pod, or of an earlier pod
of the same name (a new uid), is refused: a copied or replayed token dies with its pod. The
identity it proves is the pod's ServiceAccount identity in the validator's trust domain.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gossamer.control.identity.errors import InvalidToken, TokenKeyError, ValidatorUnavailable
from gossamer.control.identity.files import write_private
from gossamer.control.identity.names import (
    DEFAULT_TRUST_DOMAIN,
    InvalidIdentityName,
    identity_name,
)
from gossamer.control.store import NotFound, Store, StoreError
from gossamer.core.resources import PodSpec

KEY_BYTES = 32
PREFIX = b"gjt1."
MAX_JOIN_TOKEN_BYTES = 2048
_SHAPE = re.compile(rb"gjt1\.([A-Za-z0-9_-]{1,2000})\.([A-Za-z0-9_-]{43})")
_FIELDS = {"exp": int, "iat": int, "ns": str, "pod": str, "sa": str, "uid": str}


@dataclass(frozen=True, slots=True)
class JoinClaims:
    """What a valid join token says (its MAC checked, nothing else yet)."""

    exp: int
    iat: int
    ns: str
    pod: str
    sa: str
    uid: str


def ensure_token_key(path: Path | str) -> bytes:
    """The signing key at `path`, created (random, 0600) if the file does not exist."""
    path = Path(path)
    if not path.exists():
        write_private(path, secrets.token_bytes(KEY_BYTES))
    return load_token_key(path)


def load_token_key(path: Path | str) -> bytes:
    try:
        key = Path(path).read_bytes()
    except OSError as error:
        raise TokenKeyError(f"cannot read the token key {path}: {error.strerror}") from None
    if len(key) != KEY_BYTES:
        raise TokenKeyError(f"{path}: a token key is {KEY_BYTES} random bytes, not {len(key)}")
    return key


def mint_join_token(
    signing_key: bytes,
    namespace: str,
    pod_name: str,
    pod_uid: str,
    service_account: str,
    ttl: float,
    *,
    now: float | None = None,
) -> bytes:
    """A token proving `service_account`'s identity for the pod of that uid, for `ttl`
    seconds. Choose a ttl covering the pod's life (renewals need the token again: at least a
    day; a year is fine, since a token also dies with its pod)."""
    _check_key(signing_key)
    if not pod_uid:
        raise ValueError("a join token needs the pod's uid (the store sets it on create)")
    identity_name(service_account, namespace)  # refuse what could never validate
    issued = int(time.time() if now is None else now)
    claims = {
        "exp": issued + int(ttl),
        "iat": issued,
        "ns": namespace,
        "pod": pod_name,
        "sa": service_account,
        "uid": pod_uid,
    }
    payload = _b64(json.dumps(claims, sort_keys=True, separators=(",", ":")).encode())
    signed = PREFIX + payload
    return signed + b"." + _b64(_mac(signing_key, signed))


class LocalTokenValidator:
    """Validates join tokens against the key and the store (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        signing_key: bytes,
        *,
        trust_domain: str = DEFAULT_TRUST_DOMAIN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        _check_key(signing_key)
        self._store = store
        self._key = signing_key
        self._trust_domain = trust_domain
        self._clock = clock

    def __repr__(self) -> str:
        return f"LocalTokenValidator(trust_domain={self._trust_domain!r})"

    async def validate(self, token: bytes) -> str:
        claims = self._verified_claims(token)
        if claims.exp <= self._clock():
            raise InvalidToken("the join token has expired")
        namespace, name = claims.ns, claims.pod
        try:
            pod = await self._store.get("Pod", namespace, name)
        except NotFound:
            raise InvalidToken(
                f"pod {namespace}/{name} of the join token no longer exists"
            ) from None
        except StoreError as error:
            raise ValidatorUnavailable(f"cannot read pod {namespace}/{name}: {error}") from None
        if pod.metadata.uid != claims.uid:
            raise InvalidToken(
                f"pod {namespace}/{name} was replaced since its join token was made (uid differs)"
            )
        service_account = pod.spec_as(PodSpec).service_account_name
        if service_account != claims.sa:
            raise InvalidToken(
                f"pod {namespace}/{name} now runs as service account {service_account!r}, "
                "not the join token's"
            )
        try:
            return identity_name(service_account, namespace, self._trust_domain)
        except InvalidIdentityName as error:
            raise InvalidToken(str(error)) from None

    def _verified_claims(self, token: bytes) -> JoinClaims:
        match = _SHAPE.fullmatch(token) if len(token) <= MAX_JOIN_TOKEN_BYTES else None
        if match is None:
            raise InvalidToken("not a join token (malformed)")
        expected = _mac(self._key, token[: match.end(1)])
        if not hmac.compare_digest(expected, _unb64(match.group(2))):
            raise InvalidToken(
                "the join token's signature does not match (forged, or made with another key)"
            )
        # From here on the payload is ours: a failure below is a bug or a key leak.
        try:
            claims = json.loads(_unb64(match.group(1)))
        except (ValueError, UnicodeDecodeError):
            raise InvalidToken("the join token's payload is malformed") from None
        if not isinstance(claims, dict) or claims.keys() != _FIELDS.keys():
            raise InvalidToken("the join token's payload is malformed")
        for field, kind in _FIELDS.items():
            if type(claims[field]) is not kind:
                raise InvalidToken("the join token's payload is malformed")
        return JoinClaims(**claims)


def _mac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def _check_key(key: bytes) -> None:
    if len(key) != KEY_BYTES:
        raise TokenKeyError(f"a token signing key is {KEY_BYTES} bytes, not {len(key)}")


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _unb64(data: bytes) -> bytes:
    try:
        return base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return b""
