"""Identity names: built from a ServiceAccount and namespace, parsed back exactly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gossamer.control.identity import (
    IdentityName,
    InvalidIdentityName,
    identity_name,
    parse_identity,
)

label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
subdomain = st.lists(label, min_size=1, max_size=3).map(".".join)


def test_linkerd_shape_under_our_domain() -> None:
    assert identity_name("web", "demo") == (
        "web.demo.serviceaccount.identity.gossamer.cluster.local"
    )
    assert identity_name("web", "demo", "example.org") == (
        "web.demo.serviceaccount.identity.gossamer.example.org"
    )


def test_parse_splits_a_dotted_service_account_from_the_namespace() -> None:
    name = identity_name("build.bot", "ci", "mesh.example")
    assert parse_identity(name) == IdentityName("build.bot", "ci", "mesh.example")
    assert parse_identity(name, "mesh.example").service_account == "build.bot"
    with pytest.raises(InvalidIdentityName, match="not in trust domain"):
        parse_identity(name, "cluster.local")


@given(sa=subdomain, ns=label, domain=subdomain)
def test_round_trip(sa: str, ns: str, domain: str) -> None:
    name = identity_name(sa, ns, domain)
    assert parse_identity(name) == IdentityName(sa, ns, domain)
    assert str(parse_identity(name)) == name


@pytest.mark.parametrize(
    "parts",
    [
        ("Web", "demo", "cluster.local"),  # uppercase
        ("web", "de.mo", "cluster.local"),  # a namespace is one label
        ("", "demo", "cluster.local"),
        ("web", "", "cluster.local"),
        ("web", "demo", ""),
        ("a" * 64, "demo", "cluster.local"),  # label over 63
        (".".join(["a" * 60] * 4), "demo", "cluster.local"),  # total over 253
    ],
)
def test_refuses_what_is_no_dns_name(parts: tuple[str, str, str]) -> None:
    with pytest.raises(InvalidIdentityName):
        identity_name(*parts)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "web.demo.cluster.local",
        "demo.serviceaccount.identity.gossamer.cluster.local",
        "web.demo.serviceaccount.identity.gossamer.",
        "WEB.demo.serviceaccount.identity.gossamer.cluster.local",
        "web..demo.serviceaccount.identity.gossamer.cluster.local",
        "spiffe://cluster.local/ns/demo/sa/web",
    ],
)
def test_parse_refuses_other_strings(name: str) -> None:
    with pytest.raises(InvalidIdentityName):
        parse_identity(name)


@given(st.text(max_size=80))
def test_parse_never_fails_otherwise(text: str) -> None:
    try:
        parsed = parse_identity(text)
    except InvalidIdentityName:
        return
    assert str(parsed) == text
