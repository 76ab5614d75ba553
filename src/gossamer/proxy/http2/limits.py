"""Bounds and windows for proxied HTTP/2 connections.

The values live in `ProxyConfig.http2` (parsed from `GOSSAMER_PROXY_HTTP2_*` in config.py);
they follow linkerd2-proxy (64 KiB stream windows, 1 MiB client connection windows, 100
concurrent streams per client connection). Upstream connections get one stream window per
stream slot instead, because they are shared.
"""

from __future__ import annotations

from gossamer.proxy.config import Http2Limits, ProxyConfig

DEFAULT_LIMITS = Http2Limits()


def http2_limits(config: ProxyConfig) -> Http2Limits:
    return config.http2


__all__ = ["DEFAULT_LIMITS", "Http2Limits", "http2_limits"]
