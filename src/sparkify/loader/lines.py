"""Turn a file's bytes into candidate rows and rejects, without parsing fields.

Raw is raw: a line is landed as the text it is. The loader only decides whether
a line can be a jsonb object at all, cheaply on the fast path (valid UTF-8,
starts with '{' and ends with '}'), and lets PostgreSQL's jsonb parser have the
last word. Only a chunk that PostgreSQL refuses is looked at line by line
(`classify`), to give each bad line its reason.

Speed: most chunks of a feed are clean (every line an ASCII or UTF-8 `{...}`, no
CR, no blank line). That is checked for a whole chunk at once, by C-level
iterators, byte counts and one regex search, without a Python test per line.
Lines that look fine but hold an escape jsonb is known to refuse (`\\u0000`, a
surrogate) are set apart as suspects, so one such line does not send a whole
batch down the slow path.

Two rules bound what a line may cost, on every engine alike (the PostgreSQL
batch and the lake read the same chunks): a line longer than --max-line-bytes
is counted to its end but not kept (a `too_long` reject holding its first
TOO_LONG_KEPT_BYTES), so memory stays bounded however far a line or a
compressed file inflates; and a line nested deeper than MAX_NESTING_DEPTH is a
`too_deep` reject, so no engine's parser meets a depth it treats differently.
"""

from __future__ import annotations

import json
import operator
import re
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import accumulate, compress, repeat
from typing import BinaryIO

from sparkify.loader.contract import (
    CR_LINE_BREAKS,
    INVALID_UTF8,
    NOT_AN_OBJECT,
    NOT_JSON,
    TOO_DEEP,
    TOO_LONG,
    TRUNCATED,
)

BOM = b"\xef\xbb\xbf"
# Memory per open file is a few times this (the block, its lines, its COPY input,
# and the blocks queued for sending, see sender.py); 1 MB keeps a worker well
# under 100 MB, and COPY writes still large.
CHUNK_BYTES = 1024 * 1024
# Escapes that JSON allows and jsonb refuses: \u0000, and \uD800-\uDFFF (a
# surrogate; a valid pair is accepted too, but is rare and judged exactly).
SUSPECT = re.compile(rb"\\u(?:0000|[dD][89abcdefABCDEF])")
# The first and the last byte of a line.
_FIRST = operator.itemgetter(0)
_LAST = operator.itemgetter(-1)

# The longest line that lands (--max-line-bytes): the warehouse is proven to
# build with a line this long (tests/python/loader/test_line_limits.py). jsonb itself
# refuses a string over 256 MB, and dbt's staging needs several times a line's
# size in one allocation (PostgreSQL's limit is 1 GB): a 200 MB line lands in
# raw but fails every later build.
DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024
# What a too_long reject keeps of its line (raw.rejects.line): its first MiB,
# whatever its length (its full length is in the reject's detail). A rejected
# line may be a gigabyte: kept whole it would not fit in memory, nor in a bytea.
TOO_LONG_KEPT_BYTES = 1024 * 1024
# The deepest nesting that lands (objects and arrays, counted outside strings):
# a deeper line is a `too_deep` reject. PostgreSQL's jsonb follows about 100k
# levels, Spark's JSON readers (Jackson) give null from 1,000: one limit well
# under both, so that both engines read every landed line the same way. The
# feed's lines nest 1 deep.
MAX_NESTING_DEPTH = 512
# Objects on one line that lone CRs (old Mac line endings) separate.
_CR_BREAK = re.compile(r"\}[ \t]*\r[ \t\r]*\{")


@dataclass(frozen=True)
class Reject:
    line_number: int
    line: bytes
    reason: str
    detail: str


@dataclass
class Chunk:
    """A run of lines of one file."""

    rows: list[tuple[int, bytes]] = field(default_factory=list)  # (line_number, line)
    rejects: list[Reject] = field(default_factory=list)
    # Lines that pass the cheap test but that jsonb may refuse: judged one by one.
    suspects: list[tuple[int, bytes]] = field(default_factory=list)
    # True when the chunk holds the file's last line and it had no newline after it:
    # only such a line can be 'truncated'.
    ends_unterminated: bool = False
    # A clean chunk (see _is_clean) keeps its lines as they are, numbered from
    # first_line on, with no rejects, suspects or rows: nothing to escape or check.
    clean_lines: list[bytes] = field(default_factory=list)
    first_line: int = 0
    size: int = 0  # bytes of the file this chunk covers (for progress)

    @property
    def row_count(self) -> int:
        return len(self.rows) + len(self.clean_lines)

    def numbered(self) -> list[tuple[int, bytes]]:
        """Every candidate row as (line_number, line), clean chunk or not."""
        if self.clean_lines:
            numbers = range(self.first_line, self.first_line + len(self.clean_lines))
            return list(zip(numbers, self.clean_lines, strict=True))
        return self.rows


def read_chunks(
    stream: BinaryIO,
    *,
    whole_document: bool,
    chunk_bytes: int = CHUNK_BYTES,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> Iterator[Chunk]:
    """Split a file into chunks of candidate rows and early rejects.

    Event logs are JSON lines: one candidate per non-blank line. A song file is a
    single JSON document (possibly pretty-printed): one candidate, line 1.
    Blank lines are not input and are dropped; a BOM and CRLF endings are removed.
    A line longer than max_line_bytes is a reject (too_long): once a line is
    known to be that long it is no longer kept, only counted to its end, so
    memory stays bounded whatever its length. A line nested deeper than
    MAX_NESTING_DEPTH is a reject (too_deep).
    """
    if whole_document:
        yield read_document(stream, max_line_bytes, chunk_bytes)
        return

    line_number = 0
    # The start of a line longer than a block, in pieces: joined once its end
    # is read (joining at every block would copy a long line over and over).
    carry: list[bytes] = []
    carried = 0
    long_line: _LongLine | None = None  # a line over the limit, read to its end
    first = True
    while True:
        block = stream.read(chunk_bytes)
        if first:
            block = block.removeprefix(BOM)
            first = False
        if not block:
            break
        if long_line is not None:
            end = block.find(b"\n")
            if end < 0:
                long_line.add(block)
                continue
            long_line.add(block[:end])
            line_number += 1
            yield long_line.chunk(line_number, max_line_bytes, unterminated=False)
            long_line = None
            block = block[end + 1 :]
        cut = block.rfind(b"\n")
        if cut < 0:  # no complete line yet: keep reading
            if block:
                carry.append(block)
                carried += len(block)
            # Over the limit even without a CR before its newline: a reject
            # whatever follows, so stop keeping it.
            if carried > max_line_bytes + 1:
                long_line = _LongLine(carry)
                carry, carried = [], 0
            continue
        complete = b"".join([*carry, block[: cut + 1]]) if carry else block[: cut + 1]
        carry = [block[cut + 1 :]] if cut + 1 < len(block) else []
        carried = sum(map(len, carry))
        lines = complete.split(b"\n")
        lines.pop()  # complete ends with a newline
        if _is_clean(complete, lines, max_line_bytes):
            yield Chunk(clean_lines=lines, first_line=line_number + 1, size=len(complete))
            line_number += len(lines)
            continue
        chunk = Chunk(size=len(complete))
        line_number = _split_into(chunk, lines, line_number, False, max_line_bytes)
        yield chunk
    if long_line is not None:  # the last line, with no newline after it
        yield long_line.chunk(line_number + 1, max_line_bytes, unterminated=True)
    elif carry:  # the last line, with no newline after it
        last = b"".join(carry)
        if _is_clean(last, [last], max_line_bytes):
            yield Chunk(
                clean_lines=[last],
                first_line=line_number + 1,
                ends_unterminated=True,
                size=len(last),
            )
            return
        chunk = Chunk(ends_unterminated=True, size=len(last))
        _split_into(chunk, [last], line_number, True, max_line_bytes)
        yield chunk


class _LongLine:
    """A line found to be over the limit while it is read: only its head is
    kept, and its length counted to its end."""

    def __init__(self, pieces: list[bytes]):
        self.head = b""
        self.length = 0
        self.blank = True  # whitespace only so far: not input if it stays so
        self.last = b""  # its last byte: a CR before the newline is not counted
        for piece in pieces:
            self.add(piece)

    def add(self, piece: bytes) -> None:
        if not piece:
            return
        if len(self.head) < TOO_LONG_KEPT_BYTES:
            self.head += piece[: TOO_LONG_KEPT_BYTES - len(self.head)]
        self.length += len(piece)
        self.blank = self.blank and not piece.strip()
        self.last = piece[-1:]

    def chunk(self, line_number: int, max_line_bytes: int, *, unterminated: bool) -> Chunk:
        newline = 0 if unterminated else 1
        chunk = Chunk(ends_unterminated=unterminated, size=self.length + newline)
        length = self.length - (self.last == b"\r")
        if not self.blank:
            chunk.rejects.append(too_long(line_number, self.head, length, max_line_bytes))
        return chunk


def too_long(line_number: int, head: bytes, length: int, max_line_bytes: int) -> Reject:
    """The reject of a line of `length` bytes that starts with `head`: it keeps
    the first TOO_LONG_KEPT_BYTES, whatever the line's length."""
    kept = head[:TOO_LONG_KEPT_BYTES]
    return Reject(
        line_number,
        kept,
        TOO_LONG,
        f"{length} bytes, over the limit of {max_line_bytes} (--max-line-bytes); "
        f"the first {len(kept)} bytes are kept",
    )


def document_chunk(data: bytes, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> Chunk:
    """A file that is one JSON document (a song file): one candidate, line 1."""
    data = data.removeprefix(BOM).strip()
    chunk = Chunk(ends_unterminated=True)
    if data:
        _triage(chunk, 1, data, is_last=True, unterminated=True, max_line_bytes=max_line_bytes)
    return chunk


def read_document(
    stream: BinaryIO, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, block_bytes: int = CHUNK_BYTES
) -> Chunk:
    """A file that is one JSON document (a song file), read from a stream: as
    document_chunk, keeping at most max_line_bytes + 1 of its bytes (a small
    .json.gz may inflate to gigabytes); a longer one is counted to its end and
    is a too_long reject."""
    kept: list[bytes] = []
    kept_size = 0
    size = 0  # of the document from its first non-blank byte on
    trailing = 0  # blank bytes at its end so far
    first, started = True, False
    while block := stream.read(block_bytes):
        if first:
            block, first = block.removeprefix(BOM), False
        if not started:  # leading blanks are not the document's
            block = block.lstrip()
            started = bool(block)
        if not block:
            continue
        size += len(block)
        tail = len(block) - len(block.rstrip())
        trailing = trailing + tail if tail == len(block) else tail
        room = max_line_bytes + 1 - kept_size
        if room > 0:
            kept.append(block[:room])
            kept_size += len(kept[-1])
    length = size - trailing
    if length <= max_line_bytes:  # then all of it is kept
        return document_chunk(_joined(kept, length), max_line_bytes)
    chunk = Chunk(ends_unterminated=True)
    head = _joined(kept, TOO_LONG_KEPT_BYTES)
    chunk.rejects.append(too_long(1, head, length, max_line_bytes))
    return chunk


def _joined(pieces: list[bytes], length: int) -> bytes:
    """The first `length` bytes of pieces, joined in one copy."""
    taken: list[bytes] = []
    for piece in pieces:
        if length <= 0:
            break
        taken.append(piece[:length] if len(piece) > length else piece)
        length -= len(taken[-1])
    return b"".join(taken)


def _is_clean(complete: bytes, lines: list[bytes], max_line_bytes: int) -> bool:
    """Whether every one of `lines` (those of `complete`) is a candidate as it is:
    starts with '{' and ends with '}' (so no blank line, no CR, no whitespace
    around it), is no longer than max_line_bytes, is valid UTF-8, holds no
    suspect escape and, if it is JSON, nests no deeper than MAX_NESTING_DEPTH."""
    # The first and last bytes of all lines, gathered by C-level iterators: no
    # Python code per line, and cheaper than counting "}\n{" in the chunk. One
    # regex pass for suspects is cheaper than a substring search per escape (a
    # quarter of the lines hold some \\u escape, so none can be skipped cheaply).
    try:
        firsts, lasts = bytes(map(_FIRST, lines)), bytes(map(_LAST, lines))
    except IndexError:  # a blank line
        return False
    longest = max(map(len, lines))
    return (
        firsts.count(b"{") == len(lines)
        and lasts.count(b"}") == len(lines)
        and longest <= max_line_bytes
        and _is_utf8(complete)
        and SUSPECT.search(complete) is None
        and (longest < _SHORTEST_TOO_DEEP or _all_shallow(lines))
    )


# JSON nested n deep holds n brackets that open and n that close: a shorter line
# that is JSON is not too deep, and one that is not JSON is refused by
# PostgreSQL and then judged by classify(), which measures it.
_SHORTEST_TOO_DEEP = 2 * (MAX_NESTING_DEPTH + 1)


def _all_shallow(lines: list[bytes]) -> bool:
    """Whether no line that is JSON nests deeper than MAX_NESTING_DEPTH. Only the
    lines long enough to be too deep have their brackets counted, and only those
    with more brackets than the limit are measured."""
    long_lines = [line for line in lines if len(line) >= _SHORTEST_TOO_DEEP]
    openers = map(
        operator.add,
        map(bytes.count, long_lines, repeat(b"{")),
        map(bytes.count, long_lines, repeat(b"[")),
    )
    many = compress(long_lines, map(MAX_NESTING_DEPTH.__lt__, openers))
    return all(nesting_depth(line) <= MAX_NESTING_DEPTH for line in many)


# For nesting_depth: every byte but quotes and brackets; openers as +1, closers as -1.
_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(b'"{[}]')))
_SIGNS = bytes.maketrans(b"{[}]", b"\x01\x01\xff\xff")
_DEPTH_BLOCK = 1024 * 1024


def nesting_depth(line: bytes) -> int:
    """How deep a line's objects and arrays nest, brackets inside strings not
    counted (`{"a": [1]}` is 2 deep). Bytes operations and C-level iterators
    only: a line of millions of brackets inside a string takes a fraction of a
    second, and one of millions of brackets outside strings about a second per
    32 MB. Also defined for a line that is not JSON (its brackets are counted)."""
    # Escaped backslashes, then escaped quotes, do not open or close a string.
    text = line.replace(b"\\\\", b"").replace(b'\\"', b"")
    shape = text.translate(None, _NOT_STRUCTURE)  # quotes and brackets only
    # Between an odd quote and the next, brackets are a string's characters.
    # In blocks: a list of millions of short parts would cost more than the line.
    outside: list[bytes] = []
    in_string = 0
    for start in range(0, len(shape), _DEPTH_BLOCK):
        parts = shape[start : start + _DEPTH_BLOCK].split(b'"')
        outside.append(b"".join(parts[in_string::2]))
        in_string = (in_string + len(parts) - 1) % 2
    signs = b"".join(outside).translate(_SIGNS)
    depth = deepest = 0
    for start in range(0, len(signs), _DEPTH_BLOCK):
        piece = signs[start : start + _DEPTH_BLOCK]
        deepest = max(deepest, max(accumulate(array("b", piece), initial=depth)))
        depth += piece.count(1) - piece.count(0xFF)
    return deepest


def _too_deep(line_number: int, line: bytes) -> Reject | None:
    """A too_deep reject if the line nests deeper than MAX_NESTING_DEPTH. Cheap
    for most lines: only one with more brackets than the limit is measured."""
    if line.count(b"{") + line.count(b"[") <= MAX_NESTING_DEPTH:
        return None
    depth = nesting_depth(line)
    if depth <= MAX_NESTING_DEPTH:
        return None
    return Reject(
        line_number,
        line,
        TOO_DEEP,
        f"nested {depth} levels deep, over the limit of {MAX_NESTING_DEPTH}",
    )


def _split_into(
    chunk: Chunk, lines: list[bytes], line_number: int, last: bool, max_line_bytes: int
) -> int:
    for line in lines:
        line_number += 1
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line.strip():
            continue
        _triage(
            chunk,
            line_number,
            line,
            is_last=last,
            unterminated=last,
            max_line_bytes=max_line_bytes,
        )
    return line_number


def _triage(
    chunk: Chunk,
    line_number: int,
    line: bytes,
    *,
    is_last: bool,
    unterminated: bool,
    max_line_bytes: int,
) -> None:
    if len(line) > max_line_bytes:
        chunk.rejects.append(too_long(line_number, line, len(line), max_line_bytes))
        return
    deep = _too_deep(line_number, line)
    if deep is not None:
        chunk.rejects.append(deep)
        return
    stripped = line.strip()
    if stripped[:1] == b"{" and stripped[-1:] == b"}" and _is_utf8(line):
        if b"\\u" in line and SUSPECT.search(line):
            chunk.suspects.append((line_number, line))
        else:
            chunk.rows.append((line_number, line))
        return
    reject = classify(line_number, line, may_be_truncated=is_last and unterminated)
    if reject is None:  # cannot happen for a line that failed the cheap test, but be safe
        chunk.rows.append((line_number, line))
    else:
        chunk.rejects.append(reject)


def _is_utf8(line: bytes) -> bool:
    if line.isascii():
        return True
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _refuse_constant(name: str) -> None:
    # Python's json accepts NaN and Infinity; JSON (and jsonb) do not.
    raise ValueError(f"{name} is not valid JSON")


def classify(line_number: int, line: bytes, *, may_be_truncated: bool) -> Reject | None:
    """Why this line cannot be a jsonb object, or None if Python finds no fault.

    PostgreSQL may still refuse a line that passes here (for example a \\u0000
    escape, or a lone surrogate): the loader checks those with raw.jsonb_error().
    A line nested deeper than MAX_NESTING_DEPTH is too_deep before any parser
    sees it, whatever else is wrong with it.
    """
    deep = _too_deep(line_number, line)
    if deep is not None:
        return deep
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Reject(line_number, line, INVALID_UTF8, str(exc))
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:  # not within MAX_NESTING_DEPTH, unless the stack is deep already
        return Reject(line_number, line, TOO_DEEP, "nested deeper than the loader's parser follows")
    except ValueError as exc:
        if "\r" in text and _CR_BREAK.search(text):
            objects = len(_CR_BREAK.findall(text)) + 1
            return Reject(
                line_number,
                line,
                CR_LINE_BREAKS,
                f"lone CR (\\r) line breaks: {objects} JSON lines on one line; "
                "convert the file's line endings to LF and load it again",
            )
        if may_be_truncated and text.lstrip().startswith("{"):
            return Reject(
                line_number, line, TRUNCATED, f"the file ends inside a JSON object: {exc}"
            )
        return Reject(line_number, line, NOT_JSON, str(exc))
    if not isinstance(value, dict):
        return Reject(
            line_number, line, NOT_AN_OBJECT, f"a JSON {type(value).__name__}, not an object"
        )
    return None
