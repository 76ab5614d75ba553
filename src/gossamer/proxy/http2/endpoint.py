"""What the two sides of an HTTP/2 proxy connection share: the h2 state machine and its socket.

`H2Endpoint` is the base of both the client-facing protocol and the upstream connection. A
flow (one direction of one proxied stream) receives bytes on one endpoint and sends them on
another, so each endpoint offers the same few things: its `GracefulH2Connection`, whether its
socket is backed up (`write_paused`), the flows waiting for its send window to open
(`blocked`), and a batched flush. Writes made on behalf of another connection are coalesced
with `schedule_flush` into one `transport.write` per loop iteration, so a burst of frames
from many streams costs one syscall.
"""

from __future__ import annotations

import asyncio
import errno as errno_names
from collections import deque
from typing import TYPE_CHECKING

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import _error_code_from_int
from h2.events import ConnectionTerminated, Event
from h2.exceptions import FrameTooLargeError
from h2.frame_buffer import FrameBuffer
from h2.settings import SettingCodes
from hyperframe.frame import Frame, GoAwayFrame

from gossamer.proxy.metrics import TcpStats

if TYPE_CHECKING:
    from gossamer.proxy.http2.flow import Flow


class EagerFrameBuffer(FrameBuffer):
    """h2's frame buffer, except that an oversized frame is refused from its header.

    h2 checks a frame's length only once the whole frame has arrived, so a peer could make
    it buffer up to 16 MiB per connection by announcing a huge frame; here the announced
    length is checked as soon as the 9-byte header is in (FRAME_SIZE_ERROR).
    """

    def __next__(self) -> Frame:
        data = self._data
        if len(data) >= 9:
            length = (data[0] << 16) | (data[1] << 8) | data[2]
            if length > self.max_frame_size:
                raise FrameTooLargeError(f"frame of {length} bytes over {self.max_frame_size}")
        return super().__next__()


class GracefulH2Connection(H2Connection):
    """h2's connection, except that GOAWAY lets the streams below its last stream id finish.

    h2 moves the whole connection to CLOSED when it sends or receives GOAWAY, and then
    rejects every further frame, so in-flight streams could never complete: the point of a
    graceful GOAWAY. Here a received GOAWAY only produces the `ConnectionTerminated` event,
    `send_goaway` only queues the frame, and the proxy itself stops opening (or accepting)
    streams beyond the announced id.
    """

    def __init__(self, config: H2Configuration) -> None:
        super().__init__(config)
        self.incoming_buffer = EagerFrameBuffer(server=not config.client_side)

    def _receive_goaway_frame(self, frame: GoAwayFrame) -> tuple[list, list[Event]]:
        event = ConnectionTerminated()
        event.error_code = _error_code_from_int(frame.error_code)
        event.last_stream_id = frame.last_stream_id
        event.additional_data = frame.additional_data or None
        return [], [event]

    def lift_inbound_stream_limit(self) -> None:
        """Stops h2 enforcing the advertised MAX_CONCURRENT_STREAMS itself.

        h2 treats a client exceeding it as a connection error, even a client that opened
        its streams before it saw our SETTINGS; RFC 9113 §5.1.2 calls for a stream error,
        so the caller refuses excess streams with REFUSED_STREAM instead. Call after
        `initiate_connection`, which has already advertised the real limit.
        """
        self.local_settings._settings[SettingCodes.MAX_CONCURRENT_STREAMS] = deque([2**31 - 1])

    def send_goaway(self, last_stream_id: int, error_code: int = 0, debug: bytes = b"") -> None:
        frame = GoAwayFrame(
            stream_id=0,
            last_stream_id=last_stream_id,
            error_code=error_code,
            additional_data=debug,
        )
        self._prepare_for_sending([frame])


class H2Endpoint(asyncio.Protocol):
    """One side of a proxied HTTP/2 exchange, as a flow sees it."""

    h2: GracefulH2Connection
    tcp: TcpStats

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.write_paused = False
        # Flows whose next bytes wait for this endpoint's send window (or socket) to open.
        # A dict for its insertion order: flows resume in the order they blocked.
        self.blocked: dict[Flow, None] = {}
        self._flush_pending = False
        self._loop = asyncio.get_running_loop()

    @property
    def alive(self) -> bool:
        return self.transport is not None

    def loop_time(self) -> float:
        return self._loop.time()

    def schedule_flush(self) -> None:
        """Writes what h2 has queued at the end of this loop iteration, once."""
        if not self._flush_pending and self.transport is not None:
            self._flush_pending = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._flush_pending = False
        data = self.h2.data_to_send()
        transport = self.transport
        if data and transport is not None and not transport.is_closing():
            self.tcp.write_bytes += len(data)
            transport.write(data)

    def unblock(self) -> None:
        """The send window or the socket opened: let waiting flows send what they can."""
        if self.blocked:
            blocked, self.blocked = self.blocked, {}
            for flow in blocked:
                flow.pump()


def errno_label(exc: BaseException | None) -> str:
    """Linkerd's `errno` label for a closed connection: empty when clean."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return errno_names.errorcode.get(exc.errno, str(exc.errno))
    return ""
