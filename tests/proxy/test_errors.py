"""Proxy errors become well-formed HTTP/1 responses (pure)."""

from __future__ import annotations

import httptools
import pytest

from gossamer.proxy.errors import (
    ERROR_HEADER,
    ConnectRefused,
    ConnectTimeout,
    ConnectUnreachable,
    Overloaded,
    ProxyError,
    ResponseTimeout,
    UpstreamClosed,
    UpstreamProtocolError,
    error_response_h1,
    simple_response_h1,
)


class Parsed:
    def __init__(self, data: bytes) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.body = b""
        self.complete = False
        self.parser = httptools.HttpResponseParser(self)
        self.parser.feed_data(data)
        self.status = self.parser.get_status_code()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete = True


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ConnectRefused(), 502),
        (ConnectUnreachable(), 502),
        (ConnectTimeout(), 504),
        (UpstreamClosed(), 502),
        (UpstreamProtocolError(), 502),
        (ResponseTimeout(), 504),
        (Overloaded(), 503),
        (ProxyError(), 502),
    ],
)
def test_error_responses_are_complete_messages(error: ProxyError, status: int) -> None:
    for close in (False, True):
        parsed = Parsed(error_response_h1(error, close=close))
        assert parsed.complete
        assert parsed.status == status
        assert parsed.headers[ERROR_HEADER.encode()] == error.reason.encode()
        assert int(parsed.headers[b"content-length"]) == len(parsed.body)
        assert (parsed.headers.get(b"connection") == b"close") is close


def test_detail_replaces_the_reason() -> None:
    error = ConnectRefused("connection to 10.0.0.1:80 refused")
    parsed = Parsed(error_response_h1(error, close=False))
    assert parsed.headers[ERROR_HEADER.encode()] == b"connection to 10.0.0.1:80 refused"
    assert str(error) == "connection to 10.0.0.1:80 refused"


def test_header_value_cannot_be_split_or_smuggled() -> None:
    error = ProxyError("bad\r\nX-Injected: 1\x00\u00e9")
    data = error_response_h1(error, close=True)
    parsed = Parsed(data)
    assert b"x-injected" not in parsed.headers
    value = parsed.headers[ERROR_HEADER.encode()]
    assert all(32 <= byte < 127 for byte in value)
    # The body is not a header, so it keeps the detail as text.
    assert parsed.body.startswith(b"502 bad")


@pytest.mark.parametrize("status", [400, 408, 413, 431])
def test_simple_responses(status: int) -> None:
    parsed = Parsed(simple_response_h1(status, "because"))
    assert parsed.complete
    assert parsed.status == status
    assert parsed.headers[ERROR_HEADER.encode()] == b"because"
    assert parsed.headers[b"connection"] == b"close"
