"""Structured log lines on stderr: logfmt (`key=value`) by default, JSON on request.

Every line carries `ts`, `level`, `component` and `msg`; call sites add their own fields with
`extra=fields(key=value, ...)`, so lines stay greppable and machine-readable alike
(`msg=ready http_port=8080` is what tests and operators wait for).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from gossamer.demo.config import LogSettings

_FIELDS_ATTR = "demo_fields"


def fields(**values: object) -> dict[str, Any]:
    """`log.info("ready", extra=fields(port=8080))` attaches `port=8080` to the line."""
    return {_FIELDS_ATTR: values}


def configure_logging(settings: LogSettings, component: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    formatter = (
        JsonFormatter(component) if settings.format == "json" else LogfmtFormatter(component)
    )
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level.upper())
    # grpcio logs through the `grpc` logger; its chatter below warnings is not ours to show.
    logging.getLogger("grpc").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("asyncio").setLevel(max(logging.WARNING, root.level))


def _entries(record: logging.LogRecord, component: str) -> dict[str, object]:
    created = time.gmtime(record.created)
    entry: dict[str, object] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", created) + f".{int(record.msecs):03d}Z",
        "level": record.levelname.lower(),
        "component": component,
        "msg": record.getMessage(),
    }
    entry.update(getattr(record, _FIELDS_ATTR, {}))
    return entry


class LogfmtFormatter(logging.Formatter):
    def __init__(self, component: str) -> None:
        super().__init__()
        self._component = component

    def format(self, record: logging.LogRecord) -> str:
        entry = _entries(record, self._component)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return " ".join(f"{key}={_logfmt_value(value)}" for key, value in entry.items())


class JsonFormatter(logging.Formatter):
    def __init__(self, component: str) -> None:
        super().__init__()
        self._component = component

    def format(self, record: logging.LogRecord) -> str:
        entry = _entries(record, self._component)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def _logfmt_value(value: object) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
    # Quote anything a logfmt reader would split on; JSON string escaping covers newlines.
    if text == "" or any(c.isspace() or c in '"=\\' for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text
