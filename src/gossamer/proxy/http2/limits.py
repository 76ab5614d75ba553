"""Bounds and windows for proxied HTTP/2 connections.

`ProxyConfig` does not carry these yet; `http2_limits()` reads `config.http2` when it exists
and falls back to the defaults below, which follow linkerd2-proxy (64 KiB stream windows,
1 MiB connection windows, 100 concurrent streams per client connection).
"""

from __future__ import annotations

from dataclasses import dataclass

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
    # The connection-level receive window: the most buffered across one connection.
    initial_connection_window: int = 1024 * 1024
    # Requests waiting for an upstream connection to one target (while it connects).
    max_pending_per_target: int = 1024
    # How long an upstream connection may take to send its SETTINGS after connecting.
    upstream_settings_timeout: float = 5.0


DEFAULT_LIMITS = Http2Limits()


def http2_limits(config: ProxyConfig) -> Http2Limits:
    limits = getattr(config, "http2", None)
    return limits if isinstance(limits, Http2Limits) else DEFAULT_LIMITS
