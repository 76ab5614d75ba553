"""The HTTP/2 connection core: bytes in, hook calls out, frames queued in `out`. No I/O.

`H2Connection` is what the proxy keeps of RFC 9113 for one connection, either side: frame
parsing and validation, SETTINGS, PING, GOAWAY, both levels of flow control, HPACK, and
the state of each open stream. It is lean on purpose: no event objects, no per-frame
objects, no history of closed streams. Subclasses (`Http2ServerProtocol`,
`UpstreamConnection`) receive what matters through the `on_*` hooks, called synchronously
while a read is parsed, and write through `send_*`, which append frames to `out`. (A
subclass must not reuse the core's attribute names: frame handlers are `_recv_*`.)

Theory of operation. A stream is in `states` from its HEADERS (received on the server
side, sent on the client side) until it is closed: both sides sent END_STREAM, or a
RST_STREAM went either way. A frame for a stream id not in `states` is for an *idle*
stream when the id was never opened (a connection error where the RFC says so), else for a
*closed* one: ignored, except that DATA still counts against the connection window (given
straight back) and header blocks are still decoded (HPACK state is per connection).

Flow control. Send windows (`StreamState.send_window`, `send_window`) are spent by
`send_data`; callers check `window(sid)` first. Receive windows are spent by DATA and
restored only by `ack_data`, which the proxy calls when it has forwarded the bytes; window
updates go out in batches of half a window, as h2 did.

Errors. A connection error raises `H2ConnectionError` out of `receive`; the caller sends
GOAWAY with its code and closes. A stream error sends RST_STREAM and calls `on_reset`, as a
reset from the peer would.
"""

from __future__ import annotations

from typing import Any

from gossamer.proxy.http2 import frames
from gossamer.proxy.http2.frames import (
    ACK,
    CONTINUATION,
    DATA,
    DEFAULT_MAX_FRAME,
    DEFAULT_WINDOW,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADERS,
    MAX_FRAME_LIMIT,
    MAX_STREAM_ID,
    MAX_WINDOW,
    PADDED,
    PING,
    PREFACE,
    PRIORITY,
    PRIORITY_FLAG,
    PUSH_PROMISE,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    ErrorCodes,
    SettingCodes,
    data_head,
    headers_frames,
    unpack_head,
)
from gossamer.proxy.http2.hpack import Decoder, Encoder, Header, HPACKError, OversizedHeaderList


class H2ConnectionError(Exception):
    """A connection error (RFC 9113 §5.4.1): GOAWAY with `code`, then close."""

    def __init__(self, code: ErrorCodes, message: str) -> None:
        super().__init__(message)
        self.code = code


class StreamClosedError(Exception):
    """A send on a stream that is no longer open on this connection."""


class TooManyStreamsError(Exception):
    """The peer's SETTINGS_MAX_CONCURRENT_STREAMS is reached."""


class NoAvailableStreamIdError(Exception):
    """Stream ids are used up on this connection."""


class StreamState:
    __slots__ = (
        "head_seen",
        "local_closed",
        "recv_window",
        "remote_closed",
        "send_window",
        "unacked",
    )

    def __init__(self, send_window: int, recv_window: int) -> None:
        self.send_window = send_window
        self.recv_window = recv_window
        self.unacked = 0  # received, forwarded, not yet announced in a WINDOW_UPDATE
        self.remote_closed = False  # END_STREAM received
        self.local_closed = False  # END_STREAM sent
        self.head_seen = False  # the request (server) or final response (client) arrived


def _error(code: ErrorCodes, message: str) -> H2ConnectionError:
    return H2ConnectionError(code, message)


class H2Connection:
    def __init__(
        self,
        *,
        client_side: bool,
        initial_window: int,
        max_header_list_size: int,
        max_concurrent_streams: int | None = None,
    ) -> None:
        self.client_side = client_side
        self.states: dict[int, StreamState] = {}
        self.out: list[bytes] = []
        self.encoder = Encoder()
        self.decoder = Decoder(max_header_list_size)
        # What we advertise; the initial window applies to our streams once acknowledged.
        self._local_settings: dict[int, int] = {
            SettingCodes.INITIAL_WINDOW_SIZE: initial_window,
            SettingCodes.MAX_HEADER_LIST_SIZE: max_header_list_size,
        }
        if client_side:
            self._local_settings[SettingCodes.ENABLE_PUSH] = 0
        if max_concurrent_streams is not None:
            self._local_settings[SettingCodes.MAX_CONCURRENT_STREAMS] = max_concurrent_streams
        self._initial_window = initial_window
        self.recv_initial = DEFAULT_WINDOW  # our stream window as the peer knows it
        self._stream_threshold = max(1, DEFAULT_WINDOW // 2)
        self._max_block = max_header_list_size + DEFAULT_MAX_FRAME
        # Connection-level windows.
        self.send_window = DEFAULT_WINDOW
        self.recv_window = DEFAULT_WINDOW
        self.recv_unacked = 0
        self._conn_threshold = DEFAULT_WINDOW // 2
        # The peer's settings.
        self.remote_initial_window = DEFAULT_WINDOW
        self.max_frame_size = DEFAULT_MAX_FRAME
        self.remote_max_concurrent = MAX_STREAM_ID
        self.highest_inbound_stream_id = 0
        self.next_stream_id = 1
        self.goaway_received = False
        self.window_opened = False  # a send window grew: blocked flows may proceed
        self._buf = b""
        self._await_preface = not client_side
        self._settings_seen = False
        # A header block waiting for CONTINUATION: [sid, end_stream, fragments, size].
        self._block: list[Any] | None = None

    # -- hooks ---------------------------------------------------------------------------
    def on_request(self, sid: int, headers: list[Header], end_stream: bool) -> None:
        raise _error(ErrorCodes.PROTOCOL_ERROR, "unexpected request")

    def on_response(self, sid: int, headers: list[Header], end_stream: bool) -> None:
        """The final response's headers (client side)."""

    def on_informational(self, sid: int, headers: list[Header]) -> None:
        """A 1xx response (client side)."""

    def on_trailers(self, sid: int, headers: list[Header]) -> None:
        """A trailer block; END_STREAM came with it."""

    def on_data(self, sid: int, data: bytes, flow_len: int, end_stream: bool) -> None:
        """DATA for an open stream; `flow_len` (padding included) awaits `ack_data`."""

    def on_reset(self, sid: int, code: int) -> None:
        """The stream was reset: by the peer, or by us for a stream error."""

    def on_settings(self) -> None:
        """The peer's SETTINGS were applied (and acknowledged)."""

    def on_goaway(self, last_stream_id: int, code: int) -> None:
        """The peer sent GOAWAY."""

    # -- output --------------------------------------------------------------------------
    def initiate(self, connection_window: int) -> None:
        """Our preface (client), SETTINGS, and the connection window beyond the default."""
        if self.client_side:
            self.out.append(PREFACE)
        self.out.append(frames.settings(self._local_settings))
        extra = connection_window - DEFAULT_WINDOW
        if extra > 0:
            self.out.append(frames.window_update(0, extra))
            self.recv_window = connection_window
            self._conn_threshold = connection_window // 2

    def data_to_send(self) -> bytes:
        out = self.out
        if not out:
            return b""
        data = b"".join(out) if len(out) > 1 else out[0]
        out.clear()
        return data

    def start_stream(self, headers: list[Header], end_stream: bool) -> int:
        """Client side: sends `headers` on a new stream and returns its id."""
        sid = self.next_stream_id
        if sid > MAX_STREAM_ID:
            raise NoAvailableStreamIdError
        if len(self.states) >= self.remote_max_concurrent:
            raise TooManyStreamsError
        self.next_stream_id = sid + 2
        state = StreamState(self.remote_initial_window, self.recv_initial)
        state.local_closed = end_stream
        self.states[sid] = state
        block = self.encoder.encode(headers)
        self.out += headers_frames(sid, block, end_stream, self.max_frame_size)
        return sid

    def send_headers(self, sid: int, headers: list[Header], end_stream: bool = False) -> None:
        state = self.states.get(sid)
        if state is None or state.local_closed:
            raise StreamClosedError(sid)
        block = self.encoder.encode(headers)
        self.out += headers_frames(sid, block, end_stream, self.max_frame_size)
        if end_stream:
            state.local_closed = True
            if state.remote_closed:
                del self.states[sid]

    def window(self, sid: int) -> int:
        """How much DATA may be sent on `sid` now (both windows)."""
        state = self.states.get(sid)
        if state is None or state.local_closed:
            raise StreamClosedError(sid)
        window = state.send_window
        return window if window < self.send_window else self.send_window

    def send_data(self, sid: int, data: bytes, end_stream: bool = False) -> None:
        """Sends DATA the caller has checked against `window` and `max_frame_size`."""
        state = self.states.get(sid)
        if state is None or state.local_closed:
            raise StreamClosedError(sid)
        size = len(data)
        state.send_window -= size
        self.send_window -= size
        self.out.append(data_head(sid, size, end_stream))
        if size:
            self.out.append(data)
        if end_stream:
            state.local_closed = True
            if state.remote_closed:
                del self.states[sid]

    def reset_stream(self, sid: int, code: int) -> None:
        """RST_STREAM, if the stream is still open; a no-op for one already closed."""
        if self.states.pop(sid, None) is not None:
            self.out.append(frames.rst_stream(sid, code))

    def ack_data(self, sid: int, size: int) -> None:
        """`size` received bytes of `sid` are dealt with: the peer may send that many more."""
        unacked = self.recv_unacked + size
        if unacked >= self._conn_threshold:
            self.out.append(frames.window_update(0, unacked))
            self.recv_window += unacked
            unacked = 0
        self.recv_unacked = unacked
        state = self.states.get(sid)
        if state is not None and not state.remote_closed:
            unacked = state.unacked + size
            if unacked >= self._stream_threshold:
                self.out.append(frames.window_update(sid, unacked))
                state.recv_window += unacked
                unacked = 0
            state.unacked = unacked

    def send_goaway(self, last_stream_id: int, code: int = 0, debug: bytes = b"") -> None:
        self.out.append(frames.goaway(last_stream_id, code, debug))

    # -- input ---------------------------------------------------------------------------
    def receive(self, data: bytes) -> None:
        """Parses what arrived, calling the hooks; raises `H2ConnectionError`."""
        if self._buf:
            data = self._buf + data
            self._buf = b""
        if self._await_preface:
            if len(data) < len(PREFACE):
                if not PREFACE.startswith(data):
                    raise _error(ErrorCodes.PROTOCOL_ERROR, "invalid connection preface")
                self._buf = data
                return
            if not data.startswith(PREFACE):
                raise _error(ErrorCodes.PROTOCOL_ERROR, "invalid connection preface")
            data = data[len(PREFACE) :]
            self._await_preface = False
        pos = 0
        end = len(data)
        while end - pos >= 9:
            high, low, kind, flags, sid = unpack_head(data, pos)
            length = (high << 16) | low
            if length > DEFAULT_MAX_FRAME:  # refused from the header, before buffering it
                raise _error(ErrorCodes.FRAME_SIZE_ERROR, f"frame of {length} bytes")
            stop = pos + 9 + length
            if stop > end:
                break
            payload = data[pos + 9 : stop]
            pos = stop
            sid &= MAX_STREAM_ID
            if self._block is not None and kind != CONTINUATION:
                raise _error(ErrorCodes.PROTOCOL_ERROR, "frame inside a header block")
            if not self._settings_seen and kind != SETTINGS:
                raise _error(ErrorCodes.PROTOCOL_ERROR, "first frame is not SETTINGS")
            if kind == DATA:
                self._recv_data(sid, flags, payload)
            elif kind == HEADERS:
                self._recv_headers(sid, flags, payload)
            elif kind == WINDOW_UPDATE:
                self._recv_window_update(sid, payload)
            elif kind == RST_STREAM:
                self._recv_rst_stream(sid, payload)
            elif kind == SETTINGS:
                self._recv_settings(sid, flags, payload)
            elif kind == CONTINUATION:
                self._recv_continuation(sid, flags, payload)
            elif kind == PING:
                self._recv_ping(sid, flags, payload)
            elif kind == GOAWAY:
                self._recv_goaway(sid, payload)
            elif kind == PRIORITY:
                if not sid:
                    raise _error(ErrorCodes.PROTOCOL_ERROR, "PRIORITY on stream 0")
                if length != 5:
                    raise _error(ErrorCodes.FRAME_SIZE_ERROR, "PRIORITY of the wrong size")
            elif kind == PUSH_PROMISE:
                raise _error(ErrorCodes.PROTOCOL_ERROR, "PUSH_PROMISE (push is disabled)")
            # Unknown frame types are ignored (RFC 9113 §4.1).
        if pos < end:
            self._buf = data[pos:]

    def _is_idle(self, sid: int) -> bool:
        """Never opened: the peer's ids above the highest seen, ours not yet used, pushes."""
        if self.client_side:
            return not sid & 1 or sid >= self.next_stream_id
        return not sid & 1 or sid > self.highest_inbound_stream_id

    def _stream_error(self, sid: int, code: ErrorCodes) -> None:
        self.reset_stream(sid, code)
        self.on_reset(sid, code)

    def _recv_data(self, sid: int, flags: int, payload: bytes) -> None:
        if not sid:
            raise _error(ErrorCodes.PROTOCOL_ERROR, "DATA on stream 0")
        flow_len = len(payload)
        if flags & PADDED:
            if not flow_len or payload[0] >= flow_len:
                raise _error(ErrorCodes.PROTOCOL_ERROR, "padding exceeds the payload")
            payload = payload[1 : flow_len - payload[0]]
        self.recv_window -= flow_len
        if self.recv_window < 0:
            raise _error(ErrorCodes.FLOW_CONTROL_ERROR, "connection window exceeded")
        state = self.states.get(sid)
        if state is None:
            if self._is_idle(sid):
                raise _error(ErrorCodes.PROTOCOL_ERROR, f"DATA on idle stream {sid}")
            if flow_len:
                self.ack_data(0, flow_len)
            return
        state.recv_window -= flow_len
        if state.remote_closed or not state.head_seen or state.recv_window < 0:
            if flow_len:
                self.ack_data(0, flow_len)
            if state.recv_window < 0:
                self._stream_error(sid, ErrorCodes.FLOW_CONTROL_ERROR)
            elif state.remote_closed:
                self._stream_error(sid, ErrorCodes.STREAM_CLOSED)
            else:
                self._stream_error(sid, ErrorCodes.PROTOCOL_ERROR)  # DATA before a response
            return
        end_stream = bool(flags & END_STREAM)
        if end_stream:
            self._remote_end(sid, state)  # before the hook, which sees the stream closed
        self.on_data(sid, payload, flow_len, end_stream)

    def _recv_headers(self, sid: int, flags: int, payload: bytes) -> None:
        if not sid:
            raise _error(ErrorCodes.PROTOCOL_ERROR, "HEADERS on stream 0")
        start, stop = 0, len(payload)
        if flags & PADDED:
            if not stop:
                raise _error(ErrorCodes.PROTOCOL_ERROR, "padding exceeds the payload")
            start, stop = 1, stop - payload[0]
        if flags & PRIORITY_FLAG:
            start += 5  # priority signals are deprecated (RFC 9113 §5.3.2): skipped
        if start > stop:
            raise _error(ErrorCodes.PROTOCOL_ERROR, "padding exceeds the payload")
        fragment = payload[start:stop] if start or stop != len(payload) else payload
        end_stream = bool(flags & END_STREAM)
        if flags & END_HEADERS:
            self._recv_header_block(sid, fragment, end_stream)
        else:
            self._block = [sid, end_stream, [fragment], len(fragment)]

    def _recv_continuation(self, sid: int, flags: int, payload: bytes) -> None:
        block = self._block
        if block is None or block[0] != sid:
            raise _error(ErrorCodes.PROTOCOL_ERROR, "unexpected CONTINUATION")
        block[2].append(payload)
        block[3] += len(payload)
        if block[3] > self._max_block:
            raise _error(ErrorCodes.ENHANCE_YOUR_CALM, "header block too large")
        if flags & END_HEADERS:
            self._block = None
            self._recv_header_block(sid, b"".join(block[2]), block[1])

    def _recv_header_block(self, sid: int, block: bytes, end_stream: bool) -> None:
        try:
            headers = self.decoder.decode(block)
        except OversizedHeaderList as error:
            raise _error(ErrorCodes.ENHANCE_YOUR_CALM, str(error)) from None
        except HPACKError as error:
            raise _error(ErrorCodes.COMPRESSION_ERROR, str(error)) from None
        state = self.states.get(sid)
        if state is None:
            if self.client_side or not sid & 1:
                if self._is_idle(sid):
                    raise _error(ErrorCodes.PROTOCOL_ERROR, f"HEADERS on idle stream {sid}")
                return  # a stream already closed here: decoded for HPACK's sake only
            if sid <= self.highest_inbound_stream_id:
                return
            self.highest_inbound_stream_id = sid
            state = StreamState(self.remote_initial_window, self.recv_initial)
            state.head_seen = True
            state.remote_closed = end_stream
            self.states[sid] = state
            self.on_request(sid, headers, end_stream)
            return
        if state.remote_closed:
            self._stream_error(sid, ErrorCodes.STREAM_CLOSED)
            return
        if not state.head_seen:  # client side: a response to our request
            if headers and headers[0][0] == b":status" and headers[0][1][:1] == b"1":
                if end_stream:
                    self._stream_error(sid, ErrorCodes.PROTOCOL_ERROR)
                else:
                    self.on_informational(sid, headers)
                return
            state.head_seen = True
            if end_stream:
                self._remote_end(sid, state)
            self.on_response(sid, headers, end_stream)
        elif not end_stream:
            self._stream_error(sid, ErrorCodes.PROTOCOL_ERROR)  # trailers must end the stream
        else:
            self._remote_end(sid, state)
            self.on_trailers(sid, headers)

    def _remote_end(self, sid: int, state: StreamState) -> None:
        state.remote_closed = True
        if state.local_closed:
            del self.states[sid]

    def _recv_rst_stream(self, sid: int, payload: bytes) -> None:
        if not sid:
            raise _error(ErrorCodes.PROTOCOL_ERROR, "RST_STREAM on stream 0")
        if len(payload) != 4:
            raise _error(ErrorCodes.FRAME_SIZE_ERROR, "RST_STREAM of the wrong size")
        if self.states.pop(sid, None) is None:
            if self._is_idle(sid):
                raise _error(ErrorCodes.PROTOCOL_ERROR, f"RST_STREAM on idle stream {sid}")
            return
        self.on_reset(sid, frames.error_code(frames.u32(payload)))

    def _recv_window_update(self, sid: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise _error(ErrorCodes.FRAME_SIZE_ERROR, "WINDOW_UPDATE of the wrong size")
        increment = frames.u32(payload) & MAX_WINDOW
        if not sid:
            if not increment:
                raise _error(ErrorCodes.PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self.send_window += increment
            if self.send_window > MAX_WINDOW:
                raise _error(ErrorCodes.FLOW_CONTROL_ERROR, "connection window overflow")
            self.window_opened = True
            return
        state = self.states.get(sid)
        if state is None:
            if self._is_idle(sid):
                raise _error(ErrorCodes.PROTOCOL_ERROR, f"WINDOW_UPDATE on idle stream {sid}")
            return
        if not increment:
            self._stream_error(sid, ErrorCodes.PROTOCOL_ERROR)
            return
        state.send_window += increment
        if state.send_window > MAX_WINDOW:
            self._stream_error(sid, ErrorCodes.FLOW_CONTROL_ERROR)
            return
        self.window_opened = True

    def _recv_settings(self, sid: int, flags: int, payload: bytes) -> None:
        if sid:
            raise _error(ErrorCodes.PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            if payload:
                raise _error(ErrorCodes.FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            self._settings_acknowledged()
            return
        if len(payload) % 6:
            raise _error(ErrorCodes.FRAME_SIZE_ERROR, "SETTINGS of the wrong size")
        for code, value in frames.settings_pairs(payload):
            if code == SettingCodes.INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise _error(ErrorCodes.FLOW_CONTROL_ERROR, "initial window over 2^31-1")
                delta = value - self.remote_initial_window
                self.remote_initial_window = value
                for state in self.states.values():
                    state.send_window += delta
                    if state.send_window > MAX_WINDOW:
                        raise _error(ErrorCodes.FLOW_CONTROL_ERROR, "stream window overflow")
                if delta > 0:
                    self.window_opened = True
            elif code == SettingCodes.MAX_FRAME_SIZE:
                if not DEFAULT_MAX_FRAME <= value <= MAX_FRAME_LIMIT:
                    raise _error(ErrorCodes.PROTOCOL_ERROR, f"invalid MAX_FRAME_SIZE {value}")
                self.max_frame_size = value
            elif code == SettingCodes.MAX_CONCURRENT_STREAMS:
                self.remote_max_concurrent = value
            elif code == SettingCodes.HEADER_TABLE_SIZE:
                self.encoder.set_max_table_size(value)
            elif code == SettingCodes.ENABLE_PUSH and value > 1:
                raise _error(ErrorCodes.PROTOCOL_ERROR, f"invalid ENABLE_PUSH {value}")
        self._settings_seen = True
        self.out.append(frames.SETTINGS_ACK)
        self.on_settings()

    def _settings_acknowledged(self) -> None:
        # Our only SETTINGS is the initial one: from now on our stream window is in force.
        delta = self._initial_window - self.recv_initial
        if delta:
            for state in self.states.values():
                state.recv_window += delta
            self.recv_initial = self._initial_window
            self._stream_threshold = max(1, self._initial_window // 2)

    def _recv_ping(self, sid: int, flags: int, payload: bytes) -> None:
        if sid:
            raise _error(ErrorCodes.PROTOCOL_ERROR, "PING on a stream")
        if len(payload) != 8:
            raise _error(ErrorCodes.FRAME_SIZE_ERROR, "PING of the wrong size")
        if not flags & ACK:
            self.out.append(frames.ping_ack(payload))

    def _recv_goaway(self, sid: int, payload: bytes) -> None:
        if sid:
            raise _error(ErrorCodes.PROTOCOL_ERROR, "GOAWAY on a stream")
        if len(payload) < 8:
            raise _error(ErrorCodes.FRAME_SIZE_ERROR, "GOAWAY too short")
        self.goaway_received = True
        last = frames.u32(payload) & MAX_STREAM_ID
        self.on_goaway(last, frames.error_code(frames.u32(payload, 4)))
