"""One direction of one proxied stream: DATA received on one endpoint, sent on the other.

Flow control is end to end because of one rule: a flow acknowledges bytes to its source
(`ack_data`, which lets the source connection send WINDOW_UPDATE) only after it has queued
them on the sink, inside the sink's send window. Bytes that do not fit wait in
`chunks` and stay unacknowledged, so the source's window closes and the sender stops. The
buffer is therefore bounded by the receive window the proxy advertised to the source (one
stream window per stream, one connection window per connection); a peer that sends beyond
it commits a flow-control error (connection.py).

A flow finishes when it has sent END_STREAM (with the last DATA frame, an empty one, or the
trailers), or when it is discarded because its stream was reset: discarding acknowledges
what it still held, so the source connection's window is not leaked. A finished flow lets
go of its stream (`stream` becomes None), so a finished request leaves no reference cycle
behind and its memory goes back at once rather than at the next garbage collection.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from gossamer.proxy.http2.connection import StreamClosedError
from gossamer.proxy.http2.headers import Header

if TYPE_CHECKING:
    from gossamer.proxy.http2.endpoint import H2Endpoint
    from gossamer.proxy.http2.stream import ProxiedStream


# What a flow holds before it holds anything: shared, and never appended to (`hold` gives
# the flow a deque of its own first). Most flows of small requests never need one.
_NO_CHUNKS: deque[bytes] = deque()


class Flow:
    __slots__ = (
        "acked_ahead",
        "buffered",
        "chunks",
        "ended",
        "finished",
        "sent",
        "sink",
        "sink_sid",
        "source",
        "source_sid",
        "stream",
        "trailers",
    )

    def __init__(
        self,
        stream: ProxiedStream | None,
        source: H2Endpoint | None,
        source_sid: int,
        sink: H2Endpoint | None,
        sink_sid: int,
    ) -> None:
        self.stream = stream
        self.source = source
        self.source_sid = source_sid
        # No sink yet (a request waiting for its upstream stream) means: hold the bytes.
        self.sink = sink
        self.sink_sid = sink_sid
        self.chunks = _NO_CHUNKS  # a deque of its own once it holds anything (`hold`)
        self.buffered = 0
        self.sent = 0
        # Bytes at the front of `chunks` already acknowledged to the source: a replayed
        # request body (a retry) sends them again, but must not give the window back twice.
        self.acked_ahead = 0
        self.ended = False  # the source sent END_STREAM
        self.trailers: list[Header] | None = None
        self.finished = False

    def receive(self, data: bytes, flow_controlled_length: int, end: bool) -> None:
        source = self.source
        if self.finished:
            # Nobody will forward these any more: give the window straight back.
            if source is not None and flow_controlled_length:
                source.ack_data(self.source_sid, flow_controlled_length)
            return
        padding = flow_controlled_length - len(data)
        if padding and source is not None:
            source.ack_data(self.source_sid, padding)
        if data:
            self.hold(data)
        if end and not self.ended:
            self.ended = True
        elif not data:
            return
        self.pump()

    def hold(self, data: bytes) -> None:
        chunks = self.chunks
        if chunks is _NO_CHUNKS:
            chunks = self.chunks = deque()
        chunks.append(data)
        self.buffered += len(data)

    def end(self, trailers: list[Header] | None = None) -> None:
        if self.ended:
            return
        self.ended = True
        self.trailers = trailers
        self.pump()

    def pump(self) -> None:
        """Sends as much as the sink's window allows; ends the stream once all is sent."""
        sink = self.sink
        if sink is None or self.finished:
            return
        if sink.write_paused:
            # The sink's socket is backed up: hold the bytes (unacknowledged) until it drains.
            sink.blocked[self] = None
            return
        sid = self.sink_sid
        chunks = self.chunks
        sent = 0
        end_sent = False
        failed = False
        try:
            while chunks:
                window = sink.window(sid)
                if window <= 0:
                    sink.blocked[self] = None
                    break
                chunk = chunks[0]
                size = len(chunk)
                limit = window if window < sink.max_frame_size else sink.max_frame_size
                if size > limit:
                    sink.send_data(sid, chunk[:limit])
                    chunks[0] = chunk[limit:]
                    size = limit
                else:
                    chunks.popleft()
                    # END_STREAM rides on the last DATA frame when there are no trailers.
                    end_sent = not chunks and self.ended and self.trailers is None
                    sink.send_data(sid, chunk, end_sent)
                sent += size
            if not chunks and self.ended and not end_sent:
                if self.trailers is not None:
                    sink.send_headers(sid, self.trailers, True)
                else:
                    sink.send_data(sid, b"", True)
                end_sent = True
        except StreamClosedError:
            # The sink's stream closed under us (a reset not yet handled): stop; the
            # stream's reset handling discards the rest.
            failed = True
        if sent or end_sent:
            sink.schedule_flush()
        if sent:
            self.buffered -= sent
            self.sent += sent
            ahead = self.acked_ahead
            if ahead:
                self.acked_ahead = ahead - sent if ahead > sent else 0
                sent = sent - ahead if sent > ahead else 0
            source = self.source
            if sent and source is not None and source.alive:
                source.ack_data(self.source_sid, sent)
                source.schedule_flush()
        stream = self.stream
        if stream is None:
            return
        if failed:
            stream.sink_failed(self)
        elif end_sent:
            self.finished = True
            stream.flow_finished(self)

    def discard(self) -> None:
        """Drops what is held (the stream is gone) and returns its window to the source."""
        self.finished = True
        if self.sink is not None:
            self.sink.blocked.pop(self, None)
        held = self.buffered - self.acked_ahead
        self.chunks = _NO_CHUNKS
        self.buffered = self.acked_ahead = 0
        source = self.source
        if held and source is not None and source.alive:
            source.ack_data(self.source_sid, held)
            source.schedule_flush()

    def detach(self) -> None:
        """Leaves the sink stream (a retry will attach the flow to another); what it holds
        stays held."""
        if self.sink is not None:
            self.sink.blocked.pop(self, None)
        self.sink = None
        self.sink_sid = 0
        self.finished = False

    def rewind(self, replay: list[bytes], replay_bytes: int) -> None:
        """Detaches, and holds the whole body received so far (`replay`, whose tail is
        what the flow still held) to send it again from the start."""
        self.detach()
        self.acked_ahead = replay_bytes - (self.buffered - self.acked_ahead)
        self.chunks = deque(replay)
        self.buffered = replay_bytes
        self.sent = 0
