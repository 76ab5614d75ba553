"""Stat rows as Linkerd's table and JSON."""

from __future__ import annotations

import json

from gossamer.viz.inventory import StatKind
from gossamer.viz.render import format_latency, render_json, render_table
from gossamer.viz.stat import StatRow

ROWS = [
    StatRow(StatKind.DEPLOY, "demo", "emoji", 1, 1),
    StatRow(
        StatKind.DEPLOY,
        "demo",
        "web",
        2,
        2,
        success_rate=0.9,
        rps=10.04,
        latency_ms={0.5: 7.5, 0.95: 9.75, 0.99: 0.4},
        tcp_connections=3.0,
    ),
]


def test_table_matches_linkerds_layout() -> None:
    assert render_table(ROWS) == (
        "NAME   MESHED  SUCCESS  RPS      LATENCY_P50  LATENCY_P95  LATENCY_P99  TCP_CONN\n"
        "emoji  1/1     -        -        -            -            -            -\n"
        "web    2/2     90.00%   10.0rps  8ms          10ms         0.4ms        3"
    )


def test_all_namespaces_adds_a_namespace_column() -> None:
    lines = render_table(ROWS, all_namespaces=True).splitlines()
    assert lines[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert lines[2].split()[:3] == ["demo", "web", "2/2"]


def test_json_rows_have_linkerds_keys_and_nulls() -> None:
    rows = json.loads(render_json(ROWS))
    assert rows[0] == {
        "namespace": "demo",
        "kind": "deployment",
        "name": "emoji",
        "meshed": "1/1",
        "success": None,
        "rps": None,
        "latency_ms_p50": None,
        "latency_ms_p95": None,
        "latency_ms_p99": None,
        "tcp_open_connections": None,
    }
    assert rows[1]["success"] == 0.9 and rows[1]["rps"] == 10.04
    assert rows[1]["latency_ms_p95"] == 9.75 and rows[1]["tcp_open_connections"] == 3


def test_latency_formats() -> None:
    assert format_latency(None) == "-"
    assert format_latency(1499.6) == "1500ms"
    assert format_latency(0.05) == "0.05ms"
