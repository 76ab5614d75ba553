"""A client stream mapped onto an upstream stream: the per-request state of the HTTP/2 proxy.

Theory of operation. A `ProxiedStream` joins stream `d_sid` of one client connection (the
downstream, an `Http2ServerProtocol`) to stream `u_sid` of one shared upstream connection
(an `UpstreamConnection` chosen by the target's pool). It owns two flows:

    request:  downstream d_sid ──DATA/trailers──► upstream u_sid
    response: upstream u_sid   ──DATA/trailers──► downstream d_sid

Response HEADERS are sent directly (they are not flow controlled and always precede the
response's DATA); request HEADERS are sent when the stream is attached to an upstream
connection. Until then the stream is *pending*: request bytes wait unacknowledged in the
request flow, bounded by the stream window the proxy advertised.

Lifecycle:

    pending ──attach──► open ──both flows finished──► closed (metrics recorded)
       │                 │
       │                 ├─ client RST_STREAM ──► RST toward upstream, closed
       │                 ├─ upstream RST_STREAM ─► RST toward client (REFUSED_STREAM with
       │                 │                         nothing sent yet: retried once instead)
       │                 ├─ upstream GOAWAY above u_sid ─► retried, or REFUSED_STREAM
       │                 └─ upstream connection lost ──► error response / RST
       └─ connect failed, overloaded ──► error response (502/503/504, or gRPC status)

`done` is set exactly once, when the stream leaves both connections' stream tables; every
entry point checks it, since events for a finished stream can still arrive from either side.
Finishing also unlinks the flows from the stream, so nothing of it outlives the request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from gossamer.proxy.errors import ProxyError, UpstreamProtocolError
from gossamer.proxy.http2.connection import StreamClosedError
from gossamer.proxy.http2.flow import Flow
from gossamer.proxy.http2.frames import ErrorCodes
from gossamer.proxy.http2.headers import (
    Header,
    MalformedHeaders,
    RequestHead,
    ResponseHead,
    error_response,
    reset_toward_client,
    reset_toward_upstream,
    sanitize_response,
    sanitize_trailers,
)
from gossamer.proxy.metrics import HttpStats

if TYPE_CHECKING:
    from gossamer.proxy.http2.pool import TargetPool
    from gossamer.proxy.http2.server import Http2ServerProtocol
    from gossamer.proxy.http2.upstream import UpstreamConnection

log = logging.getLogger("gossamer.proxy.http2")

# A request the upstream refused without processing it is sent again this many times, if
# none of its body has been forwarded yet (the proxy keeps no copy of sent body bytes).
MAX_RETRIES = 1


class ProxiedStream:
    __slots__ = (
        "d_sid",
        "done",
        "downstream",
        "grpc_status",
        "head",
        "headers_sent",
        "on_done",
        "recorded",
        "request",
        "response",
        "retries",
        "started",
        "stats",
        "status",
        "targets",
        "u_sid",
        "upstream",
    )

    def __init__(
        self,
        downstream: Http2ServerProtocol,
        d_sid: int,
        head: RequestHead,
        stats: HttpStats,
        started: float,
        targets: TargetPool | None,
    ) -> None:
        self.downstream = downstream
        self.d_sid = d_sid
        self.upstream: UpstreamConnection | None = None
        self.u_sid = 0
        self.head = head
        self.stats = stats
        self.started = started
        self.targets = targets
        self.request = Flow(self, downstream, d_sid, None, 0)
        self.response = Flow(self, None, 0, downstream, d_sid)
        self.status = 0
        self.grpc_status: int | None = None
        self.headers_sent = False
        self.recorded = False
        self.done = False
        self.retries = 0
        # Called once when the stream is over (outbound routing: balancer, route stats).
        self.on_done: Callable[[ProxiedStream], None] | None = None

    # -- attaching to an upstream connection ---------------------------------------------
    def start(self) -> None:
        """Sends the request on its way: opened upstream now, or queued for a connection."""
        targets = self.targets
        assert targets is not None
        targets.dispatch(self)

    def attach(self, conn: UpstreamConnection, u_sid: int, end_sent: bool) -> None:
        """The request headers went out on `conn` as stream `u_sid`."""
        self.upstream = conn
        self.u_sid = u_sid
        request = self.request
        request.sink = conn
        request.sink_sid = u_sid
        self.response.source = conn
        self.response.source_sid = u_sid
        if end_sent:
            request.finished = True
        else:
            request.pump()

    # -- events from the upstream ----------------------------------------------------------
    def on_response(self, headers: list[Header], ended: bool) -> None:
        head = self._response_head(headers)
        if head is None:
            return
        self.status = head.status
        if ended:
            self.grpc_status = head.grpc_status
        self._commit(head.headers, ended)

    def _response_head(self, headers: list[Header]) -> ResponseHead | None:
        """The validated response head; None (and the stream failed) if it is malformed."""
        try:
            return sanitize_response(headers)
        except MalformedHeaders as error:
            self._reset_upstream(ErrorCodes.PROTOCOL_ERROR)
            self.fail(UpstreamProtocolError(f"invalid response headers: {error}"))
            return None

    def _commit(self, headers: list[Header], ended: bool) -> None:
        """Sends the response headers to the client; the response is under way."""
        if not self._send_downstream_headers(headers, ended):
            return
        self.headers_sent = True
        if ended:
            response = self.response
            response.ended = response.finished = True
            self.flow_finished(response)

    def on_informational(self, headers: list[Header]) -> None:
        try:
            head = sanitize_response(headers)
        except MalformedHeaders:
            return  # a 1xx is advisory; dropping a bad one harms nobody
        self._send_downstream_headers(head.headers, False)

    def on_response_trailers(self, headers: list[Header]) -> None:
        try:
            trailers, self.grpc_status = sanitize_trailers(headers)
        except MalformedHeaders:
            self._abort(ErrorCodes.PROTOCOL_ERROR, ErrorCodes.INTERNAL_ERROR, "invalid trailers")
            return
        self.response.end(trailers)

    def on_upstream_reset(self, code: int) -> None:
        if self.done:
            return
        if code == ErrorCodes.REFUSED_STREAM and self._retryable():
            self._retry()
            return
        self._release_upstream()
        self._abort(None, reset_toward_client(code), "upstream reset")

    def on_upstream_refused(self) -> None:
        """The upstream's GOAWAY says it will not process this stream."""
        if self.done:
            return
        self._reset_upstream(ErrorCodes.CANCEL)
        if self._retryable():
            self._retry()
        else:
            self._abort(None, ErrorCodes.REFUSED_STREAM, "upstream going away")

    def on_upstream_lost(self, error: ProxyError) -> None:
        """The upstream connection is gone; nothing more may be sent on it."""
        self.upstream = None
        self.fail(error)

    # -- events from the client ------------------------------------------------------------
    def on_request_trailers(self, headers: list[Header]) -> None:
        try:
            trailers, _ = sanitize_trailers(headers)
        except MalformedHeaders:
            self._abort(ErrorCodes.CANCEL, ErrorCodes.PROTOCOL_ERROR, None)
            return
        self.request.end(trailers)

    def on_client_reset(self, code: int) -> None:
        if self.done:
            return
        self._reset_upstream(reset_toward_upstream(code))
        self._finish()

    def on_client_lost(self) -> None:
        if not self.done:
            self._reset_upstream(ErrorCodes.CANCEL)
            self._finish()

    # -- failures the proxy answers for -----------------------------------------------------
    def fail(self, error: ProxyError) -> None:
        """Answers the client with an error response, or resets it if headers went out."""
        if self.done:
            return
        self._reset_upstream(ErrorCodes.CANCEL)
        if self.headers_sent:
            self._abort(None, ErrorCodes.INTERNAL_ERROR, error.reason)
            return
        log.debug("h2 stream %d: %s", self.d_sid, error.detail)
        answer = error_response(error, self.head.grpc)
        self.status = answer.status
        self.grpc_status = answer.grpc_status
        # The request will not be forwarded: return its window, take no more.
        self.request.discard()
        if not self._send_downstream_headers(answer.headers, not answer.body):
            return
        self.headers_sent = True
        response = self.response
        if answer.body:
            response.source = None
            response.hold(answer.body)
            response.end()
        else:
            response.ended = response.finished = True
            self.flow_finished(response)

    def sink_failed(self, flow: Flow) -> None:
        """A send on the flow's sink stream was refused: that stream is already closed."""
        log.debug("h2 stream %d: sink stream closed unexpectedly", self.d_sid)
        if flow is self.request:
            self._abort(ErrorCodes.CANCEL, ErrorCodes.INTERNAL_ERROR, "upstream stream closed")
        else:
            self._abort(ErrorCodes.CANCEL, None, None)

    # -- completion --------------------------------------------------------------------------
    def flow_finished(self, flow: Flow) -> None:
        if flow is self.response:
            self._record(None)
        if self.request.finished and self.response.finished and not self.done:
            if not self.request.ended:
                # The response is complete but the client is still sending a body nobody
                # will read (an error response): tell it to stop (RFC 9113 §8.1).
                self._reset_downstream(ErrorCodes.NO_ERROR)
            self._finish()

    def _finish(self) -> None:
        self.done = True
        request, response = self.request, self.response
        request.discard()
        response.discard()
        # No cycle left between the stream and its flows: freed by reference counting.
        request.stream = response.stream = None
        self._release_upstream()
        self.downstream.stream_closed(self.d_sid)
        on_done, self.on_done = self.on_done, None
        if on_done is not None:
            on_done(self)

    def _abort(self, upstream_code: int | None, client_code: int | None, error: str | None) -> None:
        """Resets whichever sides are given a code, records an error, and finishes."""
        if self.done:
            return
        if upstream_code is not None:
            self._reset_upstream(upstream_code)
        if client_code is not None:
            self._reset_downstream(client_code)
        if error is not None:
            self._record(error)
        self._finish()

    def _record(self, error: str | None) -> None:
        # A stream that never produced a status (reset before its response) has no
        # response to count.
        if not self.recorded and self.status:
            self.recorded = True
            latency = self.downstream.loop_time() - self.started
            self.stats.response(self.status, latency, self.grpc_status, error)

    # -- retries ----------------------------------------------------------------------------
    def _retryable(self) -> bool:
        return self.retries < MAX_RETRIES and self.request.sent == 0 and not self.headers_sent

    def _retry(self) -> None:
        self._release_upstream()
        self.retries += 1
        self.request.detach()
        self.response.source = None
        self.response.source_sid = 0
        self.start()

    # -- helpers ------------------------------------------------------------------------------
    def _send_downstream_headers(self, headers: list[Header], end: bool) -> bool:
        downstream = self.downstream
        try:
            downstream.send_headers(self.d_sid, headers, end)
        except StreamClosedError:
            self.sink_failed(self.response)
            return False
        downstream.schedule_flush()
        return True

    def _reset_upstream(self, code: int) -> None:
        conn = self.upstream
        if conn is not None and conn.alive and self.u_sid:
            conn.reset_stream(self.u_sid, code)  # a no-op if already closed on that side
            conn.schedule_flush()
        self._release_upstream()

    def _release_upstream(self) -> None:
        conn = self.upstream
        if conn is not None:
            self.upstream = None
            conn.release(self.u_sid)

    def _reset_downstream(self, code: int) -> None:
        downstream = self.downstream
        if downstream.alive:
            downstream.reset_stream(self.d_sid, code)
            downstream.schedule_flush()
