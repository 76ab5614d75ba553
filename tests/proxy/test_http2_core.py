"""The HTTP/2 connection core without sockets: driven by h2 (an independent implementation)
on the other side, or by hand-made frames for what h2 would never send."""

from __future__ import annotations

import random
from typing import Any

import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection as PeerConnection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    PingAckReceived,
    RequestReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.settings import SettingCodes
from hypothesis import given, settings
from hypothesis import strategies as st

from gossamer.proxy.http2 import frames
from gossamer.proxy.http2.connection import (
    H2Connection,
    H2ConnectionError,
    StreamClosedError,
    TooManyStreamsError,
)
from gossamer.proxy.http2.frames import ErrorCodes, head

REQUEST = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"a"), (b":path", b"/")]
RESPONSE = [(b":status", b"200"), (b"content-type", b"text/plain")]


class Recorder(H2Connection):
    """The core with every hook call recorded."""

    def __init__(self, client_side: bool, window: int = 65_535, **kwargs: Any) -> None:
        super().__init__(
            client_side=client_side,
            initial_window=window,
            max_header_list_size=kwargs.pop("max_header_list_size", 65_536),
            **kwargs,
        )
        self.calls: list[tuple[Any, ...]] = []

    def on_request(self, sid: int, headers: list[Any], end_stream: bool) -> None:
        self.calls.append(("request", sid, headers, end_stream))

    def on_response(self, sid: int, headers: list[Any], end_stream: bool) -> None:
        self.calls.append(("response", sid, headers, end_stream))

    def on_informational(self, sid: int, headers: list[Any]) -> None:
        self.calls.append(("informational", sid, headers))

    def on_trailers(self, sid: int, headers: list[Any]) -> None:
        self.calls.append(("trailers", sid, headers))

    def on_data(self, sid: int, data: bytes, flow_len: int, end_stream: bool) -> None:
        self.calls.append(("data", sid, data, flow_len, end_stream))

    def on_reset(self, sid: int, code: int) -> None:
        self.calls.append(("reset", sid, code))

    def on_settings(self) -> None:
        self.calls.append(("settings",))

    def on_goaway(self, last_stream_id: int, code: int) -> None:
        self.calls.append(("goaway", last_stream_id, code))

    def take(self) -> list[tuple[Any, ...]]:
        calls, self.calls = self.calls, []
        return calls


def peer(client_side: bool, **settings: int) -> PeerConnection:
    conn = PeerConnection(H2Configuration(client_side=client_side, header_encoding=None))
    conn.initiate_connection()
    if settings:
        conn.update_settings({getattr(SettingCodes, k): v for k, v in settings.items()})
    return conn


def exchange(core: H2Connection, other: PeerConnection) -> list[Any]:
    """Moves bytes both ways until quiet; returns the events the h2 side saw."""
    events: list[Any] = []
    for _ in range(20):
        to_core, to_peer = other.data_to_send(), core.data_to_send()
        if not to_core and not to_peer:
            return events
        if to_core:
            core.receive(to_core)
        if to_peer:
            events += other.receive_data(to_peer)
    raise AssertionError("no quiet")


def server_pair(connection_window: int = 1 << 20) -> tuple[Recorder, PeerConnection]:
    core = Recorder(client_side=False)
    core.initiate(connection_window)
    client = peer(client_side=True)
    exchange(core, client)
    assert core.take() == [("settings",)]
    return core, client


def client_pair(**peer_settings: int) -> tuple[Recorder, PeerConnection]:
    core = Recorder(client_side=True)
    core.initiate(1 << 20)
    server = peer(client_side=False, **peer_settings)
    exchange(core, server)
    assert set(core.take()) == {("settings",)}
    return core, server


def raw_server(*frames_: bytes, connection_window: int = 65_535) -> Recorder:
    """A server core fed a preface, empty SETTINGS and then the given raw frames."""
    core = Recorder(client_side=False)
    core.initiate(connection_window)
    core.receive(frames.PREFACE + frames.settings({}) + b"".join(frames_))
    return core


def headers_frame(sid: int, block: bytes = b"\x83\x86\x84\x41\x01a", flags: int = 0x5) -> bytes:
    return head(len(block), frames.HEADERS, flags, sid) + block


# -- exchanges with h2 ----------------------------------------------------------------------


def test_request_response_and_trailers_both_ways() -> None:
    core, client = server_pair()
    client.send_headers(1, REQUEST)
    client.send_data(1, b"hello")
    client.send_headers(1, [(b"x-req-trailer", b"1")], end_stream=True)
    exchange(core, client)
    calls = core.take()
    assert calls[0][:2] == ("request", 1) and calls[0][2] == REQUEST and calls[0][3] is False
    assert calls[1] == ("data", 1, b"hello", 5, False)
    assert calls[2] == ("trailers", 1, [(b"x-req-trailer", b"1")])

    core.send_headers(1, RESPONSE)
    core.send_data(1, b"world")
    core.send_headers(1, [(b"grpc-status", b"0")], end_stream=True)
    events = exchange(core, client)
    assert isinstance(events[0], ResponseReceived) and events[0].headers == RESPONSE
    assert isinstance(events[1], DataReceived) and events[1].data == b"world"
    assert isinstance(events[2], TrailersReceived)
    assert any(isinstance(e, StreamEnded) for e in events)
    assert core.states == {}  # closed both ways: nothing kept


def test_client_side_informational_response_and_trailers() -> None:
    core, server = client_pair()
    sid = core.start_stream(REQUEST, end_stream=True)
    events = exchange(core, server)
    assert isinstance(events[0], RequestReceived) and events[0].stream_id == sid
    server.send_headers(sid, [(b":status", b"103"), (b"link", b"</a>")])
    server.send_headers(sid, RESPONSE)
    server.send_data(sid, b"body", pad_length=3)
    server.send_headers(sid, [(b"grpc-status", b"0")], end_stream=True)
    exchange(core, server)
    calls = core.take()
    assert calls[0] == ("informational", sid, [(b":status", b"103"), (b"link", b"</a>")])
    assert calls[1] == ("response", sid, RESPONSE, False)
    assert calls[2] == ("data", sid, b"body", 8, False)  # flow control counts the padding
    assert calls[3] == ("trailers", sid, [(b"grpc-status", b"0")])
    assert core.states == {}


def test_large_header_blocks_use_continuation_both_ways() -> None:
    core, client = server_pair()
    big = [*REQUEST, (b"x-big", b"a" * 40_000)]
    client.send_headers(1, big, end_stream=True)
    exchange(core, client)
    assert core.take()[0] == ("request", 1, big, True)
    core.send_headers(1, [*RESPONSE, (b"x-big", b"b" * 40_000)], end_stream=True)
    events = exchange(core, client)
    assert isinstance(events[0], ResponseReceived)
    assert (b"x-big", b"b" * 40_000) in events[0].headers


def test_window_updates_are_batched_and_restore_both_windows() -> None:
    core, client = server_pair(connection_window=1 << 20)
    client.send_headers(1, REQUEST)
    client.send_data(1, b"x" * 16_384)
    client.send_data(1, b"x" * 16_383)
    exchange(core, client)
    core.take()
    core.ack_data(1, 16_384)
    assert core.data_to_send() == b""  # under half a window: no WINDOW_UPDATE yet
    core.ack_data(1, 16_383)
    events = exchange(core, client)
    assert [(e.stream_id, e.delta) for e in events if isinstance(e, WindowUpdated)] == [(1, 32_767)]
    assert client.local_flow_control_window(1) == 65_535


def test_the_send_window_follows_the_peers_settings_and_updates() -> None:
    core, client = server_pair()
    client.send_headers(1, REQUEST, end_stream=True)
    exchange(core, client)
    assert core.window(1) == 65_535
    core.send_headers(1, RESPONSE)
    core.send_data(1, b"x" * 10_000)
    assert core.window(1) == 55_535
    client.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 100_000})
    exchange(core, client)
    assert core.window_opened
    assert core.states[1].send_window == 90_000  # the delta applies to open streams
    assert core.window(1) == 55_535  # the connection window is unchanged by SETTINGS
    client.increment_flow_control_window(50_000)
    exchange(core, client)
    assert core.window(1) == 90_000


def test_our_initial_window_applies_once_acknowledged() -> None:
    core = Recorder(client_side=False, window=1_000_000)
    core.initiate(1 << 20)
    client = peer(client_side=True)
    client.send_headers(1, REQUEST)
    core.receive(client.data_to_send())  # the client's SETTINGS, and a stream, before our ACK
    assert core.states[1].recv_window == 65_535
    exchange(core, client)
    assert core.states[1].recv_window == 1_000_000


def test_reset_streams_give_the_connection_window_back() -> None:
    core, client = server_pair(connection_window=65_535)
    client.send_headers(1, REQUEST)
    exchange(core, client)
    core.take()
    core.reset_stream(1, ErrorCodes.CANCEL)
    assert core.states == {}
    # In flight before the client saw the reset: ignored, but its window comes back.
    for _ in range(3):
        client.send_data(1, b"y" * 13_000)
    events = exchange(core, client)
    assert next(e for e in events if isinstance(e, StreamReset)).error_code == ErrorCodes.CANCEL
    assert core.take() == []
    assert core.recv_window + core.recv_unacked == 65_535


def test_peer_reset_and_goaway_reach_the_hooks() -> None:
    core, client = server_pair()
    client.send_headers(1, REQUEST)
    client.reset_stream(1, ErrorCodes.CANCEL)
    client.close_connection(last_stream_id=0)
    exchange(core, client)
    calls = core.take()
    assert calls[1] == ("reset", 1, ErrorCodes.CANCEL)
    assert calls[2] == ("goaway", 0, ErrorCodes.NO_ERROR)
    with pytest.raises(StreamClosedError):
        core.send_data(1, b"late")


def test_ping_is_answered() -> None:
    core, client = server_pair()
    client.ping(b"12345678")
    events = exchange(core, client)
    assert [e.ping_data for e in events if isinstance(e, PingAckReceived)] == [b"12345678"]


def test_streams_beyond_the_peers_limit_are_not_opened() -> None:
    core, _ = client_pair(MAX_CONCURRENT_STREAMS=2)
    core.start_stream(REQUEST, end_stream=True)
    core.start_stream(REQUEST, end_stream=True)
    with pytest.raises(TooManyStreamsError):
        core.start_stream(REQUEST, end_stream=True)


def test_goaway_from_the_core_lets_streams_finish() -> None:
    core, client = server_pair()
    client.send_headers(1, REQUEST, end_stream=True)
    exchange(core, client)
    core.send_goaway(1)
    events = exchange(core, client)
    assert isinstance(events[0], ConnectionTerminated) and events[0].last_stream_id == 1


def test_informational_without_final_response_cannot_end_the_stream() -> None:
    core, server = client_pair()
    sid = core.start_stream(REQUEST, end_stream=True)
    exchange(core, server)
    # h2 would not send it: by hand (literal :status 100 with END_STREAM).
    core.receive(headers_frame(sid, b"\x48\x03100", flags=0x5))
    events = exchange(core, server)
    assert core.take() == [("reset", sid, ErrorCodes.PROTOCOL_ERROR)]
    assert any(isinstance(e, StreamReset) for e in events)


def test_trailers_must_end_the_stream() -> None:
    core, client = server_pair()
    client.send_headers(1, REQUEST)
    client.config.validate_outbound_headers = False
    exchange(core, client)
    core.take()
    core.receive(headers_frame(1, b"\x40\x01x\x01y", flags=0x4))  # no END_STREAM
    assert core.take() == [("reset", 1, ErrorCodes.PROTOCOL_ERROR)]


# -- connection errors from hand-made frames --------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (head(4, frames.DATA, 0, 0) + b"abcd", ErrorCodes.PROTOCOL_ERROR),  # DATA on stream 0
        (head(4, frames.DATA, 0, 1) + b"abcd", ErrorCodes.PROTOCOL_ERROR),  # idle stream
        (headers_frame(2), ErrorCodes.PROTOCOL_ERROR),  # even id from a client
        (head(100_000, frames.DATA, 0, 1), ErrorCodes.FRAME_SIZE_ERROR),  # from the header
        (head(1, frames.HEADERS, 0x5, 1) + b"\xff", ErrorCodes.COMPRESSION_ERROR),
        (headers_frame(1, flags=0x1) + frames.ping_ack(b"8" * 8), ErrorCodes.PROTOCOL_ERROR),
        (head(4, frames.CONTINUATION, 0x4, 1) + b"\x82\x86\x84\x41", ErrorCodes.PROTOCOL_ERROR),
        (frames.window_update(0, 0), ErrorCodes.PROTOCOL_ERROR),
        (frames.window_update(0, 2**31 - 1), ErrorCodes.FLOW_CONTROL_ERROR),
        (frames.rst_stream(7, 8), ErrorCodes.PROTOCOL_ERROR),  # RST on an idle stream
        (head(7, frames.PING, 0, 0) + b"1234567", ErrorCodes.FRAME_SIZE_ERROR),
        (head(5, frames.SETTINGS, 0, 0) + b"12345", ErrorCodes.FRAME_SIZE_ERROR),
        (frames.settings({4: 2**31}), ErrorCodes.FLOW_CONTROL_ERROR),
        (frames.settings({5: 100}), ErrorCodes.PROTOCOL_ERROR),
        (head(4, frames.PUSH_PROMISE, 0x4, 1) + b"\x00\x00\x00\x02", ErrorCodes.PROTOCOL_ERROR),
        (head(3, frames.DATA, 0x8, 1) + b"\x05ab", ErrorCodes.PROTOCOL_ERROR),  # padding
    ],
)
def test_connection_errors(frame: bytes, code: ErrorCodes) -> None:
    with pytest.raises(H2ConnectionError) as raised:
        raw_server(frame)
    assert raised.value.code == code


def test_first_frame_must_be_settings() -> None:
    core = Recorder(client_side=False)
    with pytest.raises(H2ConnectionError):
        core.receive(frames.PREFACE + frames.ping_ack(b"8" * 8))


def test_bad_preface_is_refused_early() -> None:
    core = Recorder(client_side=False)
    core.receive(frames.PREFACE[:10])  # incomplete, so far fine
    with pytest.raises(H2ConnectionError):
        core.receive(b"GET / HTTP/1.1\r\n\r\n")


def test_a_stream_window_overrun_is_a_stream_error() -> None:
    core = raw_server(headers_frame(1, flags=0x4), connection_window=1 << 20)
    core.take()
    data = b"".join(head(16_384, frames.DATA, 0, 1) + bytes(16_384) for _ in range(4))
    core.receive(data + head(1, frames.DATA, 0, 1) + b"!")
    calls = core.take()
    assert calls[-1] == ("reset", 1, ErrorCodes.FLOW_CONTROL_ERROR)
    assert 1 not in core.states


def test_frames_split_anywhere_parse_the_same() -> None:
    client = peer(client_side=True)
    client.send_headers(1, REQUEST)
    client.send_data(1, b"split me", end_stream=True)
    data = client.data_to_send()
    whole = Recorder(client_side=False)
    whole.receive(data)
    for size in (1, 2, 7, 9, 10, 33):
        core = Recorder(client_side=False)
        for pos in range(0, len(data), size):
            core.receive(data[pos : pos + size])
        assert core.calls == whole.calls


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=2**32))
def test_any_bytes_after_the_preface_parse_or_fail_as_a_connection_error(
    data: bytes, seed: int
) -> None:
    rng = random.Random(seed)
    core = Recorder(client_side=rng.random() < 0.5)
    if not core.client_side:
        core.receive(frames.PREFACE)
    try:
        core.receive(frames.settings({}) + data)
        for sid in list(core.states):
            core.ack_data(sid, rng.randint(0, 100))
    except H2ConnectionError:
        pass
