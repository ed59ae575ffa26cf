"""File access behind one small interface.

The loader only ever asks a `FileSource` two things: which files are there, and
their bytes. Local folders are the only source today; object storage will be
another class with the same two methods, and nothing else in the loader changes.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

log = logging.getLogger("load_raw")

# Read in large blocks: fewer syscalls, and memory stays bounded by the block size.
READ_BLOCK_BYTES = 8 * 1024 * 1024
DATA_SUFFIXES = (".json", ".json.gz")


@dataclass(frozen=True)
class SourceFile:
    """One file of the feed, named the way the landing tables name it."""

    kind: str  # 'songs' or 'events'
    name: str  # e.g. 'log_data/2018/11/2018-11-01-events.json'
    size: int

    @property
    def compressed(self) -> bool:
        return self.name.endswith(".gz")


class FileSource(Protocol):
    """Where the feed's files come from."""

    def list_files(self) -> tuple[list[SourceFile], list[str]]:
        """Return (data files, names of files skipped because they are not data)."""
        ...

    def open(self, source_file: SourceFile) -> BinaryIO:
        """Open a file's bytes, decompressed, for reading."""
        ...

    def checksum(self, source_file: SourceFile) -> str:
        """A fingerprint of the file as stored: it changes when the content does."""
        ...


class UnreadableFile(OSError):
    """A file that cannot be read as what its name says, e.g. a corrupt .json.gz."""


class _NamedErrors:
    """A decompressing stream whose read errors name the file they come from."""

    def __init__(self, stream: BinaryIO, name: str):
        self._stream = stream
        self._name = name

    def read(self, size: int = -1) -> bytes:
        try:
            return self._stream.read(size)
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
        self.prefixes = {"songs": "song_data", "events": "log_data"}

    def list_files(self) -> tuple[list[SourceFile], list[str]]:
        files: list[SourceFile] = []
        skipped: list[str] = []
        for kind, root in sorted(self.roots.items()):
            prefix = self.prefixes[kind]
            for path in _walk(root):
                name = f"{prefix}/{path.relative_to(root).as_posix()}"
                if not _is_utf8(name):
                    # The name must be stored as text; a name that is not UTF-8 cannot be.
                    skipped.append(
                        name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                    )
                elif is_data_file(path.name):
                    files.append(SourceFile(kind=kind, name=name, size=path.stat().st_size))
                else:
                    skipped.append(name)
        files.sort(key=lambda f: (f.kind, f.name))
        return files, sorted(skipped)

    def path_of(self, source_file: SourceFile) -> Path:
        prefix = self.prefixes[source_file.kind]
        return self.roots[source_file.kind] / source_file.name[len(prefix) + 1 :]

    def open(self, source_file: SourceFile) -> BinaryIO:
        path = self.path_of(source_file)
        if source_file.compressed:
            return _NamedErrors(gzip.open(path, "rb"), source_file.name)  # type: ignore[return-value]
        return open(path, "rb")

    def checksum(self, source_file: SourceFile) -> str:
        """sha256 of the bytes as stored (for .gz files, of the compressed bytes)."""
        digest = hashlib.sha256()
        with open(self.path_of(source_file), "rb") as stream:
            while block := stream.read(READ_BLOCK_BYTES):
                digest.update(block)
        return digest.hexdigest()


def _walk(root: Path) -> Iterator[Path]:
    """Every regular file under root, following symlinked files and folders once.

    A link that leads out of root, or nowhere, is not followed and is named in the
    log: what is read is decided by the feed's folder, not by a link planted in it
    (a link to ~/.pgpass would otherwise land its bytes in raw.rejects).
    """
    real_root = root.resolve()
    seen: set[tuple[int, int]] = set()
    for folder, dirnames, filenames in os.walk(root, followlinks=True):
        stat = os.stat(folder)
        if (stat.st_dev, stat.st_ino) in seen:  # a symlink loop
            dirnames.clear()
            continue
        seen.add((stat.st_dev, stat.st_ino))
        dirnames[:] = sorted(d for d in dirnames if _inside(Path(folder) / d, real_root))
        for filename in sorted(filenames):
            path = Path(folder) / filename
            if not _inside(path, real_root):
                continue
            if path.is_file():
                yield path
            elif path.is_symlink():
                log.warning("skipped %s: a broken link", path)


def _inside(path: Path, real_root: Path) -> bool:
    if not path.is_symlink() or path.resolve().is_relative_to(real_root):
        return True
    log.warning("skipped %s: a link to %s, outside the feed's folder", path, path.resolve())
    return False


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
