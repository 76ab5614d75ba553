"""Local mode's identity checks, as Linkerd's `linkerd-identity`: the trust the mesh runs
with, the identity service, and the certificate each meshed pod's proxy holds.

The trust files are those `runtime.json` names (the state directory's own, or the user's).
The identity service is asked a real question (a Certify with nothing in it, which it must
refuse as INVALID_ARGUMENT) through a socket in the node's namespace. Each proxy's chain
comes from its admin `/identity`, as `gossamer identity` reads it: it must name the pod's
service account, be valid now, and chain to the mesh's anchors.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from functools import partial

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from gossamer.control.identity import (
    Issuer,
    TrustError,
    identity_name,
    load_issuer,
    load_trust_anchors,
)
from gossamer.core.resources import PodPhase, PodSpec, Resource
from gossamer.healthcheck.context import LocalCheckContext, split_address
from gossamer.healthcheck.framework import Category, Check, CheckFailure
from gossamer.healthcheck.grpcprobe import GrpcProbeError, unary_call
from gossamer.local.nssocket import socket_in_netns
from gossamer.local.state import RuntimeInfo
from gossamer.viz.inventory import is_meshed, pod_status
from gossamer.viz.proxyadmin import ProxyAdminError, fetch_admin

CERTIFY_PATH = "/gossamer.identity.v1.Identity/Certify"
INVALID_ARGUMENT = 3
EXPIRY_WARNING = timedelta(days=60)
PROBE_TIMEOUT_S = 3.0
MAX_LISTED = 5
TRUST_HINT = "the files runtime.json names (`gossamer up` prints them as trust:)"
ROTATE_HINT = (
    "give `gossamer up` a new issuer (--identity-*-file) after `gossamer down`; the issuer "
    "made by `gossamer up` is renewed from its anchor once it has expired"
)


def _trust(ctx: LocalCheckContext) -> tuple[RuntimeInfo, list[x509.Certificate], Issuer]:
    runtime = ctx.runtime()
    if not runtime.trust_anchors_file:
        raise CheckFailure(
            "runtime.json names no trust files (a mesh started before identity)",
            "`gossamer down` then `gossamer up`",
        )
    try:
        anchors = load_trust_anchors(runtime.trust_anchors_file)
        issuer = load_issuer(runtime.issuer_certificate_file, runtime.issuer_key_file, anchors)
    except TrustError as error:
        raise CheckFailure(str(error)) from None
    return runtime, anchors, issuer


async def trust_valid(ctx: LocalCheckContext) -> str | None:
    _, anchors, issuer = _trust(ctx)
    return f"{len(anchors)} anchor(s); issuer valid until {issuer.not_after:%Y-%m-%d}"


async def trust_not_expiring(ctx: LocalCheckContext) -> str | None:
    _, anchors, issuer = _trust(ctx)
    soon = datetime.now(UTC) + EXPIRY_WARNING
    ending = [
        f"trust anchor {anchor.subject.rfc4514_string()} expires {anchor.not_valid_after_utc}"
        for anchor in anchors
        if anchor.not_valid_after_utc < soon
    ]
    if issuer.not_after < soon:
        ending.append(f"the issuer expires {issuer.not_after}")
    if ending:
        raise CheckFailure("; ".join(ending))
    return None


async def identity_answers(ctx: LocalCheckContext) -> str | None:
    runtime = ctx.runtime()
    address = split_address(runtime.identity_addr, "identity")
    try:
        sock = await asyncio.to_thread(socket_in_netns, runtime.node_netns)
        answer = await asyncio.to_thread(
            unary_call, sock, address, CERTIFY_PATH, b"", timeout=PROBE_TIMEOUT_S
        )
    except (OSError, GrpcProbeError) as error:
        raise CheckFailure(str(error)) from None
    if answer.status != INVALID_ARGUMENT:
        raise CheckFailure(
            f"an empty Certify was answered with status {answer.status} ({answer.message!r}), "
            "not INVALID_ARGUMENT"
        )
    return runtime.identity_addr


async def proxies_certified(ctx: LocalCheckContext) -> str | None:
    runtime, anchors, _ = _trust(ctx)
    pods = [
        pod
        for pod in await ctx.pods()
        if is_meshed(pod) and pod_status(pod).phase in (PodPhase.PENDING, PodPhase.RUNNING)
    ]
    now = datetime.now(UTC)
    found = await asyncio.gather(
        *(asyncio.to_thread(_certificate_of, runtime, anchors, pod, now) for pod in pods)
    )
    problems = [problem for problem, _ in found if problem is not None]
    if problems:
        more = len(problems) - MAX_LISTED
        raise CheckFailure(
            "\n".join(problems[:MAX_LISTED]) + (f"\n... and {more} more" if more > 0 else "")
        )
    expiries = [expiry for _, expiry in found if expiry is not None]
    if not expiries:
        return "no meshed pods"
    first = min(expiries)
    return f"{len(expiries)} proxies; the first certificate expires {first:%Y-%m-%d %H:%M} UTC"


def _certificate_of(
    runtime: RuntimeInfo, anchors: list[x509.Certificate], pod: Resource, now: datetime
) -> tuple[str | None, datetime | None]:
    """(what is wrong, None) or (None, when the proxy's certificate expires)."""
    where = f"{pod.namespace}/{pod.name}"
    status = pod_status(pod)
    if status.pod_ip is None:
        return f"{where}: no IP address yet", None
    make_socket = partial(socket_in_netns, runtime.node_netns)
    try:
        pem = fetch_admin(make_socket, status.pod_ip, "/identity")
        chain = x509.load_pem_x509_certificates(pem)
    except (ProxyAdminError, ValueError) as error:
        why = f" ({status.reason}: {status.message})" if status.reason and status.message else ""
        return f"{where}: no certificate: {error}{why}", None
    leaf = chain[0]
    expected = identity_name(
        pod.spec_as(PodSpec).service_account_name, pod.namespace, runtime.cluster_domain
    )
    try:
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        dns_names = names.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        dns_names = []
    if dns_names != [expected]:
        return f"{where}: the certificate names {dns_names}, not {expected}", None
    if not leaf.not_valid_before_utc <= now < leaf.not_valid_after_utc:
        return f"{where}: the certificate is valid only {leaf.not_valid_before_utc} to " + str(
            leaf.not_valid_after_utc
        ), None
    if not _chains(chain, anchors):
        return f"{where}: the certificate does not chain to the mesh's trust anchors", None
    return None, leaf.not_valid_after_utc


def _chains(chain: list[x509.Certificate], anchors: list[x509.Certificate]) -> bool:
    try:
        for child, parent in itertools.pairwise(chain):
            child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    for anchor in anchors:
        try:
            chain[-1].verify_directly_issued_by(anchor)
            return True
        except (ValueError, TypeError, InvalidSignature):
            continue
    return False


IDENTITY_CHECKS: Category[LocalCheckContext] = Category(
    "gossamer-identity",
    (
        Check("the trust anchors and the issuer are valid", trust_valid, TRUST_HINT),
        Check(
            "the trust anchors and the issuer are valid for at least 60 days",
            trust_not_expiring,
            ROTATE_HINT,
            warning=True,
        ),
        Check(
            "the identity service answers",
            identity_answers,
            "see supervisor.log in the state directory",
        ),
        Check(
            "every meshed pod's proxy holds a valid certificate",
            proxies_certified,
            "`gossamer get pods -A` shows why a proxy has none; its proxy.log says more",
        ),
    ),
)
