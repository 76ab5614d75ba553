"""The Prometheus text exposition format (0.0.4), written without prometheus_client.

Why by hand: see `metrics.py` (per-increment locks and ~3.5 MB of imports in a sidecar).
A `Collector` yields `MetricFamily`s at scrape time; `render` writes them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Protocol

LabelPairs = tuple[tuple[str, str], ...]


class MetricFamily:
    """One metric's HELP/TYPE header and its samples (name, labels, value)."""

    __slots__ = ("doc", "name", "samples", "type")

    def __init__(self, name: str, doc: str, type: str) -> None:
        self.name = name
        self.doc = doc
        self.type = type
        self.samples: list[tuple[str, LabelPairs, float]] = []

    def add(self, sample_name: str, labels: LabelPairs, value: float) -> None:
        self.samples.append((sample_name, labels, value))


class Collector(Protocol):
    def collect(self) -> Iterable[MetricFamily]: ...


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_doc(doc: str) -> str:
    return doc.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    is_whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if is_whole and abs(value) < 1e15:
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def render(collectors: Iterable[Collector]) -> bytes:
    out: list[str] = []
    for collector in collectors:
        for family in collector.collect():
            base = family.name  # counters keep _total here, as Linkerd writes them
            out.append(f"# HELP {base} {_escape_doc(family.doc)}\n# TYPE {base} {family.type}\n")
            for name, labels, value in family.samples:
                if labels:
                    pairs = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels)
                    out.append(f"{name}{{{pairs}}} {format_value(value)}\n")
                else:
                    out.append(f"{name} {format_value(value)}\n")
    return "".join(out).encode()
