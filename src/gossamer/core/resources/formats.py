"""String formats Kubernetes defines for names, labels, ports and times, as checks.

Each check takes a string and returns None when it is fine, or the problem in words
("must be a DNS-1123 label: ..."); the field reader adds the path and the offending value.
The rules are Kubernetes' own (apimachinery `validation.go`), so a name accepted locally is
accepted by a cluster.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from datetime import UTC, datetime

StringCheck = Callable[[str], str | None]

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_IANA_SVC_NAME = re.compile(r"^[-a-z0-9]+$")
_ENV_VAR_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")

LABEL_MAX = 63
SUBDOMAIN_MAX = 253


def check_dns1123_label(value: str) -> str | None:
    """Namespaces, port names, container names: `web`, `emoji-svc`."""
    if len(value) > LABEL_MAX or not _DNS1123_LABEL.match(value):
        return (
            "must be a DNS-1123 label: at most 63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return None


def check_dns1035_label(value: str) -> str | None:
    """Service names: like a DNS-1123 label, but starting with a letter."""
    if len(value) > LABEL_MAX or not _DNS1035_LABEL.match(value):
        return (
            "must be a DNS-1035 label: at most 63 lowercase letters, digits and '-', "
            "starting with a letter and ending with a letter or digit"
        )
    return None


def check_dns1123_subdomain(value: str) -> str | None:
    """Pod and ServiceAccount names: dot-separated DNS-1123 labels, at most 253 characters."""
    if (
        not value
        or len(value) > SUBDOMAIN_MAX
        or not all(_DNS1123_LABEL.match(part) for part in value.split("."))
    ):
        return (
            "must be a DNS-1123 subdomain: at most 253 characters of lowercase letters, "
            "digits, '-' and '.', each dot-separated part starting and ending with a letter "
            "or digit"
        )
    return None


def check_qualified_name(value: str) -> str | None:
    """Label and annotation keys: `app`, `gossamer.dev/workload` (optional DNS prefix + '/')."""
    prefix, slash, name = value.rpartition("/")
    if slash and check_dns1123_subdomain(prefix) is not None:
        return "must have a DNS-1123 subdomain before '/' (as in example.com/name)"
    if len(name) > LABEL_MAX or not _QUALIFIED_NAME_PART.match(name):
        return (
            "must be a qualified name: an optional DNS prefix and '/', then at most 63 "
            "letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
        )
    return None


def check_label_value(value: str) -> str | None:
    """Label values: empty, or at most 63 letters, digits, '-', '_', '.' (alphanumeric ends)."""
    if value and (len(value) > LABEL_MAX or not _QUALIFIED_NAME_PART.match(value)):
        return (
            "must be a label value: empty or at most 63 letters, digits, '-', '_' and '.', "
            "starting and ending with a letter or digit"
        )
    return None


def check_iana_service_name(value: str) -> str | None:
    """Named ports (`targetPort: http`): at most 15 of [a-z0-9-], with a letter, no '--'."""
    if (
        len(value) > 15
        or not _IANA_SVC_NAME.match(value)
        or not re.search(r"[a-z]", value)
        or "--" in value
        or value.startswith("-")
        or value.endswith("-")
    ):
        return (
            "must be a port name (IANA service name): at most 15 lowercase letters, digits "
            "and '-', with at least one letter, no '--', not starting or ending with '-'"
        )
    return None


def check_env_var_name(value: str) -> str | None:
    """Environment variable names, as Kubernetes accepts them."""
    if not _ENV_VAR_NAME.match(value):
        return (
            "must be an environment variable name: letters, digits, '_', '-' and '.', "
            "not starting with a digit"
        )
    return None


def check_ip_address(value: str) -> str | None:
    """An IPv4 or IPv6 address in its usual text form."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return "must be an IPv4 or IPv6 address"
    return None


def check_timestamp(value: str) -> str | None:
    """An RFC 3339 time as Kubernetes writes it: `2024-05-01T12:00:00Z`."""
    if not _RFC3339.match(value):
        return "must be an RFC 3339 time such as 2024-05-01T12:00:00Z"
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return "must be an RFC 3339 time such as 2024-05-01T12:00:00Z"
    return None


def format_timestamp(moment: datetime) -> str:
    """The RFC 3339 text Kubernetes uses (UTC, whole seconds, `Z`)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_non_empty(value: str) -> str | None:
    return "must not be empty" if not value else None


def check_one_of(allowed: tuple[str, ...]) -> StringCheck:
    """A check that accepts exactly the listed words (enumerations such as protocols)."""

    def check(value: str) -> str | None:
        return None if value in allowed else f"must be one of {', '.join(allowed)}"

    return check
