"""Gateway API header modifiers (RequestHeaderModifier / ResponseHeaderModifier filters).

A rule's modifiers are compiled once into one step: drop every header whose lower-cased
name is in `drop`, then append `append`. Each `HeaderModifier` applies `set` (replace every
header of that name, case-insensitively, by one), then `add` (append, keeping what is
there), then `remove`; several modifiers apply in order. Any such sequence folds into one
drop-then-append step, so applying it is a single pass over the headers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from gossamer.api.gen import policy_pb2 as pb

Header = tuple[bytes, bytes]

# A policy's header that would not be a valid field (RFC 9110 token name; no CR, LF or NUL in
# the value) is left out rather than allowed to break the message's framing.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(rb"[\r\n\x00]")


def _header(name: str, value: str) -> Header | None:
    n = name.encode("utf-8")
    v = value.encode("utf-8").strip(b" \t")
    if _TOKEN.fullmatch(n) is None or _BAD_VALUE.search(v) is not None:
        return None
    return n, v


class HeaderModifiers:
    __slots__ = ("append", "drop", "noop")

    NONE: ClassVar[HeaderModifiers]

    def __init__(self, drop: frozenset[bytes] = frozenset(), append: Sequence[Header] = ()) -> None:
        self.drop = drop
        self.append = tuple(append)
        self.noop = not drop and not self.append

    @classmethod
    def compile(cls, modifiers: Iterable[pb.HeaderModifier]) -> HeaderModifiers:
        drop: set[bytes] = set()
        append: list[Header] = []

        def step(names: Iterable[bytes], new: Sequence[Header]) -> None:
            # (drop D1, append A1) then (drop D2, append A2) is (D1|D2, A1 - D2 + A2).
            names = set(names)
            drop.update(names)
            append[:] = [h for h in append if h[0].lower() not in names]
            append.extend(new)

        for modifier in modifiers:
            for h in modifier.set:
                header = _header(h.name, h.value)
                if header is not None:
                    step((header[0].lower(),), (header,))
            adds = [(h.name, h.value) for h in modifier.add]
            step((), [header for n, v in adds if (header := _header(n, v)) is not None])
            step((n.encode("utf-8").lower() for n in modifier.remove), ())
        if not drop and not append:
            return cls.NONE
        return cls(frozenset(drop), append)

    def __repr__(self) -> str:
        return f"HeaderModifiers(drop={sorted(self.drop)!r}, append={list(self.append)!r})"


HeaderModifiers.NONE = HeaderModifiers()


def apply_header_modifiers(
    headers: list[Header], modifiers: HeaderModifiers | Iterable[pb.HeaderModifier]
) -> list[Header]:
    """The headers after the modifiers: the same list object when there is nothing to do,
    otherwise a new list (the given one is left alone)."""
    if not isinstance(modifiers, HeaderModifiers):
        modifiers = HeaderModifiers.compile(modifiers)
    if modifiers.noop:
        return headers
    drop = modifiers.drop
    out = [h for h in headers if h[0].lower() not in drop] if drop else list(headers)
    out.extend(modifiers.append)
    return out
