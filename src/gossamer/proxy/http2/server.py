"""The client-facing side of the HTTP/2 proxy: `Http2ServerProtocol`.

Installed on an accepted transport once detection has seen the h2 prior-knowledge preface.
It runs the server side of an `H2Connection` toward the client; each request becomes a
`ProxiedStream` dispatched to the target's shared upstream connections (see stream.py for
how the two sides are joined, flow.py for flow control, pool.py for connection sharing).

Bounds: the client may open `max_concurrent_streams` streams (advertised, and enforced here
before the client has acknowledged the setting), header lists are capped by
SETTINGS_MAX_HEADER_LIST_SIZE, and each stream buffers at most the window advertised to the
client. When the socket toward the client backs up past the high-water mark, the proxy
stops reading from it too and holds response bytes unacknowledged until it drains.

A protocol error from the client (bad frames, a broken preface, HPACK errors) ends only
this connection: h2 queues a GOAWAY with the error code, the proxy sends it and closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

from h2.config import H2Configuration
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    RemoteSettingsChanged,
    RequestReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import ProtocolError
from h2.settings import SettingCodes, Settings

from gossamer.proxy.http2.endpoint import GracefulH2Connection, H2Endpoint, errno_label
from gossamer.proxy.http2.headers import MalformedHeaders, sanitize_request
from gossamer.proxy.http2.limits import http2_limits
from gossamer.proxy.http2.pool import upstream_pool
from gossamer.proxy.http2.stream import ProxiedStream
from gossamer.proxy.metrics import HttpStats
from gossamer.proxy.runtime import OUTBOUND, ConnectionContext, ProxyRuntime

log = logging.getLogger("gossamer.proxy.http2")

_CONFIG = H2Configuration(
    client_side=False,
    header_encoding=None,
    # Malformed requests are stream errors (headers.py), not connection errors as in h2.
    validate_inbound_headers=False,
    validate_outbound_headers=False,
    # Names are already lowercase and secrets marked never-indexed (headers.py).
    normalize_outbound_headers=False,
)


class Http2ServerProtocol(H2Endpoint):
    """Proxies one client's HTTP/2 connection to `ctx.target`."""

    def __init__(self, runtime: ProxyRuntime, ctx: ConnectionContext) -> None:
        super().__init__()
        self.runtime = runtime
        self.ctx = ctx
        self.limits = limits = http2_limits(runtime.config)
        self.tls = ctx.tls_dst if ctx.direction == OUTBOUND else ctx.tls_src
        self.tcp = runtime.metrics.tcp(ctx.direction, "src", ctx.target, self.tls)
        self.streams: dict[int, ProxiedStream] = {}
        self.targets = upstream_pool(runtime).acquire(ctx)
        self.draining = False
        self._goaway_sid: int | None = None  # streams above it are refused once draining
        self._peer_goaway = False
        self._window_opened = False
        self._stats: dict[bytes, HttpStats] = {}
        self.h2 = GracefulH2Connection(_CONFIG)
        self.h2.local_settings = Settings(
            client=False,
            initial_values={
                SettingCodes.MAX_CONCURRENT_STREAMS: limits.max_concurrent_streams,
                SettingCodes.INITIAL_WINDOW_SIZE: limits.initial_stream_window,
                SettingCodes.MAX_HEADER_LIST_SIZE: limits.max_header_list_size,
            },
        )
        self.h2.decoder.max_header_list_size = limits.max_header_list_size

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: cast, do not check.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        buffers = self.runtime.config.buffers
        transport.set_write_buffer_limits(buffers.high, buffers.low)
        self.tcp.on_open()
        h2 = self.h2
        h2.initiate_connection()
        h2.lift_inbound_stream_limit()  # enforced in _on_request, as a stream error
        extra = self.limits.initial_connection_window - h2.inbound_flow_control_window
        if extra > 0:
            h2.increment_flow_control_window(extra)
        self.flush()
        # After our SETTINGS are out: a runtime already draining calls drain() right away,
        # and its GOAWAY must not precede the server preface.
        self.runtime.track(self)

    def data_received(self, data: bytes) -> None:
        self.tcp.read_bytes += len(data)
        try:
            events = self.h2.receive_data(data)
        except ProtocolError as error:
            # h2 has queued GOAWAY with the matching error code.
            log.debug("client %s:%s broke HTTP/2: %s", *self.ctx.client, error)
            self._close_now()
            return
        except Exception as error:  # anything else h2 or hpack let escape: still the input
            log.warning("client %s:%s sent frames h2 failed on: %r", *self.ctx.client, error)
            self.h2.send_goaway(self.h2.highest_inbound_stream_id, ErrorCodes.PROTOCOL_ERROR)
            self._close_now()
            return
        try:
            for event in events:
                handler = _HANDLERS.get(type(event))
                if handler is not None:
                    handler(self, event)
            if self._window_opened:
                self._window_opened = False
                self.unblock()
        except Exception:
            log.exception("h2 client connection failed while handling events")
            self.h2.send_goaway(self.h2.highest_inbound_stream_id, ErrorCodes.INTERNAL_ERROR)
            self._close_now()
            return
        self.flush()

    def eof_received(self) -> bool | None:
        return None  # the client is gone: close, and reset what it had in flight

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.blocked.clear()
        streams, self.streams = self.streams, {}
        for stream in streams.values():
            stream.on_client_lost()
        self.targets.release_user()
        self.runtime.untrack(self)
        self.tcp.on_close(errno_label(exc))

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
        self.unblock()

    # -- shutdown ----------------------------------------------------------------------------
    def drain(self) -> None:
        """GOAWAY now, so the client opens no more streams; close when in-flight ones end."""
        if self.draining or self.transport is None:
            return
        self.draining = True
        self._goaway_sid = self.h2.highest_inbound_stream_id
        self.h2.send_goaway(self._goaway_sid)
        self.flush()
        if not self.streams:
            self._close_now()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def stream_closed(self, d_sid: int) -> None:
        self.streams.pop(d_sid, None)
        if not self.streams and (self.draining or self._peer_goaway):
            self._close_now()

    def _close_now(self) -> None:
        if self.transport is not None:
            self.flush()
            self.transport.close()

    # -- h2 events ---------------------------------------------------------------------------
    def _on_request(self, event: RequestReceived) -> None:
        sid = event.stream_id
        h2 = self.h2
        if (self._goaway_sid is not None and sid > self._goaway_sid) or (
            len(self.streams) >= self.limits.max_concurrent_streams
        ):
            # Unprocessed, so the client may safely retry it elsewhere.
            h2.reset_stream(sid, ErrorCodes.REFUSED_STREAM)
            return
        try:
            head = sanitize_request(event.headers)
        except MalformedHeaders as error:
            log.debug("malformed request on stream %d: %s", sid, error)
            h2.reset_stream(sid, ErrorCodes.PROTOCOL_ERROR)
            return
        stats = self._stats.get(head.authority)
        if stats is None:
            ctx = self.ctx
            authority = head.authority.decode("latin-1")
            stats = self.runtime.metrics.http(ctx.direction, authority, ctx.target, self.tls)
            self._stats[head.authority] = stats
        stats.requests += 1
        stream = ProxiedStream(self, sid, head, stats, self._loop.time(), self.targets)
        self.streams[sid] = stream
        if event.stream_ended is not None:
            # Lets the upstream HEADERS carry END_STREAM instead of an empty DATA frame.
            stream.request.ended = True
        self.targets.dispatch(stream)

    def _on_data(self, event: DataReceived) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.request.receive(event.data, event.flow_controlled_length)
        elif event.flow_controlled_length:
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)

    def _on_trailers(self, event: TrailersReceived) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.on_request_trailers(event.headers)

    def _on_stream_ended(self, event: StreamEnded) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.request.end()

    def _on_reset(self, event: StreamReset) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.on_client_reset(event.error_code)

    def _on_window_update(self, event: WindowUpdated | RemoteSettingsChanged) -> None:
        self._window_opened = True

    def _on_goaway(self, event: ConnectionTerminated) -> None:
        # The client opens no more streams; let those in flight finish, then close.
        self._peer_goaway = True
        if not self.streams:
            self._close_now()


# Dispatch on the event's exact type: one dict lookup per event, most frequent first.
_HANDLERS: dict[type[Event], Callable[[Http2ServerProtocol, Any], None]] = {
    DataReceived: Http2ServerProtocol._on_data,
    WindowUpdated: Http2ServerProtocol._on_window_update,
    RequestReceived: Http2ServerProtocol._on_request,
    StreamEnded: Http2ServerProtocol._on_stream_ended,
    TrailersReceived: Http2ServerProtocol._on_trailers,
    StreamReset: Http2ServerProtocol._on_reset,
    RemoteSettingsChanged: Http2ServerProtocol._on_window_update,
    ConnectionTerminated: Http2ServerProtocol._on_goaway,
}
