"""Configuration files for the origin servers, HAProxy and nginx, rendered from testbed data.

Like for like with Gossamer's single-process proxy: one HAProxy thread (`nbthread 1`), one
nginx worker with no master process, access logs off, keep-alive and connection reuse to
the upstream on. HAProxy always keeps its counters (its "metrics"); Gossamer keeps its
Prometheus metrics on as well.

Mutual TLS as the mesh does it: TLS 1.3 only, the listener requires a client certificate
that chains to the trust anchors, the dialling side presents its own and checks that the
server proves exactly the expected name (sent as SNI). Upstream TLS connections are kept
alive and reused like plaintext ones, so a run measures steady-state TLS, not handshakes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.testbed import (
    H2,
    ORIGIN_BODY,
    ORIGIN_H1_PORT,
    ORIGIN_H2_PORT,
    Endpoint,
    ProxySpec,
    Route,
)

Resolve = Callable[[Endpoint], str]

# Both HAProxy and nginx must stay under the machine's hard limit on open files (20000 here).
MAX_CONNECTIONS = 4096
# Idle upstream connections nginx keeps per worker: above the most requests in flight at once
# (HTTP/2: 16 connections x 10 streams). With fewer, every request past the pool opens and
# closes a connection, TIME_WAIT piles up and nginx stalls for hundreds of milliseconds.
UPSTREAM_KEEPALIVE = 1024
# Requests per keep-alive connection, both ways. nginx's default for upstream connections is
# 1000: a TLS hop would then hand-shake again every 1000 requests on each connection.
KEEPALIVE_REQUESTS = 100_000_000


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """A proxy's TLS material: ECDSA P-256 leaf (+ issuer) from the mesh's kind of CA."""

    ca: Path  # the trust anchors
    chain: Path  # the leaf, then the issuer
    key: Path
    bundle: Path  # chain and key in one file (HAProxy's `crt`)


def _need(tls: TlsFiles | None, spec: ProxySpec) -> TlsFiles:
    if tls is None:
        raise ValueError(f"{spec.name}: TLS routes need TLS files")
    return tls


def _nginx_head(state_dir: Path) -> str:
    temp = "\n".join(
        f"    {kind}_temp_path {state_dir / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""worker_processes 1;
master_process off;
daemon off;
pid {state_dir / "nginx.pid"};
error_log stderr warn;
events {{ worker_connections {MAX_CONNECTIONS}; }}
http {{
    access_log off;
{temp}
    default_type text/plain;
    keepalive_timeout 75s;
    keepalive_requests {KEEPALIVE_REQUESTS};
"""


def origin_nginx(state_dir: Path) -> str:
    """The origin: a fixed tiny response on HTTP/1.1 and on h2c (prior knowledge)."""
    body = ORIGIN_BODY.replace("\n", "\\n")
    return (
        _nginx_head(state_dir)
        + f"""    server {{ listen {ORIGIN_H1_PORT}; location / {{ return 200 "{body}"; }} }}
    server {{ listen {ORIGIN_H2_PORT} http2; location / {{ return 200 "{body}"; }} }}
}}
"""
    )


def _nginx_listen_tls(route: Route, tls: TlsFiles) -> str:
    if not route.tls_listen:
        return ""
    return f"""        ssl_protocols TLSv1.3;
        ssl_certificate {tls.chain};
        ssl_certificate_key {tls.key};
        ssl_client_certificate {tls.ca};
        ssl_verify_client on;
        ssl_verify_depth 2;
"""


def _nginx_upstream_tls(route: Route, tls: TlsFiles) -> str:
    if route.upstream_identity is None:
        return ""
    return f"""            proxy_ssl_protocols TLSv1.3;
            proxy_ssl_certificate {tls.chain};
            proxy_ssl_certificate_key {tls.key};
            proxy_ssl_trusted_certificate {tls.ca};
            proxy_ssl_verify on;
            proxy_ssl_verify_depth 2;
            proxy_ssl_server_name on;
            proxy_ssl_name {route.upstream_identity};
            proxy_ssl_session_reuse on;
"""


def nginx_proxy(
    spec: ProxySpec, state_dir: Path, resolve: Resolve, tls: TlsFiles | None = None
) -> str:
    """nginx as a reverse proxy: one server block per route, keep-alive upstreams."""
    blocks = []
    for i, route in enumerate(spec.routes):
        http2 = " http2" if route.protocol == H2 else ""
        ssl = " ssl" if route.tls_listen else ""
        scheme = "https" if route.upstream_identity else "http"
        files = _need(tls, spec) if route.tls else None
        blocks.append(
            f"""    upstream up{i} {{
        server {resolve(route.upstream)};
        keepalive {UPSTREAM_KEEPALIVE};
        keepalive_requests {KEEPALIVE_REQUESTS};
        keepalive_timeout 75s;
    }}
    server {{
        listen {route.bind}:{route.port}{ssl}{http2};
{_nginx_listen_tls(route, files) if files else ""}        location / {{
            proxy_pass {scheme}://up{i};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering on;
            # A load generator stops with requests in flight; finishing them keeps their
            # upstream connections for the next run instead of closing them.
            proxy_ignore_client_abort on;
{_nginx_upstream_tls(route, files) if files else ""}        }}
    }}
"""
        )
    return _nginx_head(state_dir) + "".join(blocks) + "}\n"


def _alpn(protocol: str) -> str:
    return " alpn h2" if protocol == H2 else " alpn http/1.1"


def haproxy(spec: ProxySpec, resolve: Resolve, tls: TlsFiles | None = None) -> str:
    """HAProxy in HTTP mode, one thread, no logging, `http-reuse always` to the upstream."""
    parts = [
        f"""global
    nbthread 1
    maxconn {MAX_CONNECTIONS}
    ssl-default-bind-options ssl-min-ver TLSv1.3
    ssl-default-server-options ssl-min-ver TLSv1.3
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    http-reuse always
"""
    ]
    for i, route in enumerate(spec.routes):
        # h2c with prior knowledge is detected on any HTTP frontend; `proto h2` forces it.
        front = " proto h2" if route.protocol == H2 else ""
        back = " proto h2" if route.upstream_protocol == H2 else ""
        if route.tls_listen:
            files = _need(tls, spec)
            front += f" ssl crt {files.bundle} verify required ca-file {files.ca}" + _alpn(
                route.protocol
            )
        if route.upstream_identity is not None:
            files, name = _need(tls, spec), route.upstream_identity
            # The server must prove `name`; the connection is reusable (same SNI each time).
            back += (
                f" ssl verify required ca-file {files.ca} crt {files.bundle}"
                f" sni str({name}) verifyhost {name}" + _alpn(route.upstream_protocol)
            )
        parts.append(
            f"""frontend f{i}
    bind {route.bind}:{route.port}{front}
    default_backend b{i}
backend b{i}
    server s{i} {resolve(route.upstream)}{back}
"""
        )
    return "".join(parts)
