"""Read a planned file once: its chunks, hashed as they stream, and its result."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from hashlib import sha256

from sparkify.loader.contract import SONGS
from sparkify.loader.files import FileSource, HashedFile, SourceFile, read_small
from sparkify.loader.lines import (
    DEFAULT_MAX_LINE_BYTES,
    Chunk,
    document_chunk,
    read_chunks,
    read_document,
)

# A song file of at most this many bytes (uncompressed, as listed) is read in
# one go and hashed whole: a song file is a few hundred bytes, and its cost is
# the calls around its bytes, not the bytes (see docs/loader.md, speed).
SMALL_FILE_BYTES = 1024 * 1024

# Called with the number of bytes read so far of a file: progress inside big files.
ReadCallback = Callable[[int], None]


@dataclass
class FileResult:
    """What loading one file came to."""

    file: SourceFile
    checksum: str = ""
    rows: int = 0
    rejects: int = 0
    load_id: int = 0  # the load (batch transaction) that landed this version
    replaces: bool = False  # it replaced a different, earlier version


def read_file(
    source: FileSource,
    file: SourceFile,
    result: FileResult,
    on_read: ReadCallback | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> Iterator[Chunk]:
    """The chunks of one file, read once; sets result.checksum when it is read."""
    if file.kind == SONGS and not file.compressed and file.size <= SMALL_FILE_BYTES:
        data = read_small(source, file, SMALL_FILE_BYTES)
        if data is not None:  # else it grew since it was listed: streamed below
            result.checksum = sha256(data).hexdigest()
            yield document_chunk(data, max_line_bytes)
            return
    if file.kind == SONGS:  # one document: kept only up to max_line_bytes
        with HashedFile(source, file) as hashed:
            document = read_document(hashed.stream, max_line_bytes)
            result.checksum = hashed.checksum()
        yield document
        return
    with HashedFile(source, file) as hashed:
        read = 0
        for chunk in read_chunks(
            hashed.stream, whole_document=False, max_line_bytes=max_line_bytes
        ):
            yield chunk
            read += chunk.size
            if on_read is not None:
                on_read(read)
        result.checksum = hashed.checksum()
