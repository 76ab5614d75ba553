"""A minimal gRPC client over one HTTP/2 (h2c) connection: unary and server-streaming calls.

Why by hand: see this package's docstring (grpcio's footprint in a sidecar). Theory of
operation: one `GrpcConnection` (an asyncio Protocol around h2) multiplexes calls; each call
is a `GrpcCall` that parses length-prefixed messages out of DATA frames into a small queue.
Flow control is the backpressure: received bytes are acknowledged to the server only when
the caller takes the message they belong to, so a caller that stops reading stops the
server instead of growing a buffer.
"""

from __future__ import annotations

import asyncio
import struct
from collections import deque
from typing import cast

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
)
from h2.exceptions import H2Error

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


class GrpcConnection(asyncio.Protocol):
    def __init__(self, authority: str) -> None:
        self._authority = authority.encode()
        config = H2Configuration(client_side=True, header_encoding=None)
        self._h2 = H2Connection(config=config)
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
        self._h2.initiate_connection()
        self._flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self._h2.receive_data(data)
        except H2Error as error:
            self._fail_all(GrpcError(UNAVAILABLE, f"HTTP/2 error from the control plane: {error}"))
            if self._transport is not None:
                self._transport.close()
            return
        for event in events:
            if isinstance(event, ResponseReceived):
                headers = cast(list[tuple[bytes, bytes]], event.headers)
                self._headers[event.stream_id] = headers
                status = dict(headers).get(b":status")
                if status != b"200" and event.stream_id in self._calls:
                    self._calls[event.stream_id].fail(
                        GrpcError(UNAVAILABLE, f"control plane answered HTTP {status!r}")
                    )
            elif isinstance(event, DataReceived):
                call = self._calls.get(event.stream_id)
                if call is not None:
                    call.feed(event.data, event.flow_controlled_length)
                else:
                    self._h2.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
            elif isinstance(event, TrailersReceived):
                call = self._calls.pop(event.stream_id, None)
                if call is not None:
                    call.finish(cast(list[tuple[bytes, bytes]], event.headers))
            elif isinstance(event, StreamEnded):
                # Trailers-only responses carry grpc-status in the headers.
                call = self._calls.pop(event.stream_id, None)
                if call is not None:
                    call.finish(self._headers.get(event.stream_id, []))
                self._headers.pop(event.stream_id, None)
            elif isinstance(event, StreamReset):
                call = self._calls.pop(event.stream_id, None)
                if call is not None:
                    call.fail(GrpcError(UNAVAILABLE, f"stream reset ({event.error_code})"))
            elif isinstance(event, ConnectionTerminated):
                self._fail_all(GrpcError(UNAVAILABLE, "control plane closed the connection"))
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_all(GrpcError(UNAVAILABLE, "connection to the control plane lost"))
        if not self.closed.done():
            self.closed.set_result(None)

    # -- calls ---------------------------------------------------------------------------
    def call(self, path: str, request: bytes) -> GrpcCall:
        if self._transport is None or self._transport.is_closing():
            raise GrpcError(UNAVAILABLE, "not connected to the control plane")
        stream_id = self._h2.get_next_available_stream_id()
        self._h2.send_headers(
            stream_id,
            [
                (b":method", b"POST"),
                (b":scheme", b"http"),
                (b":path", path.encode()),
                (b":authority", self._authority),
                (b"content-type", b"application/grpc"),
                (b"te", b"trailers"),
            ],
        )
        self._h2.send_data(
            stream_id, struct.pack("!BI", 0, len(request)) + request, end_stream=True
        )
        call = GrpcCall(self, stream_id)
        self._calls[stream_id] = call
        self._flush()
        return call

    def acknowledge(self, stream_id: int, length: int) -> None:
        try:
            self._h2.acknowledge_received_data(length, stream_id)
        except H2Error:
            return
        self._flush()

    def reset(self, stream_id: int) -> None:
        self._calls.pop(stream_id, None)
        try:
            self._h2.reset_stream(stream_id)
        except H2Error:
            return
        self._flush()

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            try:
                self._h2.close_connection()
                self._flush()
            except H2Error:
                pass
            self._transport.close()

    def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _fail_all(self, error: GrpcError) -> None:
        calls, self._calls = self._calls, {}
        for call in calls.values():
            call.fail(error)
