"""File access behind one small interface.

The loader only ever asks a `FileSource` two things: which files are there, and
their bytes. Local folders are the only source today; object storage will be
another class with the same two methods, and nothing else in the loader changes.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

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
            return gzip.open(path, "rb")  # type: ignore[return-value]
        return open(path, "rb")

    def checksum(self, source_file: SourceFile) -> str:
        """sha256 of the bytes as stored (for .gz files, of the compressed bytes)."""
        digest = hashlib.sha256()
        with open(self.path_of(source_file), "rb") as stream:
            while block := stream.read(READ_BLOCK_BYTES):
                digest.update(block)
        return digest.hexdigest()


def _walk(root: Path) -> Iterator[Path]:
    """Every regular file under root, following symlinked files and folders once."""
    seen: set[tuple[int, int]] = set()
    for folder, dirnames, filenames in os.walk(root, followlinks=True):
        stat = os.stat(folder)
        if (stat.st_dev, stat.st_ino) in seen:  # a symlink loop
            dirnames.clear()
            continue
        seen.add((stat.st_dev, stat.st_ino))
        dirnames.sort()
        for filename in sorted(filenames):
            path = Path(folder) / filename
            if path.is_file():
                yield path


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
