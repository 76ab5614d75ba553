"""Local mode's identity: the mesh's trust, the join-token key, and each pod's token.

`gossamer up` calls `prepare_trust`: the user's trust anchors and issuer, checked, or the
state directory's own, made once (`ensure_trust`: ECDSA P-256, 365 days), and the key that
signs join tokens (`ensure_token_key`). The supervisor's identity service signs leaves with
that issuer; for each meshed pod it mints a join token bound to the pod's `Pod` object (its
uid and service account) with `PodIdentities.issue`, which also says how its proxy finds the
identity service. A token of a deleted or replaced pod proves nothing any more: the identity
service checks the uid against the store.

Where things live, and who may read them:

    <state>/identity/            0700 root   trust-anchors.pem (0644), trust-anchor.key,
                                             issuer.crt (0644), issuer.key, token.key (0600)
    /run/gossamer/<node>/        0711 root   `StateDir.run_dir`: what the proxies read
        trust-anchors.pem        0644        a copy of the anchors the proxies trust
        pods/, pods/<ns>/        0711 root
        pods/<ns>/<pod>/         0700 2102   one proxy's directory
            join-token           0600 2102

The proxies run as uid 2102, which cannot enter a state directory under `/root`, and can
enter but not list the directories above: it reaches a token only by its path. /run is a
tmpfs: tokens never reach a disk. Every proxy runs as that same uid, so the kernel lets one
proxy read another's token, as it would let it read that proxy's memory; per-pod uids would
be needed to separate proxies from each other.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from gossamer.control.identity import (
    TokenKeyError,
    TrustError,
    TrustPaths,
    ensure_token_key,
    ensure_trust,
    identity_name,
    mint_join_token,
    write_private,
    write_public,
)
from gossamer.local.errors import LocalModeError
from gossamer.local.state import RUN_ROOT, StateDir

IDENTITY_PORT = 8080  # Linkerd's identity port
TOKEN_FILE = "join-token"
ANCHORS_FILE = "trust-anchors.pem"
# A token dies with its pod (the identity service checks the pod's uid), so it need not
# expire sooner; the proxy shows it again at every renewal.
TOKEN_TTL = 365 * 24 * 3600.0
DEFAULT_CERT_LIFETIME = 24 * 3600.0
MIN_CERT_LIFETIME = 60.0
MAX_CERT_LIFETIME = 365 * 24 * 3600.0
TRUST_FLAGS = (
    "--identity-trust-anchors-file",
    "--identity-issuer-certificate-file",
    "--identity-issuer-key-file",
)
_TRAVERSE_ONLY = 0o711


@dataclass(frozen=True, slots=True)
class TrustFiles:
    """The user's own trust (`gossamer up --identity-...-file`), all three or none."""

    trust_anchors: Path | None = None
    issuer_certificate: Path | None = None
    issuer_key: Path | None = None

    @property
    def given(self) -> bool:
        return any(self._all())

    def _all(self) -> tuple[Path | None, ...]:
        return (self.trust_anchors, self.issuer_certificate, self.issuer_key)


def check_cert_lifetime(seconds: float) -> float:
    if not MIN_CERT_LIFETIME <= seconds <= MAX_CERT_LIFETIME:
        raise ValueError(f"{seconds:g}s: a certificate lifetime is between 1m and 8760h")
    return seconds


def prepare_trust(state: StateDir, files: TrustFiles, trust_domain: str) -> TrustPaths:
    """Checked trust (the user's files, else the state directory's own, made if missing) and
    the join-token key; LocalModeError saying which file is wrong and how."""
    if files.given and not all(files._all()):
        raise LocalModeError(
            f"{', '.join(TRUST_FLAGS[:2])} and {TRUST_FLAGS[2]} go together: give all three "
            "to use your own trust anchor and issuer, or none to have them made"
        )
    state.identity_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    state.identity_dir.chmod(0o700)
    try:
        paths = ensure_trust(
            state.identity_dir,
            trust_domain,
            anchors_file=files.trust_anchors,
            issuer_cert_file=files.issuer_certificate,
            issuer_key_file=files.issuer_key,
        )
        ensure_token_key(state.token_key)
    except (TrustError, TokenKeyError) as error:
        raise LocalModeError(f"cannot use the identity trust: {error}") from None
    return paths


def remove_run_dir(state: StateDir) -> bool:
    """Remove the tokens and the anchors copy of this mesh; True if there were any."""
    existed = state.run_dir.exists()
    shutil.rmtree(state.run_dir, ignore_errors=True)
    with contextlib.suppress(OSError):
        RUN_ROOT.rmdir()  # only if no other mesh uses it
    return existed


class PodIdentities:
    """Join tokens for the pods of one node, and the environment their proxies need.

    The signing key stays inside: nothing here returns or prints it.
    """

    def __init__(
        self,
        run_dir: Path,
        signing_key: bytes,
        *,
        svc_addr: str,
        trust_domain: str,
        proxy_uid: int,
        token_ttl: float = TOKEN_TTL,
    ) -> None:
        self.run_dir = run_dir
        self.svc_addr = svc_addr
        self.trust_domain = trust_domain
        self._key = signing_key
        self._uid = proxy_uid
        self._ttl = token_ttl

    def __repr__(self) -> str:
        return f"PodIdentities({self.run_dir}, svc_addr={self.svc_addr!r})"

    @property
    def anchors_file(self) -> Path:
        return self.run_dir / ANCHORS_FILE

    def token_file(self, namespace: str, pod: str) -> Path:
        return self.run_dir / "pods" / namespace / pod / TOKEN_FILE

    def publish_anchors(self, pem: bytes) -> Path:
        """Put the trust anchors where every proxy can read them."""
        _traversable(RUN_ROOT, self.run_dir)
        write_public(self.anchors_file, pem)
        return self.anchors_file

    def issue(self, namespace: str, pod: str, pod_uid: str, service_account: str) -> dict[str, str]:
        """Write a token for the pod of that uid; the `GOSSAMER_PROXY_IDENTITY_*` variables
        its proxy needs. ValueError if the pod's identity cannot be a name."""
        name = identity_name(service_account, namespace, self.trust_domain)
        token = mint_join_token(self._key, namespace, pod, pod_uid, service_account, self._ttl)
        path = self.token_file(namespace, pod)
        _traversable(RUN_ROOT, self.run_dir, path.parent.parent.parent, path.parent.parent)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        os.chown(path.parent, self._uid, self._uid)
        path.parent.chmod(0o700)
        write_private(path, token)
        os.chown(path, self._uid, self._uid)
        return {
            "GOSSAMER_PROXY_IDENTITY_SVC_ADDR": self.svc_addr,
            "GOSSAMER_PROXY_IDENTITY_LOCAL_NAME": name,
            "GOSSAMER_PROXY_IDENTITY_TRUST_ANCHORS_FILE": str(self.anchors_file),
            "GOSSAMER_PROXY_IDENTITY_TOKEN_FILE": str(path),
        }

    def revoke(self, namespace: str, pod: str) -> None:
        """Remove the pod's token (its proxy is stopped; the token would be refused anyway
        once its `Pod` object is gone)."""
        directory = self.token_file(namespace, pod).parent
        shutil.rmtree(directory, ignore_errors=True)
        with contextlib.suppress(OSError):
            directory.parent.rmdir()

    def revoke_all(self) -> None:
        shutil.rmtree(self.run_dir / "pods", ignore_errors=True)


def _traversable(*directories: Path) -> None:
    """Each directory exists, root's, mode 0711: the proxy uid may pass, not list. /run/gossamer
    itself is shared (the sandbox keeps its locks there): it only gets the x bits it lacks."""
    for directory in directories:
        directory.mkdir(mode=_TRAVERSE_ONLY, exist_ok=True)
        if directory == RUN_ROOT:
            mode = directory.stat().st_mode & 0o7777
            if mode & _TRAVERSE_ONLY != _TRAVERSE_ONLY:
                directory.chmod(mode | _TRAVERSE_ONLY)
        else:
            directory.chmod(_TRAVERSE_ONLY)
