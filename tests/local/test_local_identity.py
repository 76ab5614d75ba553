"""Local mode's identity files: the trust `gossamer up` makes or checks, the join tokens the
supervisor writes for each pod (where the proxy uid can read them, and nobody else), the
identity service refusing a replaced pod's token, and what a proxy's log tells."""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gossamer.control.identity import (
    InvalidToken,
    LocalTokenValidator,
    generate_issuer,
    generate_trust_anchor,
    load_token_key,
    write_private,
    write_public,
)
from gossamer.control.store import SQLiteStore
from gossamer.core.resources import Resource
from gossamer.local.errors import LocalModeError
from gossamer.local.identity import (
    PodIdentities,
    TrustFiles,
    check_cert_lifetime,
    prepare_trust,
    remove_run_dir,
)
from gossamer.local.pod import PROXY_UID
from gossamer.local.state import RUN_ROOT, StateDir
from gossamer.local.supervisor.proxylog import ProxyLog, certify_failure

DOMAIN = "cluster.local"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def user_trust(directory: Path, *, foreign_issuer: bool = False) -> TrustFiles:
    """An anchor and an issuer of the user's own (the issuer signed by another anchor if
    `foreign_issuer`)."""
    anchor = generate_trust_anchor(DOMAIN)
    signer = generate_trust_anchor(DOMAIN) if foreign_issuer else anchor
    issuer = generate_issuer(*signer, DOMAIN)
    directory.mkdir(parents=True, exist_ok=True)
    files = TrustFiles(directory / "ca.pem", directory / "issuer.pem", directory / "issuer.key")
    assert files.trust_anchors and files.issuer_certificate and files.issuer_key
    write_public(files.trust_anchors, anchor.certificate_pem())
    write_public(files.issuer_certificate, issuer.certificate_pem())
    write_private(files.issuer_key, issuer.key_pem())
    return files


def test_up_makes_its_trust_once_with_private_keys(tmp_path: Path) -> None:
    state = StateDir.at(tmp_path / "mesh")
    state.root.mkdir()
    paths = prepare_trust(state, TrustFiles(), DOMAIN)
    assert paths.trust_anchors.parent == state.identity_dir and mode(state.identity_dir) == 0o700
    keys = [paths.issuer_key, state.identity_dir / "trust-anchor.key", state.token_key]
    assert [mode(key) for key in keys] == [0o600] * 3
    assert mode(paths.trust_anchors) == mode(paths.issuer_certificate) == 0o644
    before = {path: path.read_bytes() for path in state.identity_dir.iterdir()}
    assert prepare_trust(state, TrustFiles(), DOMAIN) == paths
    assert {path: path.read_bytes() for path in state.identity_dir.iterdir()} == before
    assert len(load_token_key(state.token_key)) == 32


def test_the_users_trust_is_used_where_it_is(tmp_path: Path) -> None:
    state = StateDir.at(tmp_path / "mesh")
    files = user_trust(tmp_path / "mine")
    paths = prepare_trust(state, files, DOMAIN)
    assert (paths.trust_anchors, paths.issuer_certificate, paths.issuer_key) == (
        files.trust_anchors,
        files.issuer_certificate,
        files.issuer_key,
    )
    # Nothing of the trust is copied into the state directory: only the token key is made.
    assert sorted(p.name for p in state.identity_dir.iterdir()) == ["token.key"]


def test_unusable_trust_is_refused_with_what_is_wrong(tmp_path: Path) -> None:
    state = StateDir.at(tmp_path / "mesh")
    good = user_trust(tmp_path / "good")
    with pytest.raises(LocalModeError, match="go together: give all three"):
        prepare_trust(state, TrustFiles(good.trust_anchors, good.issuer_certificate), DOMAIN)
    foreign = user_trust(tmp_path / "foreign", foreign_issuer=True)
    with pytest.raises(LocalModeError, match="is not signed by any trust anchor"):
        prepare_trust(state, foreign, DOMAIN)
    missing = TrustFiles(tmp_path / "nope.pem", good.issuer_certificate, good.issuer_key)
    with pytest.raises(LocalModeError, match=r"cannot read the trust anchors file .*nope\.pem"):
        prepare_trust(state, missing, DOMAIN)
    swapped = TrustFiles(good.trust_anchors, good.issuer_certificate, foreign.issuer_key)
    with pytest.raises(LocalModeError, match="the issuer key does not match"):
        prepare_trust(state, swapped, DOMAIN)


def test_cert_lifetime_bounds() -> None:
    assert check_cert_lifetime(86400) == 86400
    for seconds in (0, 59, 366 * 86400):
        with pytest.raises(ValueError, match="between 1m and 8760h"):
            check_cert_lifetime(seconds)


@pytest.fixture
def run_dir() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.fail("join tokens are written as root for uid 2102 (CI runs as root)")
    directory = RUN_ROOT / f"test-{secrets.token_hex(4)}"
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def as_proxy(*argv: str) -> subprocess.CompletedProcess[str]:
    prefix = ["setpriv", f"--reuid={PROXY_UID}", f"--regid={PROXY_UID}", "--clear-groups"]
    return subprocess.run([*prefix, *argv], capture_output=True, text=True, check=False)


def test_tokens_are_the_proxy_uids_alone(run_dir: Path) -> None:
    identities = PodIdentities(
        run_dir,
        secrets.token_bytes(32),
        svc_addr="10.77.0.1:8080",
        trust_domain=DOMAIN,
        proxy_uid=PROXY_UID,
    )
    assert "PodIdentities(" in repr(identities) and "svc_addr" in repr(identities)
    anchors = identities.publish_anchors(generate_trust_anchor().certificate_pem())
    env = identities.issue("demo", "web-0", "uid-1", "web")
    token = Path(env["GOSSAMER_PROXY_IDENTITY_TOKEN_FILE"])
    assert env == {
        "GOSSAMER_PROXY_IDENTITY_SVC_ADDR": "10.77.0.1:8080",
        "GOSSAMER_PROXY_IDENTITY_LOCAL_NAME": f"web.demo.serviceaccount.identity.gossamer.{DOMAIN}",
        "GOSSAMER_PROXY_IDENTITY_TRUST_ANCHORS_FILE": str(anchors),
        "GOSSAMER_PROXY_IDENTITY_TOKEN_FILE": str(run_dir / "pods/demo/web-0/join-token"),
    }
    info = token.stat()
    assert (info.st_uid, info.st_gid, mode(token)) == (PROXY_UID, PROXY_UID, 0o600)
    assert (token.parent.stat().st_uid, mode(token.parent)) == (PROXY_UID, 0o700)
    for directory in (run_dir, run_dir / "pods", run_dir / "pods/demo"):
        assert (directory.stat().st_uid, mode(directory)) == (0, 0o711)
    assert mode(anchors) == 0o644
    # The proxy uid reads its token and the anchors by path, but cannot list who else has one.
    assert as_proxy("cat", str(token)).stdout == token.read_text()
    assert "BEGIN CERTIFICATE" in as_proxy("cat", str(anchors)).stdout
    assert as_proxy("ls", str(run_dir / "pods/demo")).returncode != 0
    # Another unprivileged uid reads neither the token nor its directory.
    other = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "cat", str(token)],
        capture_output=True,
        check=False,
    )
    assert other.returncode != 0
    identities.issue("demo", "web-1", "uid-2", "web")
    identities.revoke("demo", "web-0")
    assert not token.parent.exists() and (run_dir / "pods/demo/web-1").is_dir()
    identities.revoke_all()
    assert not (run_dir / "pods").exists() and anchors.exists()


def test_an_identity_too_long_for_a_name_gets_no_token(run_dir: Path) -> None:
    identities = PodIdentities(
        run_dir, secrets.token_bytes(32), svc_addr="x:1", trust_domain=DOMAIN, proxy_uid=0
    )
    with pytest.raises(ValueError, match="253"):
        identities.issue("demo", "web-0", "uid", ".".join(["a" * 60] * 4))
    assert not (run_dir / "pods/demo/web-0/join-token").exists()


def test_remove_run_dir(tmp_path: Path) -> None:
    state = StateDir.at(tmp_path)
    state.run_dir.mkdir(parents=True)
    (state.run_dir / "x").write_text("")
    assert remove_run_dir(state) and not state.run_dir.exists()
    assert not remove_run_dir(state)


def pod(name: str, service_account: str) -> Resource:
    return Resource.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "demo"},
            "spec": {"serviceAccountName": service_account, "containers": [{"name": "a"}]},
        }
    )


async def test_a_replaced_pods_token_is_refused(run_dir: Path, tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    identities = PodIdentities(
        run_dir, key, svc_addr="x:1", trust_domain=DOMAIN, proxy_uid=PROXY_UID
    )
    store = SQLiteStore(tmp_path / "store.db")
    try:
        validator = LocalTokenValidator(store, key, trust_domain=DOMAIN)
        first = await store.apply(pod("web-0", "web"))
        env = identities.issue("demo", "web-0", first.metadata.uid, "web")
        token = Path(env["GOSSAMER_PROXY_IDENTITY_TOKEN_FILE"]).read_bytes()
        assert await validator.validate(token) == env["GOSSAMER_PROXY_IDENTITY_LOCAL_NAME"]
        # The Pod object is deleted and made again (a replaced pod): a new uid.
        await store.delete("Pod", "demo", "web-0")
        second = await store.apply(pod("web-0", "web"))
        assert second.metadata.uid != first.metadata.uid
        with pytest.raises(InvalidToken, match="was replaced"):
            await validator.validate(token)
        fresh = identities.issue("demo", "web-0", second.metadata.uid, "web")
        renewed = Path(fresh["GOSSAMER_PROXY_IDENTITY_TOKEN_FILE"]).read_bytes()
        assert renewed != token and await validator.validate(renewed)
        await store.delete("Pod", "demo", "web-0")
        with pytest.raises(InvalidToken, match="no longer exists"):
            await validator.validate(renewed)
    finally:
        await store.close()


def test_certify_failures_are_read_from_the_proxys_log(tmp_path: Path) -> None:
    line = (
        "2026-01-01 00:00:00,000 WARNING gossamer.proxy.identity: certify as "
        "web.demo.serviceaccount.identity.gossamer.cluster.local failed: grpc status 16: pod "
        "demo/web-0 was replaced since its join token was made (uid differs); retrying in 0.5s"
    )
    why = "grpc status 16: pod demo/web-0 was replaced since its join token was made (uid differs)"
    assert certify_failure(line) == why
    assert certify_failure("INFO gossamer.proxy: proxy ready") is None
    path = tmp_path / "proxy.log"
    path.write_text(line.replace("web-0", "old-0") + "\n")  # an earlier proxy's
    log = ProxyLog(path)
    assert not log.read() and log.certify_failure is None
    with path.open("a") as out:
        out.write("INFO starting\n" + line[:40])
    assert not log.read() and log.last_line == "INFO starting"
    with path.open("a") as out:
        out.write(line[40:] + "\n")
    assert log.read() and log.certify_failure == why
    with path.open("a") as out:
        out.write(line + "\n")
    assert not log.read()  # the same refusal again: nothing new to report
    with path.open("a") as out:
        out.write("gossamer proxy: GOSSAMER_PROXY_IDENTITY_TOKEN_FILE is required\n")
    log.read()
    assert log.last_line.endswith("TOKEN_FILE is required")


def test_the_proxy_log_may_not_exist_yet(tmp_path: Path) -> None:
    log = ProxyLog(tmp_path / "proxy.log")
    assert not log.read()
    (tmp_path / "proxy.log").write_text("x\n")
    assert not log.read() and log.last_line == "x"
