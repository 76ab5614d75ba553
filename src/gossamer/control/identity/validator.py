"""The seam between the identity service and whatever vouches for a workload.

`IdentityServer` asks a `TokenValidator` which identity a token proves. Local mode's
`LocalTokenValidator` (per-pod join tokens, `jointoken`) is one implementation; a Kubernetes
TokenReview validator is another, as Linkerd's identity service depends on its `Validator`
interface only.
"""

from __future__ import annotations

from typing import Protocol

MAX_TOKEN_BYTES = 8192  # a Kubernetes ServiceAccount JWT fits with room to spare


class TokenValidator(Protocol):
    async def validate(self, token: bytes) -> str:
        """The identity name `token` proves. Raises `InvalidToken` when it proves nothing,
        `ValidatorUnavailable` when it cannot be checked now. Never logs the token."""
        ...
