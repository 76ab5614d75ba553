"""Stat rows as Linkerd prints them: an aligned table, or JSON objects with the same keys
as `linkerd viz stat -o json` (null where the table shows "-")."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from gossamer.viz.promql import QUANTILES
from gossamer.viz.stat import StatRow

NO_VALUE = "-"
COLUMNS = (
    "NAME",
    "MESHED",
    "SUCCESS",
    "RPS",
    "LATENCY_P50",
    "LATENCY_P95",
    "LATENCY_P99",
    "TCP_CONN",
)


def format_success(rate: float | None) -> str:
    return NO_VALUE if rate is None else f"{rate * 100:.2f}%"


def format_rps(rps: float | None) -> str:
    return NO_VALUE if rps is None else f"{rps:.1f}rps"


def format_latency(ms: float | None) -> str:
    if ms is None:
        return NO_VALUE
    # Linkerd prints whole milliseconds; below 1 ms that would read as 0ms.
    return f"{ms:.0f}ms" if ms >= 1 else f"{ms:.2g}ms"


def format_connections(count: float | None) -> str:
    return NO_VALUE if count is None else str(round(count))


def table_cells(row: StatRow) -> list[str]:
    return [
        row.name,
        f"{row.meshed}/{row.pods}",
        format_success(row.success_rate),
        format_rps(row.rps),
        *(format_latency(row.latency_ms.get(q)) for q in QUANTILES),
        format_connections(row.tcp_connections),
    ]


def render_table(rows: Sequence[StatRow], *, all_namespaces: bool = False) -> str:
    """Columns padded as Linkerd's tabwriter does (two spaces); NAMESPACE first with -A."""
    header = ["NAMESPACE", *COLUMNS] if all_namespaces else list(COLUMNS)
    lines = [header]
    for row in rows:
        cells = table_cells(row)
        lines.append([row.namespace, *cells] if all_namespaces else cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def json_row(row: StatRow) -> dict[str, Any]:
    return {
        "namespace": row.namespace,
        "kind": row.kind.json_kind,
        "name": row.name,
        "meshed": f"{row.meshed}/{row.pods}",
        "success": _rounded(row.success_rate, 6),
        "rps": _rounded(row.rps, 3),
        "latency_ms_p50": _rounded(row.latency_ms.get(0.5), 3),
        "latency_ms_p95": _rounded(row.latency_ms.get(0.95), 3),
        "latency_ms_p99": _rounded(row.latency_ms.get(0.99), 3),
        "tcp_open_connections": (
            None if row.tcp_connections is None else round(row.tcp_connections)
        ),
    }


def render_json(rows: Sequence[StatRow]) -> str:
    return json.dumps([json_row(row) for row in rows], indent=2)
