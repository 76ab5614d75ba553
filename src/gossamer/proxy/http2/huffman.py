"""The HPACK Huffman code (RFC 7541 Appendix B): encoding, and decoding four bits at a time.

The code is canonical, so the 257 code lengths below define it: codes of one length are
consecutive, in symbol order, each length's first code following the previous length's last.
Decoding walks the code tree a nibble at a time through a 256-state table built at import
(4096 small ints); a string may end only where the leftover bits are a prefix of EOS
(all ones, at most seven of them), and EOS itself never appears in a valid string.
"""

from __future__ import annotations

from array import array

EOS = 256

# Code length in bits of each symbol 0..255 and EOS, RFC 7541 Appendix B.
LENGTHS = bytes(
    [
        13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
        28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
        6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
        5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
        13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
        7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
        15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
        6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
        20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
        24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
        22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
        21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
        26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
        19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
        20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
        26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
    ]
) + bytes([30])  # fmt: skip


class HuffmanError(ValueError):
    """A Huffman-coded string that does not decode (EOS inside, or bad padding)."""


def _canonical_codes() -> list[int]:
    codes = [0] * 257
    code = -1
    previous = 0
    for symbol in sorted(range(257), key=lambda s: (LENGTHS[s], s)):
        length = LENGTHS[symbol]
        code = (code + 1) << (length - previous)
        previous = length
        codes[symbol] = code
    return codes


CODES = _canonical_codes()

# Decoding table entries, indexed by state * 16 + nibble: next state * 16 in the low 12
# bits, above them 0 when the nibble completes no symbol, 1 when it completes EOS (an
# error), else the symbol + 2. An array of 4096 small ints (16 KiB), not of tuples (350).
_FAIL = 1


def _decode_tables() -> tuple[array[int], bytes]:
    # The code tree: internal nodes get state numbers 0..255 (0 is the root); children are
    # ("node", state) or ("leaf", symbol).
    children: list[list[tuple[str, int] | None]] = [[None, None]]
    for symbol in range(257):
        code, length = CODES[symbol], LENGTHS[symbol]
        node = 0
        for shift in range(length - 1, 0, -1):
            bit = (code >> shift) & 1
            child = children[node][bit]
            if child is None:
                children.append([None, None])
                child = ("node", len(children) - 1)
                children[node][bit] = child
            node = child[1]
        children[node][code & 1] = ("leaf", symbol)
    # A state may end a string when it is reached from the root by at most seven 1 bits.
    accepting = bytearray(len(children) * 16)
    node, depth = 0, 0
    while depth <= 7:
        accepting[node * 16] = 1
        child = children[node][1]
        if child is None or child[0] != "node":
            break
        node, depth = child[1], depth + 1
    table = array("i")
    for state in range(len(children)):
        for nibble in range(16):
            node, emitted = state, 0
            for shift in (3, 2, 1, 0):
                child = children[node][(nibble >> shift) & 1]
                assert child is not None
                if child[0] == "leaf":
                    node = 0
                    if child[1] == EOS:
                        emitted = _FAIL
                        break
                    emitted = child[1] + 2
                else:
                    node = child[1]
            table.append(node * 16 | emitted << 12)
    return table, bytes(accepting)


_TABLE, _ACCEPTING = _decode_tables()


def decode(data: bytes) -> bytes:
    table = _TABLE
    out = bytearray()
    append = out.append
    base = 0
    for byte in data:
        entry = table[base | (byte >> 4)]
        if entry >= 0x1000:
            if entry >> 12 == _FAIL:
                raise HuffmanError("EOS in a Huffman string")
            append((entry >> 12) - 2)
        entry = table[(entry & 0xFF0) | (byte & 0xF)]
        if entry >= 0x1000:
            if entry >> 12 == _FAIL:
                raise HuffmanError("EOS in a Huffman string")
            append((entry >> 12) - 2)
        base = entry & 0xFF0
    if not _ACCEPTING[base]:
        raise HuffmanError("invalid Huffman padding")
    return bytes(out)


def encode(data: bytes) -> bytes:
    """The Huffman coding of `data` (callers keep strings short: the accumulator grows)."""
    codes, lengths = CODES, LENGTHS
    acc = 0
    bits = 0
    for byte in data:
        length = lengths[byte]
        acc = (acc << length) | codes[byte]
        bits += length
    pad = -bits % 8
    return ((acc << pad) | ((1 << pad) - 1)).to_bytes((bits + pad) >> 3, "big")


def encoded_length(data: bytes) -> int:
    return (sum(map(LENGTHS.__getitem__, data)) + 7) >> 3
