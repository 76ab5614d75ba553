"""The HTTP/2 proxy's header handling, without sockets: validation, hop-by-hop removal,
synthesized error responses and reset-code mapping."""

from __future__ import annotations

import contextlib

import pytest
from h2.errors import ErrorCodes
from hypothesis import given
from hypothesis import strategies as st

from gossamer.proxy.errors import ERROR_HEADER, ConnectRefused, ConnectTimeout, Overloaded
from gossamer.proxy.http2.headers import (
    HOP_BY_HOP,
    MalformedHeaders,
    error_response,
    grpc_message,
    reset_toward_client,
    reset_toward_upstream,
    sanitize_request,
    sanitize_response,
    sanitize_trailers,
)
from gossamer.proxy.http2.hpack import NeverIndexed

BASE = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"a.b:80"), (b":path", b"/")]


def test_valid_request_passes_with_its_facts() -> None:
    head = sanitize_request([*BASE, (b"content-type", b"application/grpc+proto"), (b"x", b"1")])
    assert head.headers == [*BASE, (b"content-type", b"application/grpc+proto"), (b"x", b"1")]
    assert head.authority == b"a.b:80"
    assert head.grpc


def test_authority_falls_back_to_host() -> None:
    head = sanitize_request(
        [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b"host", b"h:1")]
    )
    assert head.authority == b"h:1"
    assert not head.grpc


def test_hop_by_hop_fields_and_the_ones_connection_names_are_dropped() -> None:
    head = sanitize_request(
        [
            *BASE,
            (b"connection", b"close, X-Secret"),
            (b"keep-alive", b"1"),
            (b"proxy-connection", b"1"),
            (b"transfer-encoding", b"chunked"),
            (b"upgrade", b"h2c"),
            (b"x-secret", b"s"),
            (b"x-kept", b"k"),
        ]
    )
    assert head.headers == [*BASE, (b"x-kept", b"k")]


@pytest.mark.parametrize(
    ("value", "kept"),
    [(b"trailers", True), (b"Trailers", True), (b"trailers, deflate", True), (b"gzip", False)],
)
def test_te_crosses_only_as_trailers(value: bytes, kept: bool) -> None:
    head = sanitize_request([*BASE, (b"te", value)])
    assert ((b"te", b"trailers") in head.headers) is kept
    assert all(v == b"trailers" for n, v in head.headers if n == b"te")


@pytest.mark.parametrize(
    "headers",
    [
        [*BASE, (b"X-Upper", b"1")],
        [*BASE, (b"x", b"a\r\nb")],
        [*BASE, (b"x", b" padded")],
        [*BASE, (b"x", b"nul\x00")],
        [*BASE, (b"bad name", b"1")],
        [*BASE, (b"", b"1")],
        [*BASE, (b":status", b"200")],
        [*BASE, (b":protocol", b"websocket")],
        [*BASE[:3], (b"x", b"1"), BASE[3]],  # pseudo-header after a regular one
        [*BASE, (b":path", b"/again")],
        BASE[1:],  # no :method
        [BASE[0], BASE[2], BASE[3]],  # no :scheme
        [*BASE[:3], (b":path", b"")],
        [(b":method", b"CONNECT"), (b":authority", b"a:1"), (b":path", b"/")],
        [(b":method", b"CONNECT")],
        [*BASE, (b"host", b"other:80")],
    ],
)
def test_malformed_requests_are_refused(headers: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(MalformedHeaders):
        sanitize_request(headers)


def test_connect_without_path_is_fine() -> None:
    head = sanitize_request([(b":method", b"CONNECT"), (b":authority", b"db:5432")])
    assert head.authority == b"db:5432"


def test_secrets_are_never_indexed() -> None:
    head = sanitize_request(
        [*BASE, (b"authorization", b"Bearer x"), (b"cookie", b"a=1"), (b"cookie", b"b" * 40)]
    )
    kinds = {(n, type(h)) for h in head.headers for n in [h[0]]}
    assert (b"authorization", NeverIndexed) in kinds
    assert isinstance(head.headers[5], NeverIndexed)  # the short cookie
    assert not isinstance(head.headers[6], NeverIndexed)


def test_response_status_and_grpc_status() -> None:
    head = sanitize_response(
        [(b":status", b"200"), (b"grpc-status", b"5"), (b"connection", b"close"), (b"x", b"y")]
    )
    assert head.status == 200
    assert head.grpc_status == 5
    assert head.headers == [(b":status", b"200"), (b"grpc-status", b"5"), (b"x", b"y")]


@pytest.mark.parametrize(
    "headers",
    [
        [(b"x", b"1")],
        [(b":status", b"20")],
        [(b":status", b"abc")],
        [(b":status", b"200"), (b":status", b"200")],
        [(b":status", b"200"), (b":path", b"/")],
        [(b"x", b"1"), (b":status", b"200")],
    ],
)
def test_malformed_responses_are_refused(headers: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(MalformedHeaders):
        sanitize_response(headers)


def test_trailers() -> None:
    trailers, grpc = sanitize_trailers([(b"grpc-status", b"0"), (b"grpc-message", b"ok")])
    assert grpc == 0
    assert trailers == [(b"grpc-status", b"0"), (b"grpc-message", b"ok")]
    assert sanitize_trailers([(b"grpc-status", b"nope")])[1] is None
    with pytest.raises(MalformedHeaders):
        sanitize_trailers([(b":status", b"200")])


def test_plain_error_response() -> None:
    answer = error_response(ConnectRefused("connection to 10.0.0.1:80 refused"), grpc=False)
    assert answer.status == 502 and answer.grpc_status is None
    headers = dict(answer.headers)
    assert headers[b":status"] == b"502"
    assert headers[ERROR_HEADER.encode()] == b"connection to 10.0.0.1:80 refused"
    assert headers[b"content-length"] == str(len(answer.body)).encode()
    assert answer.body == b"502 connection to 10.0.0.1:80 refused\n"
    assert error_response(Overloaded(), grpc=False).status == 503


@pytest.mark.parametrize(
    ("error", "code"), [(ConnectRefused(), 14), (Overloaded(), 14), (ConnectTimeout(), 4)]
)
def test_grpc_error_response_is_trailers_only(error: Exception, code: int) -> None:
    answer = error_response(error, grpc=True)  # type: ignore[arg-type]
    headers = dict(answer.headers)
    assert answer.body == b""
    assert headers[b":status"] == b"200"
    assert headers[b"content-type"] == b"application/grpc"
    assert headers[b"grpc-status"] == str(code).encode()
    assert headers[b"grpc-message"]
    assert ERROR_HEADER.encode() in headers
    assert answer.grpc_status == code and answer.status == 200


def test_grpc_message_is_percent_encoded() -> None:
    assert grpc_message("plain text") == b"plain text"
    assert grpc_message("100%") == b"100%25"
    assert grpc_message("ünï\n") == b"%C3%BCn%C3%AF%0A"


def test_reset_codes_across_the_proxy() -> None:
    assert reset_toward_client(ErrorCodes.CANCEL) == ErrorCodes.CANCEL
    assert reset_toward_client(ErrorCodes.REFUSED_STREAM) == ErrorCodes.REFUSED_STREAM
    assert reset_toward_client(ErrorCodes.FLOW_CONTROL_ERROR) == ErrorCodes.INTERNAL_ERROR
    assert reset_toward_client(0xDEAD) == ErrorCodes.INTERNAL_ERROR
    assert reset_toward_upstream(ErrorCodes.PROTOCOL_ERROR) == ErrorCodes.CANCEL
    assert reset_toward_upstream(ErrorCodes.NO_ERROR) == ErrorCodes.NO_ERROR


# -- properties -------------------------------------------------------------------------------

names = st.one_of(
    st.sampled_from(
        [b"x-a", b"content-type", b"te", b"host", b"cookie", b"authorization", *HOP_BY_HOP]
    ),
    st.binary(max_size=8),
)
values = st.one_of(st.sampled_from([b"trailers", b"a, x-a", b"v"]), st.binary(max_size=8))
extra = st.lists(st.tuples(names, values), max_size=8)


@given(extra)
def test_sanitized_requests_are_clean_and_stable(fields: list[tuple[bytes, bytes]]) -> None:
    try:
        head = sanitize_request([*BASE, *fields])
    except MalformedHeaders:
        return
    names_out = [h[0] for h in head.headers]
    assert not HOP_BY_HOP & set(names_out)
    assert all(v == b"trailers" for n, v in head.headers if n == b"te")
    pseudo = [n.startswith(b":") for n in names_out]
    assert pseudo == sorted(pseudo, reverse=True)  # pseudo-headers first
    again = sanitize_request(head.headers)
    assert [tuple(h) for h in again.headers] == [tuple(h) for h in head.headers]


@given(st.lists(st.tuples(st.binary(max_size=12), st.binary(max_size=12)), max_size=10))
def test_any_header_block_is_either_accepted_or_malformed(
    fields: list[tuple[bytes, bytes]],
) -> None:
    for sanitize in (sanitize_request, sanitize_response, sanitize_trailers):
        with contextlib.suppress(MalformedHeaders):
            sanitize(fields)
