"""One h2c connection from the proxy to a target, shared by the streams of many clients.

The connection is the client side of an `H2Connection`. It becomes *ready* when the
target's first SETTINGS arrive (so its MAX_CONCURRENT_STREAMS is known before streams are
opened); from then on its `TargetPool` may open streams on it while `capacity` allows.
After a GOAWAY it takes no new streams: those above the GOAWAY's last stream id are handed
back to their `ProxiedStream` to be retried elsewhere or refused, the others complete, and
the connection closes when the last one is done.

Reading from the upstream never pauses: when the socket toward it backs up, the flows that
send on it hold their bytes instead (see `Flow.pump`). Pausing reads here could deadlock
with an upstream that stops reading while its own writes to us are blocked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from h2.config import H2Configuration
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    InformationalResponseReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import NoAvailableStreamIDError, ProtocolError, TooManyStreamsError
from h2.settings import SettingCodes, Settings

from gossamer.proxy.errors import ProxyError, UpstreamClosed, UpstreamProtocolError
from gossamer.proxy.http2.endpoint import GracefulH2Connection, H2Endpoint, errno_label
from gossamer.proxy.metrics import TcpStats

if TYPE_CHECKING:
    from gossamer.proxy.http2.pool import TargetPool
    from gossamer.proxy.http2.stream import ProxiedStream

log = logging.getLogger("gossamer.proxy.http2")

_CONFIG = H2Configuration(
    client_side=True,
    header_encoding=None,
    # Validated (and stripped of hop-by-hop fields) in headers.py, as a stream error.
    validate_inbound_headers=False,
    # Everything sent was validated on the way in; h2 validating again mid-encode could
    # also leave the shared HPACK context out of step with the upstream.
    validate_outbound_headers=False,
    # Names are already lowercase and secrets marked never-indexed (headers.py).
    normalize_outbound_headers=False,
)


class UpstreamConnection(H2Endpoint):
    def __init__(self, pool: TargetPool, tcp: TcpStats) -> None:
        super().__init__()
        self.pool = pool
        self.tcp = tcp
        self.streams: dict[int, ProxiedStream] = {}
        self.ready = False
        # False once GOAWAY arrived (or stream ids ran out): no new streams on it.
        self.usable = True
        self.max_streams = 0
        self.idle_since = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._window_opened = False
        # Why the proxy closed it, for streams still waiting on it.
        self.error: ProxyError | None = None
        limits = pool.limits
        self.h2 = GracefulH2Connection(_CONFIG)
        self.h2.local_settings = Settings(
            client=True,
            initial_values={
                SettingCodes.ENABLE_PUSH: 0,
                SettingCodes.INITIAL_WINDOW_SIZE: limits.initial_stream_window,
                SettingCodes.MAX_HEADER_LIST_SIZE: limits.max_header_list_size,
            },
        )
        self.h2.decoder.max_header_list_size = limits.max_header_list_size
        self._conn_window = limits.upstream_connection_window
        self._stream_cap = limits.max_streams_per_upstream

    @property
    def capacity(self) -> int:
        if not (self.ready and self.usable):
            return 0
        return self.max_streams - len(self.streams)

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: cast, do not check.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        buffers = self.pool.runtime.config.buffers
        transport.set_write_buffer_limits(buffers.high, buffers.low)
        self.tcp.on_open()
        h2 = self.h2
        h2.initiate_connection()
        extra = self._conn_window - h2.inbound_flow_control_window
        if extra > 0:
            h2.increment_flow_control_window(extra)
        self.flush()

    def data_received(self, data: bytes) -> None:
        self.tcp.read_bytes += len(data)
        try:
            events = self.h2.receive_data(data)
        except Exception as error:  # ProtocolError, or anything else h2 let escape
            log.info("upstream %s sent invalid HTTP/2: %s", self.pool.target_addr, error)
            self._close_with(UpstreamProtocolError(f"upstream sent invalid HTTP/2: {error}"))
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
            log.exception("h2 upstream connection failed while handling events")
            self._close_with(UpstreamProtocolError("proxy error handling upstream frames"))
            return
        self.flush()

    def eof_received(self) -> bool | None:
        return None  # close; connection_lost fails what is still open

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.ready = self.usable = False
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self.blocked.clear()
        streams, self.streams = self.streams, {}
        self.pool.on_lost(self, self.error)
        error = UpstreamClosed()
        for stream in streams.values():
            stream.on_upstream_lost(error)
        self.tcp.on_close(errno_label(exc))

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self.unblock()

    # -- streams ---------------------------------------------------------------------------
    def open_stream(self, stream: ProxiedStream) -> bool:
        """Sends the request headers on a new stream; False if the connection is full."""
        h2 = self.h2
        request = stream.request
        end = request.ended and not request.chunks and request.trailers is None
        try:
            sid = h2.get_next_available_stream_id()
            h2.send_headers(sid, stream.head.headers, end_stream=end)
        except TooManyStreamsError:
            self.max_streams = len(self.streams)
            return False
        except (NoAvailableStreamIDError, ProtocolError):
            # Out of stream ids, or h2 no longer accepts streams here: never again.
            self._retire()
            return False
        # An idle timer left running is cheaper than cancelling it per request: it checks
        # whether the connection is still idle when it fires.
        self.streams[sid] = stream
        self.schedule_flush()
        stream.attach(self, sid, end)
        return True

    def release(self, sid: int) -> None:
        """Stream `sid` is finished with this connection."""
        if self.streams.pop(sid, None) is None or self.transport is None:
            return
        if self.streams:
            self.pool.on_capacity(self)
            return
        if not self.usable:
            self.close()
            return
        self.idle_since = self._loop.time()
        if self._idle_timer is None:
            self._idle_timer = self._loop.call_later(self.pool.idle_timeout, self._idle_check)
        self.pool.on_capacity(self)

    def close(self) -> None:
        if self.transport is not None:
            self.flush()
            self.transport.close()

    def _idle_check(self) -> None:
        self._idle_timer = None
        if self.streams or self.transport is None:
            return
        remaining = self.idle_since + self.pool.idle_timeout - self._loop.time()
        if remaining > 0.001:
            self._idle_timer = self._loop.call_later(remaining, self._idle_check)
            return
        self._retire()
        self.close()

    def _retire(self) -> None:
        if self.usable:
            self.usable = False
            self.pool.on_unusable(self)

    def _close_with(self, error: UpstreamProtocolError) -> None:
        self.error = error
        streams, self.streams = self.streams, {}
        self._retire()
        for stream in streams.values():
            stream.on_upstream_lost(error)
        if self.transport is not None:
            self.flush()  # h2 has queued its GOAWAY
            self.transport.close()

    # -- h2 events ---------------------------------------------------------------------------
    def _on_response(self, event: ResponseReceived) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.on_response(event.headers, event.stream_ended is not None)

    def _on_informational(self, event: InformationalResponseReceived) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.on_informational(event.headers)

    def _on_data(self, event: DataReceived) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.response.receive(event.data, event.flow_controlled_length)
        elif event.flow_controlled_length:
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)

    def _on_trailers(self, event: TrailersReceived) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.on_response_trailers(event.headers)

    def _on_stream_ended(self, event: StreamEnded) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.response.end()

    def _on_reset(self, event: StreamReset) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.on_upstream_reset(event.error_code)

    def _on_window_update(self, event: WindowUpdated) -> None:
        self._window_opened = True

    def _on_settings(self, event: RemoteSettingsChanged) -> None:
        self._window_opened = True
        self.max_streams = min(self.h2.remote_settings.max_concurrent_streams, self._stream_cap)
        if not self.ready:
            self.ready = True
            self.pool.on_ready(self)
        else:
            self.pool.on_capacity(self)

    def _on_goaway(self, event: ConnectionTerminated) -> None:
        last = event.last_stream_id if event.last_stream_id is not None else 0
        if event.error_code != ErrorCodes.NO_ERROR:
            log.info("upstream %s sent GOAWAY %s", self.pool.target_addr, event.error_code)
        self._retire()
        for sid in [sid for sid in self.streams if sid > last]:
            self.streams[sid].on_upstream_refused()
        if not self.streams:
            self.close()


# Dispatch on the event's exact type: one dict lookup per event, most frequent first.
_HANDLERS: dict[type[Event], Callable[[UpstreamConnection, Any], None]] = {
    DataReceived: UpstreamConnection._on_data,
    WindowUpdated: UpstreamConnection._on_window_update,
    ResponseReceived: UpstreamConnection._on_response,
    StreamEnded: UpstreamConnection._on_stream_ended,
    TrailersReceived: UpstreamConnection._on_trailers,
    StreamReset: UpstreamConnection._on_reset,
    InformationalResponseReceived: UpstreamConnection._on_informational,
    RemoteSettingsChanged: UpstreamConnection._on_settings,
    ConnectionTerminated: UpstreamConnection._on_goaway,
}
