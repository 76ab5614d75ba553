"""What one outbound request to a service will do: its route, backend, retries, timeouts.

A `RequestPlan` is made when a request's head has been read and the connection targets a
service. It carries the per-request state that retries and timeouts need (the attempt
count, the bytes kept for replay, the endpoint in use, timers) so the HTTP/1 exchange stays
about moving bytes. Bodies up to `MAX_REPLAY` bytes are kept for replay; a bigger body makes
the request unretryable (Linkerd's limit is the same 64 KiB).
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

from gossamer.proxy.metrics import RouteStats

if TYPE_CHECKING:
    # Types only: routing brings the generated protobuf code (~5 MiB), which a proxy
    # without a control plane never needs.
    from gossamer.proxy.balance import EndpointHandle
    from gossamer.proxy.control.destination import EndpointMeta
    from gossamer.proxy.outbound.service import BackendTarget, OutboundService
    from gossamer.proxy.routing import HeaderModifiers, SelectedRoute

MAX_REPLAY = 64 * 1024

# Response hold states: pass bytes through; hold them until the status is known (a retry may
# discard them, or the head gets rewritten); discard them (this attempt will be retried).
PASS, HOLD, DISCARD = 0, 1, 2


class RequestPlan:
    __slots__ = (
        "attempt_start",
        "attempts",
        "authority",
        "avoid",
        "backend",
        "handle",
        "meta",
        "replay",
        "replay_bytes",
        "request_timer",
        "response_timer",
        "route",
        "route_stats",
        "service",
        "start",
    )

    def __init__(
        self,
        service: OutboundService,
        route: SelectedRoute,
        backend: BackendTarget,
        route_stats: RouteStats,
        start: float,
        authority: bytes,
    ) -> None:
        self.service = service
        self.authority = authority
        self.route = route
        self.backend = backend
        self.route_stats = route_stats
        self.start = start
        self.attempts = 0
        self.attempt_start = start
        self.handle: EndpointHandle | None = None
        # The endpoint whose attempt just failed: a retry goes elsewhere if it can.
        self.avoid: object = None
        self.meta: EndpointMeta | None = None
        # Head and body as sent, while they fit: what a retry sends again.
        self.replay: list[bytes] | None = [] if route.retry.limit > 0 else None
        self.replay_bytes = 0
        self.response_timer: asyncio.TimerHandle | None = None
        self.request_timer: asyncio.TimerHandle | None = None

    def keep(self, data: bytes) -> None:
        replay = self.replay
        if replay is not None:
            self.replay_bytes += len(data)
            if self.replay_bytes > MAX_REPLAY:
                self.replay = None
            else:
                replay.append(data)

    def may_retry(self, now: float) -> bool:
        """Whether one more attempt is allowed: replayable, under the limit, in budget."""
        if self.replay is None or self.attempts >= self.route.retry.limit:
            return False
        if not self.service.budget.withdraw(now):
            self.route_stats.retry("budget_exhausted")
            return False
        return True

    @property
    def holds_response(self) -> bool:
        return self.replay is not None or not self.route.response_modifiers.noop

    def end_attempt(self, success: bool, now: float, rtt: float | None = None) -> None:
        """The attempt is over; `rtt` overrides its latency sample (a failed connect
        passes the connect timeout, so a refusing endpoint does not look cheap)."""
        handle, self.handle = self.handle, None
        if handle is not None:
            self.avoid = None if success else handle.addr
            # A failure's time is a sample the handle never lets make an endpoint look
            # faster; a try that timed out counts for all it took.
            elapsed = now - self.attempt_start
            handle.finish(success, elapsed if rtt is None or rtt < elapsed else rtt, now)
        timer, self.response_timer = self.response_timer, None
        if timer is not None:
            timer.cancel()

    def finish(self, status: int, now: float) -> None:
        """The request is over (answered or failed for good)."""
        timer, self.request_timer = self.request_timer, None
        if timer is not None:
            timer.cancel()
        self.route_stats.response(status, now - self.start)


_HEAD_END = re.compile(rb"\r?\n\r?\n")


def rewrite_response_head(held: bytes, modifiers: HeaderModifiers) -> bytes:
    """Applies response header modifiers to the head at the start of `held`."""
    match = _HEAD_END.search(held)
    if match is None:
        return held
    head, rest = held[: match.start()], held[match.end() :]
    lines = head.split(b"\n")
    status_line = lines[0].rstrip(b"\r")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, _, value = line.rstrip(b"\r").partition(b":")
        headers.append((name, value.strip()))
    headers = modifiers.apply(headers)
    out = [status_line, b"\r\n"]
    for name, value in headers:
        out += (name, b": ", value, b"\r\n")
    out.append(b"\r\n")
    return b"".join(out) + rest
