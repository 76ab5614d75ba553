"""Protocol detection from a connection's first bytes (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossamer.proxy.detect import H2_PREFACE, Protocol, detect

# The start of a TLS 1.2/1.3 ClientHello: handshake record, version 3.1, then a length.
CLIENT_HELLO = bytes.fromhex("160301020001000200fc0303") + bytes(range(32))


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST /submit?x=1 HTTP/1.0\r\n",
        b"OPTIONS * HTTP/1.1\r\n",
        b"CONNECT example.com:443 HTTP/1.1\r\n",
        b"PATCH /a HTTP/1.1\n",  # a bare LF ends the line too
        b"M-SEARCH * HTTP/1.1\r\n",
        b"PRI * HTTP/1.1\r\n",  # starts like the h2 preface, but is a request line
    ],
)
def test_request_lines_are_http1(data: bytes) -> None:
    assert detect(data) is Protocol.HTTP1


@pytest.mark.parametrize(
    "data",
    [b"G", b"GET", b"GET ", b"GET /", b"GET / HTTP/1.", b"GET / HTTP/1.1", b"GET / HTTP/1.1\r"],
)
def test_partial_request_lines_need_more(data: bytes) -> None:
    assert detect(data) is Protocol.NEED_MORE


def test_h2_preface() -> None:
    assert detect(H2_PREFACE) is Protocol.HTTP2
    assert detect(H2_PREFACE + b"\x00\x00\x12\x04\x00") is Protocol.HTTP2


@pytest.mark.parametrize("cut", [1, 3, 10, 16, 18, 23])
def test_partial_h2_preface_needs_more(cut: int) -> None:
    assert detect(H2_PREFACE[:cut]) is Protocol.NEED_MORE


def test_broken_h2_preface_is_opaque() -> None:
    assert detect(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n") is Protocol.OPAQUE


@pytest.mark.parametrize(
    "data",
    [
        CLIENT_HELLO,
        CLIENT_HELLO[:1],
        b"\x00\x01\x02\x03",
        b"SSH-2.0-OpenSSH_9.2\r\n",
        b"220 smtp.example ESMTP\r\n",  # server-speaks-first banner shape
        b"GET / HTTP/2.0\r\n",  # not HTTP/1
        b"GET /\r\n",  # HTTP/0.9 is not spoken
        b"GET\t/ HTTP/1.1\r\n",
        b"GE(T / HTTP/1.1\r\n",
        b"*3\r\n$3\r\nSET\r\n",  # Redis
        b"\r\n",
    ],
)
def test_other_bytes_are_opaque(data: bytes) -> None:
    assert detect(data) is Protocol.OPAQUE


def test_empty_needs_more() -> None:
    assert detect(b"") is Protocol.NEED_MORE


def test_long_url_over_the_window_is_http1() -> None:
    line = b"GET /" + b"a" * 2048
    # Seen in pieces: undecided below the window, HTTP/1 once the window is full.
    assert detect(line[:1000], max_bytes=1024) is Protocol.NEED_MORE
    assert detect(line[:1024], max_bytes=1024) is Protocol.HTTP1
    assert detect(line, max_bytes=1024) is Protocol.HTTP1
    # Seen whole: still HTTP/1, with the version far beyond the window.
    assert detect(line + b" HTTP/1.1\r\n", max_bytes=1024) is Protocol.HTTP1


def test_max_bytes_bounds_the_window() -> None:
    assert detect(b"GET /abc", max_bytes=8) is Protocol.HTTP1
    assert detect(b"GET /ab", max_bytes=8) is Protocol.NEED_MORE
    assert detect(b"\xff" * 5000, max_bytes=8) is Protocol.OPAQUE


def test_verdict_does_not_depend_on_bytes_beyond_the_window() -> None:
    # Whether the line arrives in one read or in many, the window decides alone: a
    # request-shaped window is HTTP/1 even if the line turns out to lack a version later.
    window = b"GET /" + b"a" * 27
    for tail in (b"\r\n", b" HTTP/1.1\r\n", b" HTTP/2.0\r\n", b"\x00\n"):
        assert detect(window + tail, max_bytes=32) is detect(window, max_bytes=32)


# -- properties ---------------------------------------------------------------------------

_methods = st.sampled_from([b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"X-Y"])
# Random bytes, then padding: long targets are the ones that cross the detection window.
_targets = st.builds(
    lambda raw, pad: b"/" + raw.replace(b"\r", b"").replace(b"\n", b"") + b"x" * pad,
    st.binary(max_size=20),
    st.integers(min_value=0, max_value=120),
)
_line_ends = st.one_of(
    st.sampled_from([b"", b"\n", b"\r\n", b" HTTP/1.1\r\n", b" HTTP/2.0\r\n", b"\x00\n"]),
    st.binary(max_size=20),
)
_request_lines = st.builds(
    lambda m, t, v, eol: m + b" " + t + b" HTTP/1." + v + eol,
    _methods,
    _targets,
    st.sampled_from([b"0", b"1"]),
    st.sampled_from([b"\r\n", b"\n"]),
)
_inputs = st.one_of(
    st.binary(max_size=200),
    _request_lines.map(lambda line: line + b"Host: x\r\n\r\n"),
    st.builds(lambda a, b: a + b, _request_lines, st.binary(max_size=40)),
    # Request-shaped starts with arbitrary endings (lines without a version, stray bytes).
    st.builds(lambda m, t, b: m + b" " + t + b, _methods, _targets, _line_ends),
    st.builds(lambda n, b: H2_PREFACE[:n] + b, st.integers(0, 24), st.binary(max_size=10)),
    st.just(CLIENT_HELLO),
)


@settings(max_examples=400, deadline=None)
@given(_inputs, st.data())
def test_detect_never_raises_and_is_prefix_monotone(data: bytes, draw: st.DataObject) -> None:
    """Once a prefix has a verdict, every longer input has the same one."""
    # Windows around the input's length are where a verdict could flip.
    max_bytes = draw.draw(st.integers(min_value=24, max_value=max(24, len(data) + 2)))
    final = detect(data, max_bytes)
    assert isinstance(final, Protocol)
    for cut in range(len(data) + 1):
        verdict = detect(data[:cut], max_bytes)
        if verdict is not Protocol.NEED_MORE:
            assert final is verdict, (data[:cut], data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=24, max_value=300))
def test_a_full_window_always_has_a_verdict(data: bytes, max_bytes: int) -> None:
    """The caller stops reading at max_bytes, so a full window must decide."""
    if len(data) >= max_bytes:
        assert detect(data, max_bytes) is not Protocol.NEED_MORE


@settings(max_examples=200, deadline=None)
@given(_request_lines)
def test_every_request_line_is_http1(line: bytes) -> None:
    assert detect(line) is Protocol.HTTP1
