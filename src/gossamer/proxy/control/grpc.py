"""A minimal gRPC client over one HTTP/2 (h2c) connection: unary and server-streaming calls.

Why by hand: see this package's docstring (grpcio's footprint in a sidecar). Theory of
operation: one `GrpcConnection` (the proxy's own HTTP/2 core as an asyncio Protocol)
multiplexes calls; each call is a `GrpcCall` that parses length-prefixed messages out of
DATA frames into a small queue.
Flow control is the backpressure: received bytes are acknowledged to the server only when
the caller takes the message they belong to, so a caller that stops reading stops the
server instead of growing a buffer.
"""

from __future__ import annotations

import asyncio
import struct
from collections import deque
from typing import cast

from gossamer.proxy.http2.connection import (
    H2Connection,
    H2ConnectionError,
    NoAvailableStreamIdError,
    StreamClosedError,
    TooManyStreamsError,
)

MAX_MESSAGE = 4 * 1024 * 1024


class GrpcError(Exception):
    """A call ended with a non-OK status, or the connection failed (UNAVAILABLE = 14)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"grpc status {code}: {message}")
        self.code = code
        self.message = message


UNAVAILABLE = 14
INTERNAL = 13


class GrpcCall:
    """One call's response: `await call.message()` until it returns None (the end)."""

    def __init__(self, conn: GrpcConnection, stream_id: int) -> None:
        self._conn = conn
        self.stream_id = stream_id
        self._buf = bytearray()
        # (message, flow-controlled bytes to acknowledge when the message is taken)
        self._messages: deque[tuple[bytes, int]] = deque()
        self._unacked = 0
        self._status: GrpcError | None = None
        self._ended = False
        self._wake = asyncio.Event()

    def feed(self, data: bytes, flow_length: int) -> None:
        self._buf += data
        self._unacked += flow_length
        while len(self._buf) >= 5:
            compressed, length = struct.unpack_from("!BI", self._buf)
            if compressed:
                self.fail(GrpcError(INTERNAL, "compressed messages are not supported"))
                return
            if length > MAX_MESSAGE:
                self.fail(GrpcError(INTERNAL, f"message of {length} bytes exceeds the limit"))
                return
            if len(self._buf) < 5 + length:
                break
            message = bytes(self._buf[5 : 5 + length])
            del self._buf[: 5 + length]
            self._messages.append((message, self._unacked))
            self._unacked = 0
        self._wake.set()

    def finish(self, headers: list[tuple[bytes, bytes]]) -> None:
        status, message = 0, ""
        seen = False
        for name, value in headers:
            if name == b"grpc-status":
                status, seen = int(value), True
            elif name == b"grpc-message":
                message = value.decode("utf-8", "replace")
        if not seen:
            status, message = UNAVAILABLE, "response ended without grpc-status"
        if status != 0:
            self._status = GrpcError(status, message)
        self._ended = True
        self._wake.set()

    def fail(self, error: GrpcError) -> None:
        if not self._ended:
            self._status = error
            self._ended = True
            self._wake.set()
            self._conn.reset(self.stream_id)

    async def message(self) -> bytes | None:
        while not self._messages:
            if self._ended:
                if self._status is not None:
                    raise self._status
                return None
            self._wake.clear()
            await self._wake.wait()
        message, flow = self._messages.popleft()
        if flow:
            self._conn.acknowledge(self.stream_id, flow)
        return message

    def cancel(self) -> None:
        if not self._ended:
            self._ended = True
            self._status = GrpcError(1, "cancelled")
            self._wake.set()
            self._conn.reset(self.stream_id)


class GrpcConnection(H2Connection, asyncio.Protocol):
    """One h2c connection to a control-plane service, on the proxy's own HTTP/2 core."""

    def __init__(self, authority: str) -> None:
        H2Connection.__init__(
            self,
            client_side=True,
            initial_window=MAX_MESSAGE + 5,
            max_header_list_size=64 * 1024,
        )
        self._authority = authority.encode()
        self._transport: asyncio.Transport | None = None
        self._calls: dict[int, GrpcCall] = {}
        self._headers: dict[int, list[tuple[bytes, bytes]]] = {}
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @classmethod
    async def connect(cls, host: str, port: int, timeout: float) -> GrpcConnection:
        loop = asyncio.get_running_loop()
        _, conn = await asyncio.wait_for(
            loop.create_connection(lambda: cls(f"{host}:{port}"), host, port), timeout
        )
        return conn

    # -- asyncio -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self.initiate(MAX_MESSAGE + 5)
        self._flush()

    def data_received(self, data: bytes) -> None:
        try:
            self.receive(data)
        except H2ConnectionError as error:
            self._fail_all(GrpcError(UNAVAILABLE, f"HTTP/2 error from the control plane: {error}"))
            if self._transport is not None:
                self._transport.close()
            return
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_all(GrpcError(UNAVAILABLE, "connection to the control plane lost"))
        if not self.closed.done():
            self.closed.set_result(None)

    # -- HTTP/2 hooks --------------------------------------------------------------------
    def on_response(self, sid: int, headers: list[tuple[bytes, bytes]], end_stream: bool) -> None:
        self._headers[sid] = headers
        call = self._calls.get(sid)
        status = dict(headers).get(b":status")
        if call is not None and status != b"200":
            call.fail(GrpcError(UNAVAILABLE, f"control plane answered HTTP {status!r}"))
        elif end_stream:
            # Trailers-only: grpc-status is in the headers.
            self._end(sid, headers)

    def on_data(self, sid: int, data: bytes, flow_len: int, end_stream: bool) -> None:
        call = self._calls.get(sid)
        if call is not None:
            call.feed(data, flow_len)
        else:
            self.ack_data(sid, flow_len)
        if end_stream:
            self._end(sid, [])

    def on_trailers(self, sid: int, headers: list[tuple[bytes, bytes]]) -> None:
        self._end(sid, headers)

    def on_reset(self, sid: int, code: int) -> None:
        call = self._calls.pop(sid, None)
        self._headers.pop(sid, None)
        if call is not None:
            call.fail(GrpcError(UNAVAILABLE, f"stream reset ({code})"))

    def on_goaway(self, last_stream_id: int, code: int) -> None:
        for sid in [sid for sid in self._calls if sid > last_stream_id]:
            self._calls.pop(sid).fail(GrpcError(UNAVAILABLE, "control plane going away"))

    def _end(self, sid: int, headers: list[tuple[bytes, bytes]]) -> None:
        self._headers.pop(sid, None)
        call = self._calls.pop(sid, None)
        if call is not None:
            call.finish(headers)

    # -- calls ---------------------------------------------------------------------------
    def call(self, path: str, request: bytes) -> GrpcCall:
        if self._transport is None or self._transport.is_closing():
            raise GrpcError(UNAVAILABLE, "not connected to the control plane")
        try:
            sid = self.start_stream(
                [
                    (b":method", b"POST"),
                    (b":scheme", b"http"),
                    (b":path", path.encode()),
                    (b":authority", self._authority),
                    (b"content-type", b"application/grpc"),
                    (b"te", b"trailers"),
                ],
                end_stream=False,
            )
            body = struct.pack("!BI", 0, len(request)) + request
            if len(body) > min(self.window(sid), self.max_frame_size):
                # Requests here are a CSR or a name: far below one frame. Refuse, cleanly.
                self.reset_stream(sid, 8)
                self._flush()
                raise GrpcError(INTERNAL, "request larger than one HTTP/2 frame")
            self.send_data(sid, body, end_stream=True)
        except (TooManyStreamsError, NoAvailableStreamIdError, StreamClosedError) as error:
            raise GrpcError(UNAVAILABLE, f"cannot open a stream: {type(error).__name__}") from None
        call = GrpcCall(self, sid)
        self._calls[sid] = call
        self._flush()
        return call

    def acknowledge(self, stream_id: int, length: int) -> None:
        self.ack_data(stream_id, length)
        self._flush()

    def reset(self, stream_id: int) -> None:
        self._calls.pop(stream_id, None)
        self.reset_stream(stream_id, 8)  # CANCEL
        self._flush()

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self.send_goaway(self.highest_inbound_stream_id)
            self._flush()
            self._transport.close()

    def _flush(self) -> None:
        data = self.data_to_send()
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _fail_all(self, error: GrpcError) -> None:
        calls, self._calls = self._calls, {}
        for call in calls.values():
            call.fail(error)
