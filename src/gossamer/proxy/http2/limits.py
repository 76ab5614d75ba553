"""Bounds and windows for proxied HTTP/2 connections.

`ProxyConfig` does not carry these yet; `http2_limits()` reads `config.http2` when it exists
and falls back to the defaults below, which follow linkerd2-proxy (64 KiB stream windows,
1 MiB client connection windows, 100 concurrent streams per client connection). Upstream
connections get one stream window per stream slot instead, because they are shared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gossamer.proxy.config import ProxyConfig


@dataclass(frozen=True, slots=True)
class Http2Limits:
    """What one HTTP/2 connection may make the proxy hold."""

    # Advertised to clients as SETTINGS_MAX_CONCURRENT_STREAMS; enforced before it is acked.
    max_concurrent_streams: int = 100
    # SETTINGS_MAX_HEADER_LIST_SIZE, and the HPACK decoder's limit, on both sides.
    max_header_list_size: int = 64 * 1024
    # The per-stream receive window the proxy advertises on both sides. The proxy
    # acknowledges data only once it has forwarded it, so this is also the most it
    # buffers per stream and direction.
    initial_stream_window: int = 65_535
    # The connection-level receive window toward clients: the most one client connection
    # can make the proxy hold, over all its streams.
    initial_connection_window: int = 1024 * 1024
    # Streams per upstream connection (fewer if the upstream says so); more connections
    # are opened beyond it. The upstream connection window is this many stream windows,
    # so streams of clients that read slowly (each holding up to a stream window) can
    # never exhaust the window the shared connection's other streams need.
    max_streams_per_upstream: int = 100
    # Requests waiting for an upstream connection to one target (while it connects).
    max_pending_per_target: int = 1024
    # How long an upstream connection may take to send its SETTINGS after connecting.
    upstream_settings_timeout: float = 5.0

    @property
    def upstream_connection_window(self) -> int:
        window = self.initial_stream_window * self.max_streams_per_upstream
        return min(max(window, self.initial_connection_window), 2**31 - 1)


DEFAULT_LIMITS = Http2Limits()


def http2_limits(config: ProxyConfig) -> Http2Limits:
    limits = getattr(config, "http2", None)
    return limits if isinstance(limits, Http2Limits) else DEFAULT_LIMITS
