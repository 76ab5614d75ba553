"""Equality label selectors: matching, and the `-l app=web` text form."""

from __future__ import annotations

import pytest

from gossamer.core.resources import (
    ResourceError,
    format_selector,
    parse_selector,
    selector_matches,
)


def test_matching() -> None:
    labels = {"app": "web", "tier": "front"}
    assert selector_matches({}, labels)
    assert selector_matches({"app": "web"}, labels)
    assert selector_matches({"app": "web", "tier": "front"}, labels)
    assert not selector_matches({"app": "api"}, labels)
    assert not selector_matches({"app": "web", "zone": "a"}, labels)
    assert not selector_matches({"app": ""}, {})


def test_parse_and_format() -> None:
    assert parse_selector("app=web, tier==front") == {"app": "web", "tier": "front"}
    assert parse_selector("") == {}
    assert parse_selector("gossamer.dev/workload=web,") == {"gossamer.dev/workload": "web"}
    assert format_selector({"tier": "front", "app": "web"}) == "app=web,tier=front"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("app!=web", "only key=value terms are supported"),
        ("!app", "only key=value terms are supported"),
        ("env in (a,b)", "only key=value terms are supported"),
        ("app", "'app' is not key=value"),
        ("bad key=x", "'bad key=x': must be a qualified name"),
        ("app=-x", "'app=-x': must be a label value"),
        ("app=a,app=b", "app is given twice"),
    ],
)
def test_parse_errors(text: str, problem: str) -> None:
    with pytest.raises(ResourceError) as raised:
        parse_selector(text)
    assert str(raised.value).startswith(f"label selector {text!r}: {problem}")
