"""Label selectors of the equality kind (`matchLabels`, `app=web,tier=db`), matched purely.

A selector is a map of label keys to values; an object matches when it carries every pair.
An empty selector matches every object here (as `kubectl get -l` with no selector does);
that a Service without a selector selects no pods is the caller's rule, not this module's.
"""

from __future__ import annotations

from collections.abc import Mapping

from gossamer.core.resources.errors import ResourceError
from gossamer.core.resources.fields import frozen_map
from gossamer.core.resources.formats import check_label_value, check_qualified_name


def selector_matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def parse_selector(text: str) -> Mapping[str, str]:
    """`app=web,tier==db` -> {"app": "web", "tier": "db"}; set-based forms are refused."""
    selector: dict[str, str] = {}
    for term in (part.strip() for part in text.split(",")):
        if not term:
            continue
        if "!=" in term or term.startswith("!") or " in " in term or " notin " in term:
            raise ResourceError(f"label selector {text!r}: only key=value terms are supported")
        key, equals, value = term.replace("==", "=", 1).partition("=")
        key, value = key.strip(), value.strip()
        if not equals:
            raise ResourceError(f"label selector {text!r}: {term!r} is not key=value")
        problem = check_qualified_name(key) or check_label_value(value)
        if problem is not None:
            raise ResourceError(f"label selector {text!r}: {term!r}: {problem}")
        if key in selector and selector[key] != value:
            raise ResourceError(f"label selector {text!r}: {key} is given twice")
        selector[key] = value
    return frozen_map(selector)


def format_selector(selector: Mapping[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(selector.items()))
