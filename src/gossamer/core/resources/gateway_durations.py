"""Gateway API durations (GEP-2257): `10s`, `500ms`, `1h30m`, as routes and annotations use them.

The format is the API server's: one to four pairs of a number (at most 5 digits) and a unit
(`h`, `m`, `s`, `ms`), nothing else: no fractions, no spaces, units required. A duration is
kept as written in a resource (so it round-trips) and read as whole milliseconds. The proxy
API carries milliseconds in 32 bits, so longer durations (about 49 days) are refused here
rather than silently wrapped there. Zero (`0s`) means "no timeout", as in Gateway API.
"""

from __future__ import annotations

import re

_DURATION = re.compile(r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")
_PART = re.compile(r"([0-9]{1,5})(ms|h|m|s)")
_UNIT_MS = {"h": 3_600_000, "m": 60_000, "s": 1_000, "ms": 1}

MAX_MILLISECONDS = 2**32 - 1

DURATION_HINT = 'a duration such as "10s", "500ms" or "1m30s" (units h, m, s, ms)'


def duration_problem(text: str) -> str | None:
    """None when `text` is a valid duration, else what is wrong (a `StringCheck`)."""
    if not _DURATION.match(text):
        return f"must be {DURATION_HINT}"
    if _milliseconds(text) > MAX_MILLISECONDS:
        return f"must be at most {MAX_MILLISECONDS}ms (about 49 days)"
    return None


def duration_ms(text: str) -> int:
    """The duration in milliseconds; ValueError naming the format when it is not one."""
    problem = duration_problem(text)
    if problem is not None:
        raise ValueError(f"{text!r}: {problem}")
    return _milliseconds(text)


def _milliseconds(text: str) -> int:
    return sum(int(number) * _UNIT_MS[unit] for number, unit in _PART.findall(text))
