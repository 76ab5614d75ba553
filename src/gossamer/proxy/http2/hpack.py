"""HPACK (RFC 7541): the header compression of one HTTP/2 connection, in each direction.

A `Decoder` turns a complete header block into `(name, value)` byte tuples and keeps the
peer's dynamic table in step; an `Encoder` does the reverse with our own table. Both are
pure and per connection (the tables are connection state).

What the proxy needs beyond the RFC's mechanics:

- Never-indexed fields stay never-indexed (§7.1.3: an intermediary must forward them in the
  same representation): the decoder returns them as `NeverIndexed` tuples, which the
  encoder writes as never-indexed literals. headers.py marks secrets the same way.
- Bounds: a decoded header list larger than `max_header_list_size` (name + value + 32 per
  field) stops decoding with `OversizedHeaderList`; integers are capped; the dynamic table
  never exceeds the size we advertised (4096, the default).
- Speed: indexed fields come back as the table's own tuples (no allocation), and short
  Huffman strings are decoded and encoded through small bounded caches, since the same
  values (dates, content types, user agents, gRPC paths) recur on every connection.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from gossamer.proxy.http2 import huffman

Header = tuple[bytes, bytes]

# The dynamic table size both sides start with; the proxy never advertises another.
DEFAULT_TABLE_SIZE = 4096


class HPACKError(ValueError):
    """A header block that does not decode: a COMPRESSION_ERROR on the connection."""


class OversizedHeaderList(HPACKError):
    """The decoded header list exceeds the limit the proxy advertised."""


class NeverIndexed(tuple[bytes, bytes]):
    """A header field that must never enter a compression table (secrets, short cookies)."""

    __slots__ = ()

    def __new__(cls, name: bytes, value: bytes) -> NeverIndexed:
        return tuple.__new__(cls, (name, value))


_STATIC_TEXT = (
    ":authority|:method GET|:method POST|:path /|:path /index.html|:scheme http|:scheme https|"
    ":status 200|:status 204|:status 206|:status 304|:status 400|:status 404|:status 500|"
    "accept-charset|accept-encoding gzip, deflate|accept-language|accept-ranges|accept|"
    "access-control-allow-origin|age|allow|authorization|cache-control|content-disposition|"
    "content-encoding|content-language|content-length|content-location|content-range|"
    "content-type|cookie|date|etag|expect|expires|from|host|if-match|if-modified-since|"
    "if-none-match|if-range|if-unmodified-since|last-modified|link|location|max-forwards|"
    "proxy-authenticate|proxy-authorization|range|referer|refresh|retry-after|server|"
    "set-cookie|strict-transport-security|transfer-encoding|user-agent|vary|via|"
    "www-authenticate"
)
# Index 0 is unused, so STATIC[i] is the RFC's entry i.
STATIC: tuple[Header, ...] = (
    (b"", b""),
    *(
        (name.encode(), value.encode())
        for name, _, value in (entry.partition(" ") for entry in _STATIC_TEXT.split("|"))
    ),
)
STATIC_LEN = len(STATIC) - 1  # 61
_STATIC_PAIRS = {header: index for index, header in enumerate(STATIC) if index and header[1]}
_STATIC_NAMES: dict[bytes, int] = {}
for _index, (_name, _) in enumerate(STATIC):
    if _index:
        _STATIC_NAMES.setdefault(_name, _index)

# Fields whose values rarely repeat: indexing them would only churn the table (nghttp2's
# choice too).
_NOT_INDEXED = frozenset(
    {
        b":path",
        b"age",
        b"content-length",
        b"etag",
        b"if-modified-since",
        b"if-none-match",
        b"location",
        b"set-cookie",
    }
)

# Bounded memo tables (see the module docstring), shared by all connections and cleared
# when full: under 1 MiB together even when every entry is as large as allowed.
_CACHE_ENTRIES = 512
_CACHE_MAX_STRING = 128
_decoded: dict[bytes, bytes] = {}
_encoded: dict[bytes, bytes] = {}
_unindexed: dict[Header, bytes] = {}  # whole fields of the _NOT_INDEXED kind
_MEMO_BLOCKS = 128
_MEMO_MAX_BLOCK = 256
_MEMO_MAX_FIELDS = 16
# Header blocks without dynamic references: (headers, entries added with sizes, list size).
_blocks: dict[bytes, tuple[tuple[Header, ...], tuple[tuple[Header, int], ...], int]] = {}

_MAX_INT_SHIFT = 28  # integers above 2**28 + prefix are refused: nothing legitimate needs them


def _read_int(data: bytes, pos: int, value: int) -> tuple[int, int]:
    """Continues a prefixed integer whose prefix was all ones (`value`) at data[pos:]."""
    shift = 0
    end = len(data)
    while True:
        if pos >= end:
            raise HPACKError("truncated integer")
        byte = data[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > _MAX_INT_SHIFT:
            raise HPACKError("integer too large")


def _write_int(out: bytearray, value: int, prefix_bits: int, flags: int) -> None:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        out.append(flags | value)
        return
    out.append(flags | limit)
    value -= limit
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


class Decoder:
    __slots__ = ("_capacity", "_size", "_table", "max_header_list_size")

    def __init__(self, max_header_list_size: int) -> None:
        self.max_header_list_size = max_header_list_size
        # What the peer's encoder last chose, up to the size we advertised.
        self._capacity = DEFAULT_TABLE_SIZE
        self._table: deque[Header] = deque()  # newest first: dynamic index 62 is [0]
        self._size = 0

    def decode(self, data: bytes) -> list[Header]:
        memo = _blocks.get(data)
        if memo is not None:
            if memo[2] > self.max_header_list_size:
                raise OversizedHeaderList(f"header list over {self.max_header_list_size} bytes")
            for entry, entry_size in memo[1]:
                self._insert(entry, entry_size)
            return list(memo[0])
        # One flat loop: this runs for every header block of every stream.
        headers: list[Header] = []
        append = headers.append
        table = self._table
        limit = self.max_header_list_size
        total = 0
        pos = 0
        end = len(data)
        # A block that refers to no dynamic entry decodes the same on any connection: it is
        # remembered with the entries it adds (servers such as nginx repeat theirs).
        static = len(data) <= _MEMO_MAX_BLOCK
        added: list[tuple[Header, int]] = []
        while pos < end:
            byte = data[pos]
            pos += 1
            if byte & 0x80:  # indexed field
                index = byte & 0x7F
                if index == 0x7F:
                    index, pos = _read_int(data, pos, index)
                if 0 < index <= STATIC_LEN:
                    header = STATIC[index]
                elif index > STATIC_LEN and index - 62 < len(table):
                    header = table[index - 62]
                    static = False
                else:
                    raise HPACKError(f"invalid index {index}")
                total += len(header[0]) + len(header[1]) + 32
            else:
                if byte & 0x40:  # literal, added to the table
                    index, prefix, add, never = byte & 0x3F, 0x3F, True, False
                elif byte & 0x20:  # dynamic table size update
                    size = byte & 0x1F
                    if size == 0x1F:
                        size, pos = _read_int(data, pos, size)
                    if size > DEFAULT_TABLE_SIZE:
                        raise HPACKError(f"table size {size} over {DEFAULT_TABLE_SIZE}")
                    self._capacity = size
                    self._evict(size)
                    static = False
                    continue
                else:  # literal not added to the table; never indexed when 0x10 is set
                    index, prefix, add, never = byte & 0x0F, 0x0F, False, bool(byte & 0x10)
                if index == prefix:
                    index, pos = _read_int(data, pos, index)
                if not index:
                    name, pos = _read_string(data, pos)
                elif index <= STATIC_LEN:
                    name = STATIC[index][0]
                elif index - 62 < len(table):
                    name = table[index - 62][0]
                    static = False
                else:
                    raise HPACKError(f"invalid name index {index}")
                # The value string, inline.
                if pos >= end:
                    raise HPACKError("truncated string")
                byte = data[pos]
                length = byte & 0x7F
                pos += 1
                if length == 0x7F:
                    length, pos = _read_int(data, pos, length)
                stop = pos + length
                if stop > end:
                    raise HPACKError("truncated string")
                value = data[pos:stop]
                pos = stop
                if byte & 0x80:
                    value = _huffman_decode(value)
                header = NeverIndexed(name, value) if never else (name, value)
                size = len(name) + len(value) + 32
                total += size
                if add:
                    self._insert(header, size)
                    added.append((header, size))
            if total > limit:
                raise OversizedHeaderList(f"header list over {limit} bytes")
            append(header)
        if static and len(headers) <= _MEMO_MAX_FIELDS:
            if len(_blocks) >= _MEMO_BLOCKS:
                _blocks.clear()
            _blocks[data] = (tuple(headers), tuple(added), total)
        return headers

    def _insert(self, header: Header, size: int) -> None:
        if size > self._capacity:
            self._table.clear()  # RFC 7541 §4.4: an entry too large empties the table
            self._size = 0
            return
        if self._size + size > self._capacity:
            self._evict(self._capacity - size)
        self._table.appendleft(header)
        self._size += size

    def _evict(self, room: int) -> None:
        table = self._table
        while self._size > room:
            name, value = table.pop()
            self._size -= len(name) + len(value) + 32


def _huffman_decode(raw: bytes) -> bytes:
    decoded = _decoded.get(raw)
    if decoded is None:
        try:
            decoded = huffman.decode(raw)
        except huffman.HuffmanError as error:
            raise HPACKError(str(error)) from None
        if len(raw) <= _CACHE_MAX_STRING:
            if len(_decoded) >= _CACHE_ENTRIES:
                _decoded.clear()
            _decoded[raw] = decoded
    return decoded


def _read_string(data: bytes, pos: int) -> tuple[bytes, int]:
    if pos >= len(data):
        raise HPACKError("truncated string")
    byte = data[pos]
    length = byte & 0x7F
    pos += 1
    if length == 0x7F:
        length, pos = _read_int(data, pos, length)
    end = pos + length
    if end > len(data):
        raise HPACKError("truncated string")
    raw = data[pos:end]
    return (_huffman_decode(raw) if byte & 0x80 else raw), end


def _string(value: bytes) -> bytes:
    """The HPACK string literal for `value`: Huffman-coded when that is shorter."""
    cached = _encoded.get(value)
    if cached is not None:
        return cached
    out = bytearray()
    short = len(value) <= _CACHE_MAX_STRING
    coded = huffman.encode(value) if short else b""
    if short and len(coded) < len(value):
        _write_int(out, len(coded), 7, 0x80)
        out += coded
    else:
        _write_int(out, len(value), 7, 0)
        out += value
    result = bytes(out)
    if short:
        if len(_encoded) >= _CACHE_ENTRIES:
            _encoded.clear()
        _encoded[value] = result
    return result


def _unindexed_field(header: Header) -> bytes:
    """A literal without indexing, naming the field by its static index or literally: the
    same bytes on every connection, so kept in a bounded memo table."""
    name, value = header
    out = bytearray()
    index = _STATIC_NAMES.get(name)
    if index is None:
        out.append(0)
        out += _string(name)
    else:
        _write_int(out, index, 4, 0)
    out += _string(value)
    field = bytes(out)
    if len(field) <= _CACHE_MAX_STRING:
        if len(_unindexed) >= _CACHE_ENTRIES:
            _unindexed.clear()
        _unindexed[header] = field
    return field


class Encoder:
    __slots__ = ("_entries", "_inserted", "_max_size", "_names", "_pairs", "_resized", "_size")

    def __init__(self) -> None:
        self._max_size = DEFAULT_TABLE_SIZE
        self._size = 0
        # Entries oldest first, as (header, sequence number); a header's dynamic index is
        # 62 + (newest sequence number - its own).
        self._entries: deque[tuple[Header, int]] = deque()
        self._inserted = 0
        self._pairs: dict[Header, int] = {}
        self._names: dict[bytes, int] = {}
        # Size updates owed to the peer's decoder (RFC 7541 §4.2): the smallest, then the
        # final one.
        self._resized: list[int] = []

    def set_max_table_size(self, size: int) -> None:
        """The peer's SETTINGS_HEADER_TABLE_SIZE: use at most that (and never over 4096)."""
        size = min(size, DEFAULT_TABLE_SIZE)
        if size == self._max_size:
            return
        self._max_size = size
        self._evict(size)
        resized = self._resized
        if not resized:
            resized.append(size)
        elif size < resized[0]:
            resized[:] = [size]
        else:
            resized[1:] = [size]

    def encode(self, headers: Iterable[Header]) -> bytes:
        out = bytearray()
        if self._resized:
            for size in self._resized:
                _write_int(out, size, 5, 0x20)
            self._resized.clear()
        pairs = self._pairs
        newest = 61 + self._inserted  # the dynamic index of sequence number s is newest - s
        for header in headers:
            if type(header) is NeverIndexed:
                self._literal(out, header, 4, 0x10)
                continue
            index = _STATIC_PAIRS.get(header)
            if index is not None:
                out.append(0x80 | index)
                continue
            seq = pairs.get(header)
            if seq is not None:
                index = newest - seq
                if index < 0x7F:
                    out.append(0x80 | index)
                else:
                    _write_int(out, index, 7, 0x80)
                continue
            field = _unindexed.get(header)
            if field is not None:
                out += field
                continue
            name, value = header
            if name in _NOT_INDEXED:
                out += _unindexed_field(header)
                continue
            size = len(name) + len(value) + 32
            if size > self._max_size // 2:
                self._literal(out, header, 4, 0)
            else:
                self._literal(out, header, 6, 0x40)
                self._add(header, size)
                newest += 1
        return bytes(out)

    def _literal(self, out: bytearray, header: Header, prefix_bits: int, flags: int) -> None:
        name, value = header
        index = _STATIC_NAMES.get(name)
        if index is None:
            seq = self._names.get(name)
            if seq is not None:
                index = 62 + self._inserted - 1 - seq
        if index is None:
            out.append(flags)
            out += _string(name)
        else:
            _write_int(out, index, prefix_bits, flags)
        out += _string(value)

    def _add(self, header: Header, size: int) -> None:
        self._evict(self._max_size - size)
        seq = self._inserted
        self._inserted = seq + 1
        self._entries.append((header, seq))
        self._size += size
        key = (header[0], header[1])
        self._pairs[key] = seq
        self._names[key[0]] = seq

    def _evict(self, room: int) -> None:
        entries = self._entries
        pairs = self._pairs
        names = self._names
        while self._size > room:
            header, seq = entries.popleft()
            name, value = header
            self._size -= len(name) + len(value) + 32
            if pairs.get(header) == seq:
                del pairs[header]
            if names.get(name) == seq:
                del names[name]
