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
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from raw_loader.contract import (
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
# build with a line this long (tests/python/test_worst_day.py). jsonb itself
# refuses a string over 256 MB, and dbt's staging needs several times a line's
# size in one allocation (PostgreSQL's limit is 1 GB): a 200 MB line lands in
# raw but fails every later build.
DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024
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
    A line longer than max_line_bytes is a reject (too_long).
    """
    if whole_document:
        yield document_chunk(stream.read(), max_line_bytes)
        return

    line_number = 0
    # The start of a line longer than a block, in pieces: joined once its end
    # is read (joining at every block would copy a long line over and over).
    carry: list[bytes] = []
    first = True
    while True:
        block = stream.read(chunk_bytes)
        if first:
            block = block.removeprefix(BOM)
            first = False
        if not block:
            break
        cut = block.rfind(b"\n")
        if cut < 0:  # no complete line yet: keep reading
            carry.append(block)
            continue
        complete = b"".join([*carry, block[: cut + 1]]) if carry else block[: cut + 1]
        carry = [block[cut + 1 :]] if cut + 1 < len(block) else []
        lines = complete.split(b"\n")
        lines.pop()  # complete ends with a newline
        if _is_clean(complete, lines, max_line_bytes):
            yield Chunk(clean_lines=lines, first_line=line_number + 1, size=len(complete))
            line_number += len(lines)
            continue
        chunk = Chunk(size=len(complete))
        line_number = _split_into(chunk, lines, line_number, False, max_line_bytes)
        yield chunk
    if carry:  # the last line, with no newline after it
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


def document_chunk(data: bytes, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> Chunk:
    """A file that is one JSON document (a song file): one candidate, line 1."""
    data = data.removeprefix(BOM).strip()
    chunk = Chunk(ends_unterminated=True)
    if data:
        _triage(chunk, 1, data, is_last=True, unterminated=True, max_line_bytes=max_line_bytes)
    return chunk


def _is_clean(complete: bytes, lines: list[bytes], max_line_bytes: int) -> bool:
    """Whether every one of `lines` (those of `complete`) is a candidate as it is:
    starts with '{' and ends with '}' (so no blank line, no CR, no whitespace
    around it), is no longer than max_line_bytes, is valid UTF-8 and holds no
    suspect escape."""
    # The first and last bytes of all lines, gathered by C-level iterators: no
    # Python code per line, and cheaper than counting "}\n{" in the chunk. One
    # regex pass for suspects is cheaper than a substring search per escape (a
    # quarter of the lines hold some \\u escape, so none can be skipped cheaply).
    try:
        firsts, lasts = bytes(map(_FIRST, lines)), bytes(map(_LAST, lines))
    except IndexError:  # a blank line
        return False
    return (
        firsts.count(b"{") == len(lines)
        and lasts.count(b"}") == len(lines)
        and max(map(len, lines)) <= max_line_bytes
        and _is_utf8(complete)
        and SUSPECT.search(complete) is None
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
        chunk.rejects.append(
            Reject(
                line_number,
                line,
                TOO_LONG,
                f"{len(line)} bytes, over the limit of {max_line_bytes} (--max-line-bytes)",
            )
        )
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
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Reject(line_number, line, INVALID_UTF8, str(exc))
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        stripped = text.strip()
        if stripped[:1] == "{" and stripped[-1:] == "}" and "\x00" not in text:
            # Deeper than Python's parser follows: PostgreSQL's jsonb parser
            # judges it (it lands, or is refused as too_deep), as on the fast path.
            return None
        return Reject(
            line_number,
            line,
            TOO_DEEP,
            "nested deeper than the loader's JSON parser follows, and not an object",
        )
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
