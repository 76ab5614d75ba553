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
# Fields that belong to one HTTP/1 connection; an HTTP/2 message may not carry them.
_CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade", b"te"}
)


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

    def apply(self, headers: list[Header]) -> list[Header]:
        """The headers after these modifiers: the same list object when there is nothing
        to do, otherwise a new list (the given one is left alone)."""
        if self.noop:
            return headers
        drop = self.drop
        out = [h for h in headers if h[0].lower() not in drop] if drop else list(headers)
        out.extend(self.append)
        return out

    def apply_h2(self, headers: list[Header]) -> list[Header]:
        """`apply` for an HTTP/2 field list: names are lower-case already and stay so,
        pseudo-headers stay first, and connection-specific fields are never added
        (RFC 9113 §8.2.2)."""
        if self.noop:
            return headers
        drop = self.drop
        out = [h for h in headers if h[0][:1] == b":" or h[0] not in drop]
        for name, value in self.append:
            name = name.lower()
            if name not in _CONNECTION_SPECIFIC:
                out.append((name, value))
        return out

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
    return modifiers.apply(headers)
