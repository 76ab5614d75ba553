"""HPACK and its Huffman code without sockets, against the `hpack` library as a reference."""

from __future__ import annotations

import contextlib

import hpack as ref
import pytest
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hypothesis import given, settings
from hypothesis import strategies as st

from gossamer.proxy.http2 import huffman
from gossamer.proxy.http2.hpack import (
    STATIC,
    Decoder,
    Encoder,
    HPACKError,
    NeverIndexed,
    OversizedHeaderList,
)

NAMES = [b":path", b":method", b"content-type", b"date", b"authorization", b"x-a", b"x-b"]
VALUES = [b"/", b"GET", b"text/plain", b"Mon, 21 Oct 2013 20:13:21 GMT", b"", b"v" * 300]
names = st.one_of(st.sampled_from(NAMES), st.binary(min_size=1, max_size=20))
values = st.one_of(st.sampled_from(VALUES), st.binary(max_size=40))
fields = st.tuples(names, values, st.booleans()).map(
    lambda f: NeverIndexed(f[0], f[1]) if f[2] else (f[0], f[1])
)
blocks = st.lists(st.lists(fields, max_size=10), min_size=1, max_size=8)


def test_huffman_code_is_rfc_7541s() -> None:
    assert huffman.CODES == REQUEST_CODES
    assert list(huffman.LENGTHS) == REQUEST_CODES_LENGTH


@given(st.binary(max_size=200))
def test_huffman_round_trip(data: bytes) -> None:
    coded = huffman.encode(data)
    assert coded == HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH).encode(data)
    assert huffman.encoded_length(data) == len(coded)
    assert huffman.decode(coded) == data


@given(st.binary(max_size=16))
def test_huffman_decoder_agrees_with_the_reference_on_any_input(data: bytes) -> None:
    try:
        expected: bytes | None = ref.huffman_table.decode_huffman(data)
    except ref.HPACKDecodingError:
        expected = None
    try:
        got: bytes | None = huffman.decode(data)
    except huffman.HuffmanError:
        got = None
    assert got == expected


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xff\xff\xff",  # EOS (30 ones) inside the string
        b"\x00",  # padding of zeros
        huffman.encode(b"a") + b"\xff",  # eight bits of padding
    ],
)
def test_invalid_huffman_is_refused(data: bytes) -> None:
    with pytest.raises(huffman.HuffmanError):
        huffman.decode(data)


@settings(max_examples=200)
@given(blocks)
def test_our_encoder_reads_back_through_the_reference_decoder(
    headers: list[list[ref.HeaderTuple]],
) -> None:
    encoder, decoder = Encoder(), ref.Decoder()
    decoder.max_header_list_size = 10**9
    for block in headers:
        decoded = decoder.decode(encoder.encode(block), raw=True)
        assert [tuple(h) for h in decoded] == [tuple(h) for h in block]
        for sent, got in zip(block, decoded, strict=True):
            # §7.1.3: never-indexed stays never-indexed.
            assert isinstance(got, ref.NeverIndexedHeaderTuple) == isinstance(sent, NeverIndexed)


@settings(max_examples=200)
@given(blocks, st.booleans())
def test_reference_encoder_reads_back_through_our_decoder(
    headers: list[list[tuple[bytes, bytes]]], huffman_coded: bool
) -> None:
    encoder, decoder = ref.Encoder(), Decoder(10**9)
    for block in headers:
        marked = [
            ref.NeverIndexedHeaderTuple(*h) if isinstance(h, NeverIndexed) else h for h in block
        ]
        decoded = decoder.decode(encoder.encode(marked, huffman=huffman_coded))
        assert [tuple(h) for h in decoded] == [tuple(h) for h in block]
        for sent, got in zip(block, decoded, strict=True):
            if isinstance(got, NeverIndexed):
                assert isinstance(sent, NeverIndexed)


def test_repeated_fields_are_indexed_and_volatile_ones_are_not() -> None:
    encoder = Encoder()
    block = [(b":status", b"200"), (b"server", b"x"), (b"content-length", b"12")]
    first = encoder.encode(block)
    second = encoder.encode(block)
    assert len(second) < len(first)
    # Static :status 200, dynamic index 62 (server), and content-length as a literal
    # without indexing (name index 28): its values rarely repeat.
    assert second == b"\x88\xbe\x0f\x0d\x0212"


def test_a_smaller_peer_table_is_announced_and_respected() -> None:
    encoder, decoder = Encoder(), ref.Decoder()
    block = [(b"x-a", b"1" * 100), (b"x-b", b"2" * 100)]
    decoder.decode(encoder.encode(block))
    encoder.set_max_table_size(64)  # the peer's SETTINGS_HEADER_TABLE_SIZE
    decoder.max_allowed_table_size = 64
    data = encoder.encode(block)
    assert data[0] == 0x20 | 31 and data[1] == 64 - 31  # a size update opens the block
    assert decoder.decode(data, raw=True) == block
    assert decoder.header_table_size == 64


def test_header_list_over_the_limit_is_refused() -> None:
    data = ref.Encoder().encode([(b"x" * 80, b"y" * 10)])
    with pytest.raises(OversizedHeaderList):
        Decoder(100).decode(data)
    assert Decoder(200).decode(data) == [(b"x" * 80, b"y" * 10)]


def test_table_size_update_over_the_advertised_size_is_refused() -> None:
    with pytest.raises(HPACKError):
        Decoder(1000).decode(b"\x3f\xe2\x1f")  # 4097 + ... > 4096


@pytest.mark.parametrize(
    "data",
    [
        b"\x80",  # index 0
        b"\xff\xff\xff\xff\xff\xff\xff\x7f",  # integer far too large
        bytes([0x80 | 62]),  # dynamic index into an empty table
        b"\x40\x05ab",  # truncated literal name
        b"\x0f",  # truncated integer
    ],
)
def test_malformed_blocks_are_refused(data: bytes) -> None:
    with pytest.raises(HPACKError):
        Decoder(65536).decode(data)


@given(st.binary(max_size=64))
def test_any_block_decodes_or_is_refused(data: bytes) -> None:
    with contextlib.suppress(HPACKError):
        Decoder(65536).decode(data)


def test_static_table() -> None:
    assert len(STATIC) == 62
    assert STATIC[1] == (b":authority", b"")
    assert STATIC[8] == (b":status", b"200")
    assert STATIC[61] == (b"www-authenticate", b"")


def test_remembered_blocks_still_update_each_connections_table() -> None:
    # nginx-style: literals added to the table, never referring to it.
    block = ref.Encoder().encode([(b":status", b"200"), (b"server", b"nginx"), (b"x-a", b"1")])
    first, second = Decoder(65536), Decoder(65536)
    expected = [(b":status", b"200"), (b"server", b"nginx"), (b"x-a", b"1")]
    assert first.decode(block) == expected
    assert second.decode(block) == expected  # from the memo: same fields, same additions
    for decoder in (first, second):
        assert decoder.decode(bytes([0x80 | 62, 0x80 | 63])) == [
            (b"x-a", b"1"),
            (b"server", b"nginx"),
        ]
    with pytest.raises(OversizedHeaderList):
        Decoder(50).decode(block)  # the limit is per decoder, memo or not


def test_memo_tables_stay_bounded() -> None:
    from gossamer.proxy.http2 import hpack

    decoder, encoder = Decoder(65536), Encoder()
    for i in range(3000):
        value = b"%08d" % i
        decoder.decode(ref.Encoder().encode([(b"x-n", value), (b"content-length", value)]))
        encoder.encode([(b"content-length", value), (b"x-n", value)])
    assert len(hpack._blocks) <= hpack._MEMO_BLOCKS
    assert len(hpack._decoded) <= hpack._CACHE_ENTRIES
    assert len(hpack._encoded) <= hpack._CACHE_ENTRIES
    assert len(hpack._unindexed) <= hpack._CACHE_ENTRIES
