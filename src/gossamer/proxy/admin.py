"""The proxy's admin server (port 4191): metrics, readiness, liveness, shutdown, log level.

A deliberately small HTTP/1.1 server over httptools: the admin port serves a few short
requests from Prometheus and kubelet-style probes, and must not share the data path's
machinery (or its failures). `/shutdown` and `/proxy-log-level` changes answer only to
clients on loopback, and `/shutdown` only when enabled in the config.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable
from typing import cast

import httptools

from gossamer.proxy.metrics import ProxyMetrics

log = logging.getLogger("gossamer.proxy.admin")

_LEVELS = {"trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO,
           "warn": logging.WARNING, "warning": logging.WARNING, "error": logging.ERROR}  # fmt: skip
MAX_BODY = 4096


class AdminState:
    """What the admin endpoints report on and act upon."""

    def __init__(
        self,
        metrics: ProxyMetrics,
        ready: Callable[[], bool],
        shutdown: Callable[[], None],
        shutdown_enabled: bool,
        identity: Callable[[], bytes | None] = lambda: None,
    ) -> None:
        self.metrics = metrics
        # The proxy's current certificate chain (PEM; public, never the key), if it has one.
        self.identity = identity
        self.ready = ready
        self.shutdown = shutdown
        self.shutdown_enabled = shutdown_enabled


class AdminProtocol(asyncio.Protocol):
    def __init__(self, state: AdminState) -> None:
        self._state = state
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._body = b""
        self._loopback = False
        self._keep_alive = True
        self._head_only = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, so no isinstance check.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        try:
            self._loopback = bool(peer) and ipaddress.ip_address(peer[0]).is_loopback
        except ValueError:
            self._loopback = False

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # Answered already (the request completed before the upgrade); the admin
            # server speaks nothing else, so the connection ends here.
            if self._transport is not None:
                self._transport.close()
        except httptools.HttpParserError:
            self._respond(400, b"malformed request\n", close=True)

    def on_message_begin(self) -> None:
        self._url = b""
        self._body = b""

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > 8192:
            raise ValueError("url too long")

    def on_body(self, body: bytes) -> None:
        self._body += body
        if len(self._body) > MAX_BODY:
            raise ValueError("body too large")

    def on_message_complete(self) -> None:
        self._keep_alive = self._parser.should_keep_alive()
        method = self._parser.get_method()
        self._head_only = method == b"HEAD"
        path = self._url.split(b"?", 1)[0]
        state = self._state
        if path == b"/metrics" and method in (b"GET", b"HEAD"):
            body = state.metrics.render()
            self._respond(200, body, content_type=b"text/plain; version=0.0.4; charset=utf-8")
        elif path == b"/ready":
            if state.ready():
                self._respond(200, b"ready\n")
            else:
                self._respond(503, b"not ready\n")
        elif path == b"/identity":
            chain = state.identity()
            if chain is None:
                self._respond(404, b"this proxy has no certificate\n")
            else:
                self._respond(200, chain, content_type=b"application/x-pem-file")
        elif path == b"/live":
            self._respond(200, b"live\n")
        elif path == b"/shutdown":
            if method != b"POST":
                self._respond(405, b"use POST\n")
            elif not state.shutdown_enabled:
                self._respond(404, b"shutdown endpoint is disabled\n")
            elif not self._loopback:
                self._respond(403, b"shutdown is only accepted from localhost\n")
            else:
                self._respond(202, b"shutting down\n")
                state.shutdown()
        elif path == b"/proxy-log-level":
            self._log_level(method)
        else:
            self._respond(404, b"not found\n")

    def _log_level(self, method: bytes) -> None:
        root = logging.getLogger("gossamer")
        if method == b"GET":
            self._respond(200, logging.getLevelName(root.getEffectiveLevel()).lower().encode())
            return
        if method != b"PUT":
            self._respond(405, b"use GET or PUT\n")
        elif not self._loopback:
            self._respond(403, b"log level changes are only accepted from localhost\n")
        elif (level := _LEVELS.get(self._body.decode("latin-1").strip().lower())) is None:
            self._respond(400, b"unknown log level\n")
        else:
            root.setLevel(level)
            self._respond(204, b"")

    def _respond(
        self, status: int, body: bytes, content_type: bytes = b"text/plain", close: bool = False
    ) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        close = close or not self._keep_alive
        head = b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n%s\r\n" % (
            status,
            _REASON.get(status, b"OK"),
            content_type,
            len(body),
            b"connection: close\r\n" if close else b"",
        )
        transport.writelines([head] if self._head_only else [head, body])
        if close:
            transport.close()


_REASON = {200: b"OK", 202: b"Accepted", 204: b"No Content", 400: b"Bad Request",
           403: b"Forbidden", 404: b"Not Found", 405: b"Method Not Allowed",
           503: b"Service Unavailable"}  # fmt: skip


async def start_admin(state: AdminState, host: str, port: int) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: AdminProtocol(state), host, port, reuse_address=True)
