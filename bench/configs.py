"""Configuration files for the origin servers, HAProxy and nginx, rendered from testbed data.

Like for like with Gossamer's single-process proxy: one HAProxy thread (`nbthread 1`), one
nginx worker with no master process, access logs off, keep-alive and connection reuse to
the upstream on. HAProxy always keeps its counters (its "metrics"); Gossamer keeps its
Prometheus metrics on as well.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench.testbed import H2, ORIGIN_BODY, ORIGIN_H1_PORT, ORIGIN_H2_PORT, Endpoint, ProxySpec

Resolve = Callable[[Endpoint], str]

# Both HAProxy and nginx must stay under the machine's hard limit on open files (20000 here).
MAX_CONNECTIONS = 4096
# Idle upstream connections nginx keeps per worker: above the most requests in flight at once
# (HTTP/2: 16 connections x 10 streams). With fewer, every request past the pool opens and
# closes a connection, TIME_WAIT piles up and nginx stalls for hundreds of milliseconds.
UPSTREAM_KEEPALIVE = 1024


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
    keepalive_requests 100000000;
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


def nginx_proxy(spec: ProxySpec, state_dir: Path, resolve: Resolve) -> str:
    """nginx as a reverse proxy: one server block per route, keep-alive upstreams."""
    blocks = []
    for i, route in enumerate(spec.routes):
        http2 = " http2" if route.protocol == H2 else ""
        blocks.append(
            f"""    upstream up{i} {{
        server {resolve(route.upstream)};
        keepalive {UPSTREAM_KEEPALIVE};
    }}
    server {{
        listen {route.bind}:{route.port}{http2};
        location / {{
            proxy_pass http://up{i};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering on;
        }}
    }}
"""
        )
    return _nginx_head(state_dir) + "".join(blocks) + "}\n"


def haproxy(spec: ProxySpec, resolve: Resolve) -> str:
    """HAProxy in HTTP mode, one thread, no logging, `http-reuse always` to the upstream."""
    parts = [
        f"""global
    nbthread 1
    maxconn {MAX_CONNECTIONS}
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
        parts.append(
            f"""frontend f{i}
    bind {route.bind}:{route.port}{front}
    default_backend b{i}
backend b{i}
    server s{i} {resolve(route.upstream)}{back}
"""
        )
    return "".join(parts)
