"""The data plane: the sidecar proxy.

Primitives (detect, metrics, errors, tcp, http1, http2) know nothing of inbound or outbound;
`inbound` and `outbound` assemble them and never import each other. Only `config` reads the
environment.
"""
