"""PostgreSQL's binary COPY format for the landing tables' rows.

Binary COPY: each field is its length, then its bytes. A line goes as it is,
whatever bytes it holds (nothing to escape), and the server does not scan the
rows for delimiters and quotes: 5-10% less backend CPU than CSV. A row is its
field count, then the payload (jsonb's binary input: a version byte, then the
text), the load id (int8), the file's name and the line number. The load id
and the name are the same for every line of a file: sent as one piece.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Sequence
from itertools import chain, islice, repeat

import psycopg

FAST_COPY = (
    "copy {table} (payload, load_id, source_file, line_number) from stdin with (format binary)"
)
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, no flags, no extension
COPY_TRAILER = b"\xff\xff"
# Rows are handed to COPY in blocks of about this size: few, large writes.
COPY_BLOCK_BYTES = 1024 * 1024

_ROW_START = struct.Struct("!hiB").pack  # 4 fields; the payload's length; jsonb version 1
_FIELD_COUNT = 4
_INT4 = struct.Struct("!i").pack
_INT8_FIELD = struct.Struct("!iq").pack  # length 8, then the value


def name_field(name: str, load_id: int) -> bytes:
    """What follows the payload in every row of a file: the load id field, the
    name field, then the line number's length."""
    encoded = name.encode("utf-8")
    return _INT8_FIELD(8, load_id) + _INT4(len(encoded)) + encoded + _INT4(4)


def copy_rows(file_field: bytes, numbers: Sequence[int], lines: Sequence[bytes]) -> bytes:
    """COPY input for lines of one file, with their line numbers.

    Joined from two pieces a row, by C-level iterators: the line, then what
    lies between it and the next line (its load id, name and number, and the
    next row's start) packed by one struct call. No Python code runs per line.
    """
    if not lines:
        return b""
    between = map(
        _between(len(file_field)),
        repeat(file_field),
        numbers,
        repeat(_FIELD_COUNT),
        map((1).__add__, map(len, islice(lines, 1, None))),
        repeat(1),
    )
    first = _ROW_START(_FIELD_COUNT, len(lines[0]) + 1, 1)
    last = file_field + _INT4(numbers[-1])
    pieces = chain.from_iterable(zip(lines, chain(between, (last,)), strict=True))
    return b"".join(chain((first,), pieces))


@functools.cache
def _between(field_bytes: int) -> Callable[..., bytes]:
    """A struct packer of what follows a line whose file field is `field_bytes`
    long: the file field, the line number, then the next row's start."""
    return struct.Struct(f"!{field_bytes}sihiB").pack


def copy_row(file_field: bytes, number: int, line: bytes) -> bytes:
    """COPY input for one line of a file (a song file's one row)."""
    return _ROW_START(_FIELD_COUNT, len(line) + 1, 1) + line + file_field + _INT4(number)


def copy_numbered(file_field: bytes, rows: Sequence[tuple[int, bytes]]) -> bytes:
    """COPY input for (line number, line) pairs of one file."""
    return copy_rows(file_field, [number for number, _ in rows], [line for _, line in rows])


class BlockWriter:
    """Gathers small pieces of COPY input and hands them over in large blocks."""

    def __init__(self, copy: psycopg.Copy):
        self.copy = copy
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> None:
        if len(data) >= COPY_BLOCK_BYTES:
            self.flush()
            self.copy.write(data)
            return
        self.parts.append(data)
        self.size += len(data)
        if self.size >= COPY_BLOCK_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.parts:
            self.copy.write(b"".join(self.parts))
            self.parts, self.size = [], 0
