"""A small HTTP/2 endpoint for the proxy's tests: h2 over asyncio streams, loopback only.

`H2Peer` plays either the client in front of the proxy or the upstream server behind it.
Flow control is explicit: with `auto_ack=False`, received DATA is acknowledged only when the
test consumes it (`PeerStream.read_body`), so a test can be a slow or stalled reader and
watch the sender get backpressured through the proxy. `sent[sid]` records how far a send
has got. Every wait is bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import _error_code_from_int
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    InformationalResponseReceived,
    RequestReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
)
from h2.settings import SettingCodes, Settings
from hyperframe.frame import GoAwayFrame

from gossamer.proxy.config import ProxyConfig
from gossamer.proxy.http2 import Http2ServerProtocol, flow, upstream_pool
from gossamer.proxy.metrics import INBOUND_PLAINTEXT, OUTBOUND_PLAINTEXT
from gossamer.proxy.runtime import OUTBOUND, ConnectionContext, ProxyRuntime

Headers = list[tuple[bytes, bytes]]
WAIT = 20.0


class GracefulH2Connection(H2Connection):
    """h2's connection, except that GOAWAY lets the streams below its last stream id finish.

    h2 moves the whole connection to CLOSED when it sends or receives GOAWAY and then
    rejects every further frame; a test peer needs to keep going after one (graceful
    GOAWAY from either side). h2 is an independent implementation to test the proxy's own
    HTTP/2 against.
    """

    def _receive_goaway_frame(self, frame: GoAwayFrame) -> tuple[list[Any], list[Any]]:
        event = ConnectionTerminated()
        event.error_code = _error_code_from_int(frame.error_code)
        event.last_stream_id = frame.last_stream_id
        event.additional_data = frame.additional_data or None
        return [], [event]

    def send_goaway(self, last_stream_id: int, error_code: int = 0, debug: bytes = b"") -> None:
        frame = GoAwayFrame(
            stream_id=0,
            last_stream_id=last_stream_id,
            error_code=error_code,
            additional_data=debug,
        )
        self._prepare_for_sending([frame])


def header(headers: Headers, name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


class PeerStream:
    def __init__(self, peer: H2Peer, sid: int) -> None:
        self.peer = peer
        self.sid = sid
        self.headers: Headers | None = None
        self.informational: list[Headers] = []
        self.body = bytearray()  # received, not yet consumed
        self.received = 0
        self.trailers: Headers | None = None
        self.ended = False
        self.reset_code: int | None = None

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = WAIT) -> None:
        await self.peer.wait_for(predicate, timeout)

    async def wait_reset(self, timeout: float = WAIT) -> int | None:
        await self.wait_for(lambda: self.reset_code is not None, timeout)
        return self.reset_code

    async def wait_received(self, count: int, timeout: float = WAIT) -> None:
        await self.wait_for(lambda: self.received >= count, timeout)

    async def read_body(
        self, *, chunk: int = 1 << 30, delay: float = 0.0, timeout: float = WAIT
    ) -> bytes:
        """Consumes the body to its end, acknowledging as it goes (slowly, with `delay`)."""
        out = bytearray()
        while True:
            await self.wait_for(
                lambda: bool(self.body) or self.ended or self.reset_code is not None, timeout
            )
            if self.body:
                take = bytes(self.body[:chunk])
                del self.body[: len(take)]
                out += take
                if not self.peer.auto_ack:
                    self.peer.ack(self.sid, len(take))
                if delay:
                    await asyncio.sleep(delay)
                continue
            return bytes(out)

    async def response(self, timeout: float = WAIT) -> Headers:
        await self.wait_for(
            lambda: self.headers is not None or self.reset_code is not None, timeout
        )
        assert self.headers is not None, f"stream reset with {self.reset_code}"
        return self.headers


class H2Peer:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        client: bool,
        auto_ack: bool = True,
        settings: dict[SettingCodes, int] | None = None,
        validate_outbound: bool = True,
        connection_window: int | None = None,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.auto_ack = auto_ack
        config = H2Configuration(
            client_side=client,
            header_encoding=None,
            validate_outbound_headers=validate_outbound,
            normalize_outbound_headers=validate_outbound,
        )
        self.conn = GracefulH2Connection(config)
        if settings:
            self.conn.local_settings = Settings(client=client, initial_values=settings)
        self.streams: dict[int, PeerStream] = {}
        self.requests: asyncio.Queue[PeerStream] = asyncio.Queue()
        self.goaway: ConnectionTerminated | None = None
        self.closed = False
        self.sent: dict[int, int] = {}
        self.connection_window = connection_window
        # Cleared, the peer stops reading its socket (TCP backpressure toward the proxy).
        self.reading = asyncio.Event()
        self.reading.set()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- plumbing ---------------------------------------------------------------------------
    def start(self, preface: bool = True) -> None:
        if preface:
            self.conn.initiate_connection()
            if self.connection_window:
                extra = self.connection_window - self.conn.inbound_flow_control_window
                self.conn.increment_flow_control_window(extra)
            self.flush()
        self._task = asyncio.get_running_loop().create_task(self._read_loop())

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = WAIT) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def _read_loop(self) -> None:
        try:
            while True:
                await self.reading.wait()
                data = await self.reader.read(65536)
                if not data:
                    break
                for event in self.conn.receive_data(data):
                    self._on_event(event)
                self.flush()
                self._changed.set()
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed = True
            self._changed.set()

    def _stream(self, sid: int) -> PeerStream:
        stream = self.streams.get(sid)
        if stream is None:
            stream = self.streams[sid] = PeerStream(self, sid)
        return stream

    def _on_event(self, event: Any) -> None:
        if isinstance(event, RequestReceived):
            stream = self._stream(event.stream_id)
            stream.headers = list(event.headers)
            self.requests.put_nowait(stream)
        elif isinstance(event, ResponseReceived):
            self._stream(event.stream_id).headers = list(event.headers)
        elif isinstance(event, InformationalResponseReceived):
            self._stream(event.stream_id).informational.append(list(event.headers))
        elif isinstance(event, DataReceived):
            stream = self._stream(event.stream_id)
            stream.body += event.data
            stream.received += len(event.data)
            if self.auto_ack and event.flow_controlled_length:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, TrailersReceived):
            self._stream(event.stream_id).trailers = list(event.headers)
        elif isinstance(event, StreamEnded):
            self._stream(event.stream_id).ended = True
        elif isinstance(event, StreamReset):
            self._stream(event.stream_id).reset_code = event.error_code
        elif isinstance(event, ConnectionTerminated):
            self.goaway = event

    def ack(self, sid: int, size: int) -> None:
        self.conn.acknowledge_received_data(size, sid)
        self.flush()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()

    # -- requests and responses -------------------------------------------------------------
    def request(
        self,
        path: str = "/",
        *,
        method: str = "GET",
        authority: str = "svc.test:80",
        extra: Headers | None = None,
        end_stream: bool = True,
    ) -> PeerStream:
        sid = self.conn.get_next_available_stream_id()
        headers = [
            (b":method", method.encode()),
            (b":scheme", b"http"),
            (b":authority", authority.encode()),
            (b":path", path.encode()),
            *(extra or []),
        ]
        self.conn.send_headers(sid, headers, end_stream=end_stream)
        self.flush()
        return self._stream(sid)

    def respond(
        self, sid: int, status: int = 200, extra: Headers | None = None, end: bool = False
    ) -> None:
        headers = [(b":status", str(status).encode()), *(extra or [])]
        self.conn.send_headers(sid, headers, end_stream=end)
        self.flush()

    async def send_data(
        self, sid: int, data: bytes, *, end_stream: bool = True, timeout: float = WAIT
    ) -> None:
        """Sends `data` as the windows allow, waiting (bounded) for WINDOW_UPDATEs.

        Stops early, quietly, if the stream is reset: the caller checks `reset_code`.
        """
        view = memoryview(data)
        pos = 0
        self.sent[sid] = 0
        stream = self._stream(sid)
        async with asyncio.timeout(timeout):
            while pos < len(data):
                if stream.reset_code is not None:
                    return
                window = self.conn.local_flow_control_window(sid)
                if window <= 0:
                    await self.wait_for(
                        lambda: (
                            stream.reset_code is not None
                            or self.conn.local_flow_control_window(sid) > 0
                        )
                    )
                    continue
                size = min(window, self.conn.max_outbound_frame_size, len(data) - pos)
                self.conn.send_data(sid, bytes(view[pos : pos + size]))
                pos += size
                self.sent[sid] = pos
                self.flush()
                await self.writer.drain()
        if end_stream and stream.reset_code is None:
            self.conn.end_stream(sid)
            self.flush()

    def send_trailers(self, sid: int, trailers: Headers) -> None:
        self.conn.send_headers(sid, trailers, end_stream=True)
        self.flush()

    def reset(self, sid: int, code: int) -> None:
        self.conn.reset_stream(sid, code)
        self.flush()


async def connect_peer(port: int, **kwargs: Any) -> H2Peer:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    peer = H2Peer(reader, writer, client=True, **kwargs)
    peer.start()
    return peer


Handler = Callable[[H2Peer, PeerStream], Awaitable[None]]


class H2Upstream:
    """An h2c server on 127.0.0.1 running `handler` for each request it receives."""

    def __init__(
        self, handler: Handler, *, auto_ack: bool = True, max_streams: int | None = None
    ) -> None:
        self.handler = handler
        self.auto_ack = auto_ack
        self.settings = {SettingCodes.MAX_CONCURRENT_STREAMS: max_streams} if max_streams else {}
        self.peers: list[H2Peer] = []
        self.errors: list[BaseException] = []
        self.server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> H2Upstream:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def open_streams(self) -> int:
        return sum(
            1 for p in self.peers for s in p.streams.values() if not s.ended or not s.headers
        )

    async def wait_requests(self, count: int, timeout: float = WAIT) -> None:
        """Waits until `count` requests have arrived, over all connections."""
        async with asyncio.timeout(timeout):
            while sum(len(p.streams) for p in self.peers) < count:
                await asyncio.sleep(0.005)

    @property
    def target(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = H2Peer(
            reader, writer, client=False, auto_ack=self.auto_ack, settings=self.settings or None
        )
        self.peers.append(peer)
        peer.start()
        while not peer.closed:
            try:
                async with asyncio.timeout(0.5):
                    stream = await peer.requests.get()
            except TimeoutError:
                continue
            task = asyncio.get_running_loop().create_task(self._run(peer, stream))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, peer: H2Peer, stream: PeerStream) -> None:
        try:
            await self.handler(peer, stream)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # surfaced by tests that check `errors`
            self.errors.append(error)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for peer in self.peers:
            await peer.close()
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)


class ProxyUnderTest:
    """`Http2ServerProtocol` on an ephemeral loopback listener, forwarding to `target`."""

    def __init__(
        self,
        target: tuple[str, int],
        runtime: ProxyRuntime | None = None,
        direction: str = OUTBOUND,
    ) -> None:
        self.runtime = runtime or ProxyRuntime(ProxyConfig())
        tls = OUTBOUND_PLAINTEXT if direction == OUTBOUND else INBOUND_PLAINTEXT
        self.ctx = ConnectionContext(direction, ("127.0.0.1", 0), target, target, tls, tls)
        self.protocols: list[Http2ServerProtocol] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    def _factory(self) -> Http2ServerProtocol:
        protocol = Http2ServerProtocol(self.runtime, self.ctx)
        self.protocols.append(protocol)
        return protocol

    async def __aenter__(self) -> ProxyUnderTest:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(self._factory, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for protocol in self.protocols:
            protocol.abort()
        upstream_pool(self.runtime).close_all()
        await asyncio.sleep(0.01)
        assert not flow._NO_CHUNKS, "bytes were held in the shared empty buffer"

    def metrics(self) -> str:
        return self.runtime.metrics.render().decode()

    def open_streams(self) -> int:
        return sum(len(p.streams) for p in self.protocols if p.alive)
