"""Parsing of human durations (`10s`, `500ms`, `1m`, `2h`) as Linkerd's env values use them."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float:
    """Return seconds for `text`; a bare number means seconds.

    >>> parse_duration("250ms")
    0.25
    """
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"invalid duration {text!r}: expected a number with ms, s, m or h")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
