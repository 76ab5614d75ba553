"""HTTP/2 (h2c prior knowledge) and gRPC proxying.

`Http2ServerProtocol(runtime, ctx)` takes over an accepted connection once detection has
seen the HTTP/2 preface, and proxies its streams onto shared upstream connections to
`ctx.target`. Modules, from the edge inward:

- `server`: the client-facing protocol (server side), limits, drain.
- `stream`: one client stream joined to one upstream stream; resets, retries, errors.
- `flow`: one direction of a stream; end-to-end flow control with bounded buffering.
- `pool`, `upstream`: upstream connections shared per target (client side).
- `headers`: pure header validation, hop-by-hop removal, synthesized error responses.
- `endpoint`: what both sides share (the connection core on a transport, batched flush).

Beneath them, the protocol itself, pure and without I/O (the proxy does not use the `h2`
library: a proxy needs a small part of it, and its per-frame objects and closed-stream
history cost most of the CPU and memory):

- `connection`: frames in, hook calls out, frames queued; stream states, flow control.
- `frames`: wire constants and frame serialization.
- `hpack`, `huffman`: header compression (RFC 7541).

This package uses the proxy's runtime, metrics and errors; nothing outside it imports its
internals.
"""

from gossamer.proxy.http2.limits import Http2Limits
from gossamer.proxy.http2.pool import upstream_pool
from gossamer.proxy.http2.server import Http2ServerProtocol

__all__ = ["Http2Limits", "Http2ServerProtocol", "upstream_pool"]
