"""Identity names: `{sa}.{ns}.serviceaccount.identity.gossamer.{trust-domain}`.

A meshed workload's identity is its ServiceAccount, named as Linkerd names it under our own
domain. The namespace is a DNS-1123 label (no dots) and comes last before the fixed marker, so
a name parses back unambiguously even though a ServiceAccount name may contain dots. A name is
a DNS name: at most 253 characters, labels of at most 63.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gossamer.core.resources.formats import (
    check_dns1123_label,
    check_dns1123_subdomain,
)

DEFAULT_TRUST_DOMAIN = "cluster.local"
MARKER = ".serviceaccount.identity.gossamer."
_DNS_NAME_MAX = 253
_LABEL_MAX = 63


class InvalidIdentityName(ValueError):
    """A string that is not (or cannot become) an identity name."""


@dataclass(frozen=True, slots=True)
class IdentityName:
    service_account: str
    namespace: str
    trust_domain: str = DEFAULT_TRUST_DOMAIN

    def __str__(self) -> str:
        return f"{self.service_account}.{self.namespace}{MARKER}{self.trust_domain}"


def identity_name(
    service_account: str, namespace: str, trust_domain: str = DEFAULT_TRUST_DOMAIN
) -> str:
    """The identity a pod of `service_account` in `namespace` proves; InvalidIdentityName if
    a part is not a valid name or the result is too long for a DNS name."""
    _check("service account", service_account, check_dns1123_subdomain)
    _check("namespace", namespace, check_dns1123_label)
    _check("trust domain", trust_domain, check_dns1123_subdomain)
    name = str(IdentityName(service_account, namespace, trust_domain))
    if len(name) > _DNS_NAME_MAX:
        raise InvalidIdentityName(
            f"identity {name[:64]}... is {len(name)} characters; a DNS name has at most 253"
        )
    if any(len(label) > _LABEL_MAX for label in name.split(".")):
        raise InvalidIdentityName(f"identity {name[:64]}... has a label over 63 characters")
    return name


def parse_identity(name: str, trust_domain: str | None = None) -> IdentityName:
    """The parts of an identity name; with `trust_domain`, the name must be in it."""
    head, marker, domain = name.partition(MARKER)
    if not marker:
        raise InvalidIdentityName(f"{name!r} is not a ServiceAccount identity (no {MARKER!r})")
    if trust_domain is not None and domain != trust_domain:
        raise InvalidIdentityName(f"{name!r} is not in trust domain {trust_domain!r}")
    service_account, dot, namespace = head.rpartition(".")
    if not dot:
        raise InvalidIdentityName(f"{name!r} lacks a service account or a namespace")
    parsed = IdentityName(service_account, namespace, domain)
    # Rebuilding validates every part and the length, and proves the round trip.
    if identity_name(service_account, namespace, domain) != name:
        raise InvalidIdentityName(f"{name!r} is not a canonical identity name")
    return parsed


def _check(what: str, value: str, check: Callable[[str], str | None]) -> None:
    problem = check(value)
    if problem is not None:
        raise InvalidIdentityName(f"{what} {value!r} {problem}")
