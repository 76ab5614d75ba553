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
from typing import TYPE_CHECKING, cast

from gossamer.proxy.errors import ProxyError, UpstreamClosed, UpstreamProtocolError
from gossamer.proxy.http2.connection import (
    H2ConnectionError,
    NoAvailableStreamIdError,
    TooManyStreamsError,
)
from gossamer.proxy.http2.endpoint import H2Endpoint, errno_label
from gossamer.proxy.http2.frames import ErrorCodes
from gossamer.proxy.http2.headers import Header
from gossamer.proxy.metrics import TcpStats

if TYPE_CHECKING:
    from gossamer.proxy.http2.pool import TargetPool
    from gossamer.proxy.http2.stream import ProxiedStream

log = logging.getLogger("gossamer.proxy.http2")


class UpstreamConnection(H2Endpoint):
    def __init__(self, pool: TargetPool, tcp: TcpStats) -> None:
        limits = pool.limits
        super().__init__(
            client_side=True,
            initial_window=limits.initial_stream_window,
            max_header_list_size=limits.max_header_list_size,
        )
        self.pool = pool
        self.tcp = tcp
        self.streams: dict[int, ProxiedStream] = {}
        self.ready = False
        # False once GOAWAY arrived (or stream ids ran out): no new streams on it.
        self.usable = True
        self.max_streams = 0
        self.idle_since = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        # Why the proxy closed it, for streams still waiting on it.
        self.error: ProxyError | None = None
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
        self.initiate(self._conn_window)
        self.flush()

    def data_received(self, data: bytes) -> None:
        self.tcp.read_bytes += len(data)
        if self.error is not None:
            return
        try:
            self.receive(data)
            if self.window_opened:
                self.unblock()
        except H2ConnectionError as error:
            log.info("upstream %s sent invalid HTTP/2: %s", self.pool.target_addr, error)
            self.send_goaway(0, error.code)
            self._close_with(UpstreamProtocolError(f"upstream sent invalid HTTP/2: {error}"))
            return
        except Exception:
            log.exception("h2 upstream connection failed while handling frames")
            self.send_goaway(0, ErrorCodes.INTERNAL_ERROR)
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
        self.states.clear()
        self.out.clear()
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
        request = stream.request
        end = request.ended and not request.chunks and request.trailers is None
        try:
            sid = self.start_stream(stream.head.headers, end)
        except TooManyStreamsError:
            self.max_streams = len(self.streams)
            return False
        except NoAvailableStreamIdError:
            self._retire()  # out of stream ids: never again
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
        if sid in self.states:  # never left open behind the proxy's back
            self.reset_stream(sid, ErrorCodes.CANCEL)
            self.schedule_flush()
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

    # -- connection hooks ---------------------------------------------------------------
    def on_response(self, sid: int, headers: list[Header], end_stream: bool) -> None:
        stream = self.streams.get(sid)
        if stream is not None:
            stream.on_response(headers, end_stream)

    def on_informational(self, sid: int, headers: list[Header]) -> None:
        stream = self.streams.get(sid)
        if stream is not None:
            stream.on_informational(headers)

    def on_data(self, sid: int, data: bytes, flow_len: int, end_stream: bool) -> None:
        stream = self.streams.get(sid)
        if stream is not None:
            stream.response.receive(data, flow_len, end_stream)
        elif flow_len:
            self.ack_data(sid, flow_len)

    def on_trailers(self, sid: int, headers: list[Header]) -> None:
        stream = self.streams.get(sid)
        if stream is not None:
            stream.on_response_trailers(headers)

    def on_reset(self, sid: int, code: int) -> None:
        stream = self.streams.get(sid)
        if stream is not None:
            stream.on_upstream_reset(code)

    def on_settings(self) -> None:
        self.window_opened = True
        self.max_streams = min(self.remote_max_concurrent, self._stream_cap)
        if not self.ready:
            self.ready = True
            self.pool.on_ready(self)
        else:
            self.pool.on_capacity(self)

    def on_goaway(self, last_stream_id: int, code: int) -> None:
        if code != ErrorCodes.NO_ERROR:
            log.info("upstream %s sent GOAWAY %s", self.pool.target_addr, code)
        self._retire()
        for sid in [sid for sid in self.streams if sid > last_stream_id]:
            self.streams[sid].on_upstream_refused()
        if not self.streams:
            self.close()
