"""HTTP/1 header handling (pure): hop-by-hop stripping and request-head serialization."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gossamer.proxy.http1.headers import (
    HOP_BY_HOP,
    connection_tokens,
    forwardable,
    header_value,
    request_head,
)


def names(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    return [name.lower() for name, _ in headers]


def test_headers_without_hop_by_hop_are_returned_uncopied() -> None:
    headers = [(b"Host", b"a"), (b"Accept", b"*/*"), (b"X-Trace", b"1")]
    assert forwardable(headers) is headers


def test_every_hop_by_hop_header_is_dropped() -> None:
    end_to_end = [(b"Host", b"a"), (b"Content-Length", b"3"), (b"X-Keep", b"yes")]
    hop = [(name.title(), b"v") for name in sorted(HOP_BY_HOP)]
    out = forwardable(end_to_end + hop)
    assert out == end_to_end


def test_case_insensitive_names() -> None:
    out = forwardable([(b"CONNECTION", b"close"), (b"kEeP-aLiVe", b"timeout=5"), (b"Host", b"a")])
    assert out == [(b"Host", b"a")]


def test_headers_named_in_connection_are_dropped() -> None:
    headers = [
        (b"Host", b"a"),
        (b"Connection", b"X-Secret, x-other"),
        (b"Connection", b"  X-Third  ,,"),
        (b"X-Secret", b"1"),
        (b"X-Other", b"2"),
        (b"x-third", b"3"),
        (b"X-Kept", b"4"),
    ]
    assert forwardable(headers) == [(b"Host", b"a"), (b"X-Kept", b"4")]


def test_connection_tokens_lower_cased_across_headers() -> None:
    headers = [(b"Connection", b"Keep-Alive, X-A"), (b"connection", b"x-b"), (b"X-A", b"")]
    assert connection_tokens(headers) == frozenset({b"keep-alive", b"x-a", b"x-b"})
    assert connection_tokens([(b"Host", b"a")]) == frozenset()


def test_keep_upgrade_keeps_upgrade_and_rewrites_connection() -> None:
    headers = [
        (b"Host", b"a"),
        (b"Connection", b"Upgrade, HTTP2-Settings"),
        (b"Upgrade", b"websocket"),
        (b"HTTP2-Settings", b"AAA"),
        (b"TE", b"trailers"),
    ]
    out = forwardable(headers, keep_upgrade=True)
    assert out == [(b"Host", b"a"), (b"Upgrade", b"websocket"), (b"Connection", b"upgrade")]
    # Without keep_upgrade, Upgrade is just another hop-by-hop header.
    assert forwardable(headers) == [(b"Host", b"a")]


def test_request_head_serialization() -> None:
    head = request_head(
        b"POST",
        b"/p?q=1",
        [(b"Host", b"a.example"), (b"Content-Length", b"2")],
        [(b"Transfer-Encoding", b"chunked")],
    )
    assert head == (
        b"POST /p?q=1 HTTP/1.1\r\n"
        b"Host: a.example\r\n"
        b"Content-Length: 2\r\n"
        b"Transfer-Encoding: chunked\r\n"
        b"\r\n"
    )


def test_request_head_keeps_http10() -> None:
    head = request_head(b"GET", b"/", [], version=b"1.0")
    assert head == b"GET / HTTP/1.0\r\n\r\n"


def test_header_value_first_match() -> None:
    headers = [(b"X-A", b"1"), (b"x-a", b"2")]
    assert header_value(headers, b"x-a") == b"1"
    assert header_value(headers, b"x-b") is None


_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).map(str.encode)
_name = st.one_of(_token, st.sampled_from(sorted(HOP_BY_HOP)))
_headers = st.lists(
    st.tuples(
        st.one_of(_name, _name.map(bytes.upper)),
        st.binary(max_size=10).filter(lambda v: b"\r" not in v and b"\n" not in v),
    ),
    max_size=12,
)


@given(_headers)
def test_forwardable_never_leaks_hop_by_hop(headers: list[tuple[bytes, bytes]]) -> None:
    out = forwardable(headers)
    named = connection_tokens(headers)
    for name, _ in out:
        assert name.lower() not in HOP_BY_HOP
        assert name.lower() not in named
    # What is kept keeps its order and values.
    kept = [h for h in headers if h[0].lower() not in HOP_BY_HOP and h[0].lower() not in named]
    assert out == kept
