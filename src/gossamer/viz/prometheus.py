"""A thin client of Prometheus' HTTP API: instant queries, scrape targets, readiness.

Synchronous (stdlib `urllib`), each call bounded by `timeout`; async callers run it in a
thread (`asyncio.to_thread`). Every failure becomes a `PrometheusError`: `PrometheusUnavailable`
when nothing answers (or answers something that is not Prometheus' API), `QueryError` when
Prometheus refused the query.
"""

from __future__ import annotations

import http.client
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from gossamer.viz.errors import VizError

DEFAULT_URL = "http://127.0.0.1:9090"
DEFAULT_TIMEOUT_S = 5.0


class PrometheusError(VizError):
    """Prometheus could not answer a question."""


class PrometheusUnavailable(PrometheusError):
    """Nothing usable answered at the URL."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"Prometheus at {url} is not reachable: {reason}")
        self.url = url
        self.reason = reason


class QueryError(PrometheusError):
    """Prometheus answered with an error for a query (bad PromQL, timeout, ...)."""

    def __init__(self, query: str, error_type: str, message: str) -> None:
        super().__init__(f"Prometheus refused the query ({error_type}: {message}): {query}")
        self.query = query
        self.error_type = error_type
        self.message = message


@dataclass(frozen=True, slots=True)
class Sample:
    """One element of an instant vector."""

    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True, slots=True)
class ScrapeTarget:
    """One active scrape target, as `/api/v1/targets` reports it."""

    labels: Mapping[str, str]
    scrape_url: str
    health: str  # "up", "down" or "unknown" (not scraped yet)
    last_error: str
    job: str


class PrometheusClient:
    """Prometheus' HTTP API at `url` (`http://127.0.0.1:9090`)."""

    def __init__(self, url: str = DEFAULT_URL, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def query(self, expr: str) -> list[Sample]:
        """Evaluate `expr` now; the result must be an instant vector (or a scalar)."""
        data = self._api("/api/v1/query", {"query": expr}, query=expr)
        kind = data.get("resultType")
        result = data.get("result")
        if kind == "scalar" and isinstance(result, list):
            return [Sample(MappingProxyType({}), _number(result[1]))]
        if kind != "vector" or not isinstance(result, list):
            raise QueryError(expr, "bad_result", f"expected an instant vector, got {kind}")
        return [
            Sample(MappingProxyType(dict(item["metric"])), _number(item["value"][1]))
            for item in result
        ]

    def targets(self) -> list[ScrapeTarget]:
        """The active scrape targets and whether their last scrape worked."""
        data = self._api("/api/v1/targets?state=active", None)
        return [
            ScrapeTarget(
                labels=MappingProxyType(dict(item.get("labels", {}))),
                scrape_url=str(item.get("scrapeUrl", "")),
                health=str(item.get("health", "unknown")),
                last_error=str(item.get("lastError", "")),
                job=str(item.get("scrapePool", item.get("labels", {}).get("job", ""))),
            )
            for item in data.get("activeTargets", [])
        ]

    def ready(self) -> bool:
        """True when Prometheus says it is ready to serve queries (`/-/ready`)."""
        status, _ = self._fetch("/-/ready", None)
        return status == 200

    def _api(self, path: str, form: dict[str, str] | None, *, query: str = "") -> dict[str, Any]:
        body = None if form is None else urllib.parse.urlencode(form).encode()
        status, raw = self._fetch(path, body)
        try:
            payload = json.loads(raw)
        except ValueError:
            raise PrometheusUnavailable(
                self.url, f"{path} answered HTTP {status} without JSON"
            ) from None
        if not isinstance(payload, dict):
            raise PrometheusUnavailable(self.url, f"{path} did not answer an API object")
        if payload.get("status") != "success":
            raise QueryError(
                query or path,
                str(payload.get("errorType", "unknown")),
                str(payload.get("error", "no error message")),
            )
        data = payload.get("data")
        if not isinstance(data, dict):
            raise PrometheusUnavailable(self.url, f"{path} answered without data")
        return data

    def _fetch(self, path: str, body: bytes | None) -> tuple[int, bytes]:
        """(status, body) of a GET (or a form POST when `body` is given); error statuses are
        answers too (the API puts its JSON error in them)."""
        request = urllib.request.Request(
            f"{self.url}{path}", data=body, method="GET" if body is None else "POST"
        )
        if body is not None:
            request.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return int(response.status), bytes(response.read())
            except urllib.error.HTTPError as error:
                with error:
                    return error.code, error.read()
        except urllib.error.URLError as error:
            raise PrometheusUnavailable(self.url, _reason(error.reason)) from None
        except TimeoutError:
            raise PrometheusUnavailable(self.url, f"no answer within {self.timeout:g}s") from None
        except (OSError, ValueError, http.client.HTTPException) as error:
            raise PrometheusUnavailable(self.url, str(error) or type(error).__name__) from None


def _reason(reason: object) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, TimeoutError):
        return "timed out"
    return str(reason)


def _number(text: object) -> float:
    """Prometheus sends sample values as strings, including "NaN" and "+Inf"."""
    try:
        return float(str(text))
    except ValueError:
        return math.nan
