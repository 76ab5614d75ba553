"""Outbound HTTP and gRPC routing by a service's policy. Pure: no I/O, no asyncio.

A policy (`proto/policy.proto`) is compiled once into `CompiledRoutes`; each request is
described by a `RequestInfo` and `select` names the `SelectedRoute`: which rule matched,
which backend (weighted random, injected `random.Random`), which header modifiers, retry
condition and timeouts apply. `apply_header_modifiers` applies a rule's header filters.
"""

from gossamer.proxy.routing.matches import CompiledMatch, InvalidMatch
from gossamer.proxy.routing.modifiers import HeaderModifiers, apply_header_modifiers
from gossamer.proxy.routing.request import RequestInfo, authority_host, request_info
from gossamer.proxy.routing.routes import CompiledRoutes, SelectedRoute

__all__ = [
    "CompiledMatch",
    "CompiledRoutes",
    "HeaderModifiers",
    "InvalidMatch",
    "RequestInfo",
    "SelectedRoute",
    "apply_header_modifiers",
    "authority_host",
    "request_info",
]
