"""HTTP/1.1 proxying: httptools parsing on both sides, pooled upstream connections."""

from gossamer.proxy.http1.server import Http1ServerProtocol

__all__ = ["Http1ServerProtocol"]
