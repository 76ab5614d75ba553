"""The identity service's typed errors; `server` maps them to gRPC codes in one place.

`TrustError` is a configuration problem found when loading or creating the trust anchors and
the issuer: it stops a process from starting, with a message naming the file and the fault.
`CertifyError`s refuse one Certify request; each carries a short `reason` for logs (never the
token, never key material).
"""

from __future__ import annotations


class IdentityError(Exception):
    """Any error of the identity package."""


class TrustError(IdentityError):
    """Trust anchors or issuer credentials that cannot be used (missing, malformed,
    expired, not a CA, not chaining to an anchor, key not matching its certificate)."""


class TokenKeyError(IdentityError):
    """The join-token signing key file is missing or malformed."""


class CertifyError(IdentityError):
    """A Certify request refused. `reason` is a short stable label for logs and metrics."""

    reason = "refused"


class InvalidRequest(CertifyError):
    """Fields missing or over their size limit."""

    reason = "invalid-request"


class InvalidToken(CertifyError):
    """The token proves no identity: malformed, forged, expired, or its pod is gone or was
    replaced (a replayed token)."""

    reason = "invalid-token"


class IdentityMismatch(CertifyError):
    """The token proves an identity other than the one requested."""

    reason = "identity-mismatch"


class CsrRejected(CertifyError):
    """The CSR does not parse, its signature does not verify, its key is not accepted, or it
    names something other than the requested identity."""

    reason = "bad-csr"


class ValidatorUnavailable(CertifyError):
    """Tokens cannot be checked right now (the store or TokenReview failed): retry."""

    reason = "validator-unavailable"


class IssuerUnavailable(CertifyError):
    """The issuer cannot sign now (its certificate expired): retry after rotation."""

    reason = "issuer-unavailable"
