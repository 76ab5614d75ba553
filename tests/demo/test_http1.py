"""HTTP/1.1 head parsing and rendering, without sockets."""

from __future__ import annotations

import pytest

from gossamer.demo.http1 import (
    MAX_HEAD_BYTES,
    HttpProtocolError,
    parse_chunk_size,
    parse_request_head,
    parse_response_head,
    render_request_head,
    render_response_head,
)


def test_request_head_fields() -> None:
    head = parse_request_head(
        b"GET /api/vote?choice=%3Ajoy%3A&x= HTTP/1.1\r\nHost: web\r\nX-A: 1\r\nx-a: 2\r\n\r\n"
    )
    assert (head.method, head.path, head.version) == ("GET", "/api/vote", "HTTP/1.1")
    assert head.query == {"choice": ":joy:", "x": ""}
    assert head.header("host") == "web"
    assert head.header("x-a") == "1, 2"
    assert head.keep_alive
    assert head.content_length == 0


def test_absolute_form_target_has_a_path() -> None:
    assert parse_request_head(b"GET http://web:8080/healthz HTTP/1.1\r\n\r\n").path == "/healthz"


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive"),
    [
        ("HTTP/1.1", None, True),
        ("HTTP/1.1", "close", False),
        ("HTTP/1.1", "Upgrade, Close", False),
        ("HTTP/1.0", None, False),
        ("HTTP/1.0", "keep-alive", True),
    ],
)
def test_keep_alive_rules(version: str, connection: str | None, keep_alive: bool) -> None:
    extra = f"Connection: {connection}\r\n" if connection else ""
    head = parse_request_head(f"GET / {version}\r\n{extra}\r\n".encode())
    assert head.keep_alive is keep_alive


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /\r\n\r\n", 400),
        (b"GET  / HTTP/1.1\r\n\r\n", 400),
        (b"G(T / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"GET nope HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nA: b\nC: d\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n", 431),
    ],
)
def test_malformed_requests_carry_a_status(raw: bytes, status: int) -> None:
    with pytest.raises(HttpProtocolError) as caught:
        parse_request_head(raw).content_length  # noqa: B018 - property validates
    assert caught.value.status == status


def test_response_round_trip() -> None:
    raw = render_response_head(404, [("Content-Type", "text/plain")], 5, keep_alive=False)
    head = parse_response_head(raw)
    assert (head.status, head.reason, head.content_length) == (404, "Not Found", 5)
    assert head.header("content-type") == "text/plain"
    assert not head.keep_alive
    assert parse_response_head(render_response_head(200, [], 0, keep_alive=True)).keep_alive


def test_chunked_response_and_sizes() -> None:
    head = parse_response_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
    assert head.chunked and head.content_length is None
    assert parse_chunk_size(b"1a;ext=1\r\n") == 26
    with pytest.raises(HttpProtocolError):
        parse_chunk_size(b"zz\r\n")


def test_malformed_status_line() -> None:
    with pytest.raises(HttpProtocolError):
        parse_response_head(b"HTTP/1.1 2000 OK\r\n\r\n")


def test_request_rendering() -> None:
    raw = render_request_head("GET", "/x", "web:8080", [("User-Agent", "t")])
    assert raw == b"GET /x HTTP/1.1\r\nHost: web:8080\r\nUser-Agent: t\r\n\r\n"
    assert parse_request_head(raw).header("user-agent") == "t"
