"""What the two sides of an HTTP/2 proxy connection share: the connection core and its socket.

`H2Endpoint` is the base of both the client-facing protocol and the upstream connection: an
`H2Connection` (connection.py, no I/O) bound to an asyncio transport. A flow (one
direction of one proxied stream) receives bytes on one endpoint and sends them on another,
so each endpoint offers the same few things: the connection's send and ack methods,
whether its socket is backed up (`write_paused`), the flows waiting for its send window to
open (`blocked`), and a batched flush. Frames queued while a read is handled are written
once at its end; frames queued on behalf of another connection are coalesced with
`schedule_flush` into one `transport.write` per loop iteration, so a burst of frames from
many streams costs one syscall.
"""

from __future__ import annotations

import asyncio
import errno as errno_names
from typing import TYPE_CHECKING

from gossamer.proxy.http2.connection import H2Connection
from gossamer.proxy.metrics import TcpStats

if TYPE_CHECKING:
    from gossamer.proxy.http2.flow import Flow


class H2Endpoint(H2Connection, asyncio.Protocol):
    """One side of a proxied HTTP/2 exchange, as a flow sees it."""

    tcp: TcpStats

    def __init__(
        self,
        *,
        client_side: bool,
        initial_window: int,
        max_header_list_size: int,
        max_concurrent_streams: int | None = None,
    ) -> None:
        super().__init__(
            client_side=client_side,
            initial_window=initial_window,
            max_header_list_size=max_header_list_size,
            max_concurrent_streams=max_concurrent_streams,
        )
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
        """Writes what is queued at the end of this loop iteration, once."""
        if not self._flush_pending and self.transport is not None:
            self._flush_pending = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._flush_pending = False
        out = self.out
        if not out:
            return
        data = b"".join(out) if len(out) > 1 else out[0]
        out.clear()
        transport = self.transport
        if transport is not None and not transport.is_closing():
            self.tcp.write_bytes += len(data)
            transport.write(data)

    def unblock(self) -> None:
        """The send window or the socket opened: let waiting flows send what they can."""
        self.window_opened = False
        if self.blocked:
            blocked, self.blocked = self.blocked, {}
            for flow in blocked:
                flow.pump()


def errno_label(exc: BaseException | None) -> str:
    """Linkerd's `errno` label for a closed connection: empty when clean."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return errno_names.errorcode.get(exc.errno, str(exc.errno))
    return ""
