"""Log line formats and the front end's HTML page, without processes."""

from __future__ import annotations

import json
import logging

from gossamer.demo.catalog import Item
from gossamer.demo.logs import JsonFormatter, LogfmtFormatter, fields
from gossamer.demo.page import render_index


def _record(message: str, **values: object) -> logging.LogRecord:
    record = logging.LogRecord("t", logging.WARNING, __file__, 1, message, None, None)
    for key, value in fields(**values).items():
        setattr(record, key, value)
    return record


def test_logfmt_quotes_what_would_split() -> None:
    line = LogfmtFormatter("web").format(
        _record("backend call failed", status=500, details='a "b" c', share=0.15, empty="")
    )
    assert line.startswith("ts=")
    assert ' level=warning component=web msg="backend call failed" status=500 ' in line
    assert 'details="a \\"b\\" c" share=0.15 empty=""' in line
    assert "\n" not in LogfmtFormatter("web").format(_record("two\nlines"))


def test_json_lines() -> None:
    entry = json.loads(JsonFormatter("voting").format(_record("ready", grpc_port=9090)))
    assert entry["level"] == "warning" and entry["component"] == "voting"
    assert entry["msg"] == "ready" and entry["grpc_port"] == 9090


def test_page_lists_items_and_escapes() -> None:
    items = [Item(":joy:", "\N{FACE WITH TEARS OF JOY}"), Item("<b>", "&")]
    page = render_index(items, [(items[0], 3)])
    assert 'href="/api/vote?choice=%3Ajoy%3A"' in page
    assert "<b>" not in page and "&lt;b&gt;" in page and "&amp;" in page
    assert "<td>3</td>" in page
    assert "no votes yet" in render_index(items, [])
