"""File access behind one small interface.

The loader only ever asks a `FileSource` which files are there (with a size and a
modification stamp) and for their bytes as stored. Local folders are one source;
object storage is another with the same methods (s3_source.py: its stamp is the
object's last-modified time and ETag), and nothing else in the loader changes.

`open_hashed` reads a file once: the loader streams the decompressed bytes into
COPY while the sha256 of the stored bytes is computed on the way.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from sparkify.loader.contract import FEED_FOLDERS

log = logging.getLogger("load_raw")

# Read in large blocks: fewer syscalls, and memory stays bounded by the block size.
READ_BLOCK_BYTES = 8 * 1024 * 1024
# read_small's reads after the first: small, so that no read asks for (and
# allocates) much more than is there.
SMALL_STEP_BYTES = 64 * 1024
DATA_SUFFIXES = (".json", ".json.gz")


@dataclass(frozen=True)
class SourceFile:
    """One file of the feed, named the way the landing tables name it."""

    kind: str  # 'songs' or 'events'
    name: str  # e.g. 'log_data/2018/11/2018-11-01-events.json'
    size: int
    # When the file was last modified (ns since the epoch), as listed. With the
    # size, a cheap "unchanged" test that spares re-reading the file; 0 if unknown.
    mtime_ns: int = 0
    # An object's ETag (object storage only; '' for a local file): part of the stamp.
    etag: str = ""

    @property
    def compressed(self) -> bool:
        return self.name.endswith(".gz")


class FileSource(Protocol):
    """Where the feed's files come from."""

    # (name, why) of paths that could not be listed by the last list_files():
    # skipped, and the rest listed.
    unreadable: list[tuple[str, str]]

    @property
    def roots(self) -> Mapping[str, object]:
        """kind ('songs' | 'events') -> where that kind's files are listed from."""
        ...

    def feed_root(self, kind: str) -> str:
        """Where the files of a kind come from (a folder, or s3://bucket/prefix):
        recorded per file in the manifest, so that another feed is not mixed in."""
        ...

    def list_files(self) -> tuple[list[SourceFile], list[str]]:
        """Return (data files, names of files skipped because they are not data)."""
        ...

    def list_pages(self) -> Iterator[tuple[list[SourceFile], list[str]]]:
        """The same listing in parts, as they are listed, for a load to start on
        the first part while the rest is listed (run.py)."""
        ...

    def open(self, source_file: SourceFile) -> BinaryIO:
        """Open a file's bytes, decompressed, for reading."""
        ...

    def open_stored(self, source_file: SourceFile) -> BinaryIO:
        """Open a file's bytes as stored (for a .gz file, the compressed bytes)."""
        ...

    def checksum(self, source_file: SourceFile) -> str:
        """A fingerprint of the file as stored: it changes when the content does."""
        ...

    def reading_ahead(self, files: list[SourceFile]) -> AbstractContextManager[None]:
        """While the block runs, which opens these files in this order, the source
        may fetch them ahead (an object store does: s3_source.py); their errors
        are still raised by open_stored, file by file."""
        ...


class UnreadableFile(OSError):
    """A file that cannot be read as what its name says, e.g. a corrupt .json.gz."""


class SourceError(OSError):
    """The source failed, not the file's bytes (an object store, a vanished file):
    passed through a decompressing stream as it is, never taken for a corrupt file."""


class SkippedFile(SourceError):
    """A listed file that cannot be read at all, e.g. gone since it was listed or
    archived: skipped and named (its batch is loaded without it), not a failure.
    `reason` says why in a few words."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason

    def __reduce__(self) -> tuple[type[SkippedFile], tuple[str, str]]:  # crosses processes
        return SkippedFile, (self.name, self.reason)


class _NamedErrors:
    """A decompressing stream whose read errors name the file they come from."""

    def __init__(self, stream: gzip.GzipFile, name: str):
        self._stream = stream
        self._name = name

    def read(self, size: int = -1) -> bytes:
        try:
            return self._stream.read(size)
        except SourceError:
            raise
        except (OSError, EOFError, zlib.error) as exc:
            raise UnreadableFile(f"{self._name}: {exc}") from exc

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> _NamedErrors:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def is_data_file(name: str) -> bool:
    return name.endswith(DATA_SUFFIXES)


class LocalFileSource:
    """Files under local folders: one root for song files, one for event logs.

    A file is named `<prefix>/<path under its root>`, with prefix `song_data` or
    `log_data`, so names stay stable wherever the roots live.
    """

    def __init__(self, roots: dict[str, Path]):
        # roots maps kind ('songs' | 'events') to a folder.
        self.roots = roots
        self.prefixes = FEED_FOLDERS
        self.unreadable: list[tuple[str, str]] = []

    def list_pages(self) -> Iterator[tuple[list[SourceFile], list[str]]]:
        """One part: a local folder is walked in a fraction of a second."""
        yield self.list_files()

    def list_files(self) -> tuple[list[SourceFile], list[str]]:
        files: list[SourceFile] = []
        skipped: list[str] = []
        self.unreadable = []
        for kind, root in sorted(self.roots.items()):
            prefix = self.prefixes[kind]
            unreadable: list[tuple[str, str]] = []
            for relative, stat in _walk(root, unreadable):
                name = f"{prefix}/{relative}"
                if not _is_utf8(name):
                    # The name must be stored as text; a name that is not UTF-8 cannot be.
                    skipped.append(
                        name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                    )
                elif is_data_file(relative):
                    files.append(SourceFile(kind, name, stat.st_size, stat.st_mtime_ns))
                else:
                    skipped.append(name)
            self.unreadable.extend(
                (f"{prefix}/{relative}".rstrip("/"), why) for relative, why in unreadable
            )
        self.unreadable.sort()
        files.sort(key=lambda f: (f.kind, f.name))
        return files, sorted(skipped)

    def feed_root(self, kind: str) -> str:
        return str(self.roots[kind].resolve())

    def path_of(self, source_file: SourceFile) -> Path:
        return Path(self._local_path(source_file))

    def _local_path(self, source_file: SourceFile) -> str:
        # Plain strings, not pathlib: this runs once per file, for tens of thousands.
        prefix = self.prefixes[source_file.kind]
        return f"{self.roots[source_file.kind]}{source_file.name[len(prefix) :]}"

    def open(self, source_file: SourceFile) -> BinaryIO:
        path = self._local_path(source_file)
        try:
            if source_file.compressed:
                return _NamedErrors(gzip.open(path, "rb"), source_file.name)  # type: ignore[return-value]
            return open(path, "rb")
        except FileNotFoundError:
            raise SkippedFile(source_file.name, "gone since it was listed") from None

    def open_stored(self, source_file: SourceFile) -> BinaryIO:
        # Unbuffered: the loader reads in large blocks, or a small file at once.
        try:
            return open(self._local_path(source_file), "rb", buffering=0)
        except FileNotFoundError:  # removed since it was listed (a producer's clean-up)
            raise SkippedFile(source_file.name, "gone since it was listed") from None

    def reading_ahead(self, files: list[SourceFile]) -> AbstractContextManager[None]:
        return nullcontext()  # a local file's first byte costs no round trip

    def checksum(self, source_file: SourceFile) -> str:
        """sha256 of the bytes as stored (for .gz files, of the compressed bytes)."""
        with self.open_stored(source_file) as stream:
            return sha256_of(stream)


def whole_listing(
    pages: Iterable[tuple[list[SourceFile], list[str]]],
) -> tuple[list[SourceFile], list[str]]:
    """The parts of a listing as one, files in (kind, name) order."""
    files: list[SourceFile] = []
    skipped: list[str] = []
    for part_files, part_skipped in pages:
        files.extend(part_files)
        skipped.extend(part_skipped)
    files.sort(key=lambda f: (f.kind, f.name))
    return files, sorted(skipped)


def read_small(source: FileSource, source_file: SourceFile, limit: int) -> bytes | None:
    """The bytes of a file as stored, read in one go, if there are at most `limit`
    of them; None if there are more (then it is to be streamed). For small files,
    whose cost is the calls around their bytes: a local one is read with the
    system calls alone (open, two reads, close), no stream objects around them."""
    # The listed size (plus one byte, to see the end) is asked first: a file of
    # that size is then read whole by the first read, and the second finds its end.
    first = min(source_file.size, limit) + 1
    if isinstance(source, LocalFileSource):
        try:
            fd = os.open(source._local_path(source_file), os.O_RDONLY)
        except FileNotFoundError:  # removed since it was listed
            raise SkippedFile(source_file.name, "gone since it was listed") from None
        try:
            return _read_to_end(lambda size: os.read(fd, size), first, limit)
        finally:
            os.close(fd)
    with source.open_stored(source_file) as stream:
        return _read_to_end(stream.read, first, limit)


def _read_to_end(read: Callable[[int], bytes], first: int, limit: int) -> bytes | None:
    data = read(first)
    # A read may return less than asked before the end (and a file may have
    # grown since it was listed): read on until the end, or past the limit.
    while len(data) <= limit and (more := read(min(SMALL_STEP_BYTES, limit + 1 - len(data)))):
        data += more
    return data if len(data) <= limit else None


def sha256_of(stream: BinaryIO) -> str:
    """The sha256 of a stream's bytes, read in large blocks (every FileSource's checksum)."""
    digest = hashlib.sha256()
    while block := stream.read(READ_BLOCK_BYTES):
        digest.update(block)
    return digest.hexdigest()


class _HashingReader:
    """A read-only stream that feeds every byte it hands out to a sha256."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.digest = hashlib.sha256()

    def read(self, size: int | None = -1) -> bytes:
        block = self.raw.read(-1 if size is None else size)
        self.digest.update(block)
        return block

    def hexdigest(self) -> str:
        """The sha256 of the whole stored file: reads whatever was not read yet."""
        while self.read(READ_BLOCK_BYTES):
            pass
        return self.digest.hexdigest()

    def close(self) -> None:
        self.raw.close()


class HashedFile:
    """A file open for one pass: `stream` gives the decompressed bytes, and
    `checksum()`, once they are read, the sha256 of the stored bytes."""

    def __init__(self, source: FileSource, source_file: SourceFile):
        self._stored = _HashingReader(source.open_stored(source_file))
        self.stream: BinaryIO
        if source_file.compressed:
            self.stream = _NamedErrors(  # type: ignore[assignment]
                # GzipFile seeks its fileobj only to rewind, which the loader never asks.
                gzip.GzipFile(fileobj=self._stored, mode="rb"),  # type: ignore[call-overload]
                source_file.name,
            )
        else:
            self.stream = self._stored  # type: ignore[assignment]

    def checksum(self) -> str:
        return self._stored.hexdigest()

    def __enter__(self) -> HashedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stream.close()
        self._stored.close()


def _walk(root: Path, unreadable: list[tuple[str, str]]) -> Iterator[tuple[str, os.stat_result]]:
    """(path under root, stat) of every regular file under root, following symlinked
    files and folders, each folder once (a symlink loop is not followed around).

    A folder or file that cannot be listed or stat-ed (no permission, a path
    over the system's limit) is added to `unreadable` as (path under root, why),
    and the walk goes on: one bad path does not stop the feed.

    A link that leads out of root, or nowhere, is not followed and is named in the
    log: what is read is decided by the feed's folder, not by a link planted in it
    (a link to ~/.pgpass would otherwise land its bytes in raw.rejects).
    """
    real_root = root.resolve()
    top = os.stat(root)
    seen = {(top.st_dev, top.st_ino)}
    stack = [(str(root), "", top.st_dev)]
    while stack:
        folder, relative, device = stack.pop()
        # scandir, not os.walk + Path.stat: one system call per file, and none per
        # plain folder (its inode comes with the listing); a symlinked folder is
        # stat-ed to learn what it points to.
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            unreadable.append((relative.rstrip("/"), _why(exc)))
            continue
        for entry in entries:
            try:
                if entry.is_symlink() and not _inside(entry.path, real_root):
                    continue
                if entry.is_dir():
                    if entry.is_symlink():
                        target = os.stat(entry.path)
                        key = (target.st_dev, target.st_ino)
                    else:
                        key = (device, entry.inode())
                    if key not in seen:
                        seen.add(key)
                        stack.append((entry.path, f"{relative}{entry.name}/", key[0]))
                elif entry.is_file():
                    stat = entry.stat()
                    yield f"{relative}{entry.name}", stat
                elif entry.is_symlink():
                    log.warning("skipped %s: a broken link", entry.path)
            except OSError as exc:
                unreadable.append((f"{relative}{entry.name}", _why(exc)))


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _inside(path: str, real_root: Path) -> bool:
    """False (and said) for a link whose target is outside the feed's folder."""
    target = Path(path).resolve()
    if not target.exists() or target.is_relative_to(real_root):
        return True
    log.warning("skipped %s: a link to %s, outside the feed's folder", path, target)
    return False


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
