"""The identity service: the mesh's CA, issuing short-lived leaf certificates to proxies.

- `names`: identity names `{sa}.{ns}.serviceaccount.identity.gossamer.{trust-domain}`.
- `ca`: making a trust anchor and an issuer. `trust`: loading and checking them from files.
  `bootstrap`: `ensure_trust`, what `gossamer up` calls. `files`: 0600/0644 atomic writes.
- `csr`: checking a CSR. `issuer`: `Issuer`, which signs leaves.
- `validator`: the `TokenValidator` seam. `jointoken`: local mode's per-pod join tokens.
- `server`: `IdentityServer`, the Certify gRPC service; errors become gRPC codes there.
- `errors`: TrustError (configuration) and the CertifyError family (one refused request).

May import `gossamer.core`, `gossamer.api` and `gossamer.control.store`. The issuer's private
key stays inside this package's objects: nothing returns, logs or prints it.
"""

from gossamer.control.identity.bootstrap import TrustPaths, ensure_trust
from gossamer.control.identity.ca import Credentials, generate_issuer, generate_trust_anchor
from gossamer.control.identity.csr import MAX_CSR_BYTES, check_csr
from gossamer.control.identity.errors import (
    CertifyError,
    CsrRejected,
    IdentityError,
    IdentityMismatch,
    InvalidRequest,
    InvalidToken,
    IssuerUnavailable,
    TokenKeyError,
    TrustError,
    ValidatorUnavailable,
)
from gossamer.control.identity.files import write_private, write_public
from gossamer.control.identity.issuer import IssuedLeaf, Issuer
from gossamer.control.identity.jointoken import (
    LocalTokenValidator,
    ensure_token_key,
    load_token_key,
    mint_join_token,
)
from gossamer.control.identity.names import (
    DEFAULT_TRUST_DOMAIN,
    IdentityName,
    InvalidIdentityName,
    identity_name,
    parse_identity,
)
from gossamer.control.identity.server import IdentityServer
from gossamer.control.identity.trust import load_issuer, load_trust_anchors
from gossamer.control.identity.validator import MAX_TOKEN_BYTES, TokenValidator

__all__ = [
    "DEFAULT_TRUST_DOMAIN",
    "MAX_CSR_BYTES",
    "MAX_TOKEN_BYTES",
    "CertifyError",
    "Credentials",
    "CsrRejected",
    "IdentityError",
    "IdentityMismatch",
    "IdentityName",
    "IdentityServer",
    "InvalidIdentityName",
    "InvalidRequest",
    "InvalidToken",
    "IssuedLeaf",
    "Issuer",
    "IssuerUnavailable",
    "LocalTokenValidator",
    "TokenKeyError",
    "TokenValidator",
    "TrustError",
    "TrustPaths",
    "ValidatorUnavailable",
    "check_csr",
    "ensure_token_key",
    "ensure_trust",
    "generate_issuer",
    "generate_trust_anchor",
    "identity_name",
    "load_issuer",
    "load_token_key",
    "load_trust_anchors",
    "mint_join_token",
    "parse_identity",
    "write_private",
    "write_public",
]
