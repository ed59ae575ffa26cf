"""Compare the feed with the manifest: what to load, what is unchanged, what is gone.

Guarantees that start here:
- Idempotent: a file whose checksum is already in raw.load_manifest is not read
  again; a file whose checksum changed has its rows replaced. The manifest also
  keeps each file's size and modification stamp: when both are as recorded the
  file is not even hashed; when either differs the checksum decides. (An object
  in S3 adds its ETag to the stamp.)
- One feed per database: each file's feed root (its folder or s3:// prefix) is
  in the manifest, and a file of another feed is not replaced unless asked.

`plan_files` decides from the manifest given as plain data; `plan` reads it
from PostgreSQL first, the lake (lake.py) from its Parquet manifest. What the
plan finds is said the same way for both: `check_other_feed`, `vanished_message`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field

import psycopg

from sparkify.loader.contract import EVENTS
from sparkify.loader.errors import UsageError
from sparkify.loader.files import FileSource, SkippedFile, SourceFile
from sparkify.loader.options import BATCH_MAX_BYTES, BATCH_MAX_FILES

log = logging.getLogger("load_raw")

# Vanished files named in the log (the count is always given).
VANISHED_NAMED = 5


@dataclass(frozen=True)
class ManifestEntry:
    """What raw.load_manifest remembers of one loaded file."""

    checksum: str
    size: int
    mtime_ns: int | None
    etag: str
    kind: str
    feed_root: str | None  # None: loaded before feed roots were kept


@dataclass
class PlannedFile:
    file: SourceFile
    # The checksum found when comparing with an earlier version; None for a new
    # file (it is hashed while it loads). What lands is always the checksum of
    # the bytes actually read.
    checksum: str | None
    replaces: bool  # a different version of this file was loaded before


@dataclass
class Plan:
    to_load: list[PlannedFile]
    unchanged: list[SourceFile]
    # Unchanged content under a new size/stamp: the manifest's stamp is updated.
    restamped: list[SourceFile] = field(default_factory=list)
    # (kind, name) of files in the manifest, of a kind listed, no longer in the feed.
    vanished: list[tuple[str, str]] = field(default_factory=list)
    # (name, its feed root) of files to be replaced that were loaded from another feed.
    other_feed: list[tuple[str, str]] = field(default_factory=list)
    # (name, why) of changed-looking files that could not be read to be hashed
    # (gone since listed, archived): left out of this run, and named, as a file
    # that turns out unreadable while it loads is (batch.skipping).
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    def add(self, part: Plan) -> None:
        """Take in the plan of another part of the listing (planning.plan_part)."""
        self.to_load += part.to_load
        self.unchanged += part.unchanged
        self.restamped += part.restamped
        self.other_feed += part.other_feed
        self.unreadable += part.unreadable


def read_manifest(conn: psycopg.Connection) -> dict[str, ManifestEntry]:
    """raw.load_manifest, by file name; empty for a database never loaded
    (load_raw.py --plan creates nothing)."""
    landed = conn.execute("select to_regclass('raw.load_manifest') is not null").fetchone()
    if not (landed and landed[0]):
        return {}
    return {
        name: ManifestEntry(checksum, size, mtime_ns, etag or "", kind, root)
        for name, checksum, size, mtime_ns, etag, kind, root in conn.execute(
            "select source_file, checksum, size_bytes, mtime_ns, etag, source_kind, feed_root "
            "from raw.load_manifest"
        )
    }


def plan(
    conn: psycopg.Connection, source: FileSource, files: list[SourceFile], *, verify: bool = False
) -> Plan:
    """plan_files against the manifest in PostgreSQL."""
    return plan_files(source, files, read_manifest(conn), verify=verify)


def plan_files(
    source: FileSource,
    files: list[SourceFile],
    manifest: Mapping[str, ManifestEntry],
    *,
    kinds: Collection[str] | None = None,
    verify: bool = False,
) -> Plan:
    """Compare the files with the manifest: what is new, changed, unchanged or gone.

    The stat skip: a file whose size and modification time are as recorded is
    taken as unchanged without being read, which makes a re-run over 100k files
    take seconds. A file rewritten with its old size and time (cp -p, rsync -t,
    a restore from tar) escapes it; `verify` hashes every file instead.

    Manifest files of `kinds` (by default the source's: the kinds this run
    loads) that are not listed have vanished from the feed, unless they are
    under a path that could not be listed (source.unreadable): those are
    unknown, not gone. Files of another feed root are not this feed's: they
    never vanish from it; one that would be replaced is named in `other_feed`.
    """
    result = plan_part(source, files, manifest, verify=verify)
    result.vanished = vanished_files(source, {file.name for file in files}, manifest, kinds)
    return result


def plan_part(
    source: FileSource,
    files: list[SourceFile],
    manifest: Mapping[str, ManifestEntry],
    *,
    verify: bool = False,
) -> Plan:
    """plan_files without `vanished`, for a part of the listing: each file is
    planned on its own, so the plans of the parts are the plan of the whole."""
    roots = feed_roots(source)
    result = Plan(to_load=[], unchanged=[])
    for file in files:
        previous = manifest.get(file.name)
        if previous is None:
            result.to_load.append(PlannedFile(file, None, replaces=False))
            continue
        recorded = (previous.size, previous.mtime_ns, previous.etag)
        if not verify and file.mtime_ns and recorded == (file.size, file.mtime_ns, file.etag):
            result.unchanged.append(file)
            continue
        try:
            digest = source.checksum(file)
        except SkippedFile as exc:
            result.unreadable.append((exc.name, exc.reason))
            continue
        if digest == previous.checksum:
            result.unchanged.append(file)
            result.restamped.append(file)
        else:
            result.to_load.append(PlannedFile(file, digest, replaces=True))
            root = previous.feed_root
            if root is not None and root != roots.get(file.kind):
                result.other_feed.append((file.name, root))
    return result


def vanished_files(
    source: FileSource,
    listed: Collection[str],
    manifest: Mapping[str, ManifestEntry],
    kinds: Collection[str] | None = None,
) -> list[tuple[str, str]]:
    """Plan.vanished, once the whole feed is listed (`listed`: every name)."""
    kinds = source.roots.keys() if kinds is None else kinds
    unlisted = [name for name, _ in source.unreadable]
    roots = feed_roots(source, kinds)
    hidden = tuple(f"{name}/" for name in unlisted)
    return sorted(
        (entry.kind, name)
        for name, entry in manifest.items()
        if entry.kind in kinds
        and entry.feed_root in (None, roots.get(entry.kind))
        and name not in listed
        and name not in unlisted
        and not name.startswith(hidden)
    )


def others_on_record(source: FileSource, manifest: Mapping[str, ManifestEntry]) -> bool:
    """Does the manifest hold files of these kinds from another feed root? Then
    a file of this feed may replace one of them, which is refused before
    anything is written (check_other_feed): the whole feed is listed first."""
    roots = feed_roots(source)
    return any(
        entry.feed_root not in (None, roots[entry.kind])
        for entry in manifest.values()
        if entry.kind in roots
    )


def feed_roots(source: FileSource, kinds: Collection[str] | None = None) -> dict[str, str]:
    """The feed root of each kind the source lists (of `kinds`, if given)."""
    return {kind: source.feed_root(kind) for kind in source.roots if kinds is None or kind in kinds}


def check_other_feed(other: list[tuple[str, str]], replace_them: bool, elsewhere: str) -> None:
    """Refuse to replace files that came from another feed, unless asked to:
    a UsageError before anything is written. `elsewhere` says where another
    feed goes instead (another database, another lake)."""
    if not other:
        return
    name, root = other[0]
    if not replace_them:
        raise UsageError(
            f"{len(other)} files of this feed would replace files loaded from another "
            f"feed (e.g. {name} from {root}): load this feed into {elsewhere}, "
            "or pass --replace-other-feed to replace them"
        )
    log.warning(
        "replacing %d files loaded from another feed (e.g. %s from %s)", len(other), name, root
    )


def vanished_message(vanished: list[tuple[str, str]], *, pruned: bool, kept_in: str) -> str:
    """The log line for files no longer in the feed (Plan.vanished): their
    count and the first names. `kept_in` says where their rows stay unpruned."""
    names = [name for _, name in vanished]
    shown = ", ".join(names[:VANISHED_NAMED]) + (", ..." if len(names) > VANISHED_NAMED else "")
    if pruned:
        return f"pruned {len(names)} files no longer in the feed: {shown}"
    return (
        f"{len(names)} loaded files are no longer in the feed (their rows stay in "
        f"{kept_in}; --prune removes them): {shown}"
    )


def in_load_order(planned: list[PlannedFile]) -> list[PlannedFile]:
    """Events largest first, so the big files start early and the small ones
    fill the gaps; song files in name order."""
    return sorted(
        planned,
        key=lambda item: (item.file.kind, -item.file.size if item.file.kind == EVENTS else 0),
    )


def batches(
    planned: list[PlannedFile],
    max_bytes: int = BATCH_MAX_BYTES,
    max_files: int = BATCH_MAX_FILES,
) -> Iterator[list[PlannedFile]]:
    """Consecutive files of one kind, up to either limit (a bigger file goes alone)."""
    batch: list[PlannedFile] = []
    size = 0
    for item in planned:
        if batch and (
            size + item.file.size > max_bytes
            or len(batch) >= max_files
            or item.file.kind != batch[0].file.kind
        ):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item.file.size
    if batch:
        yield batch
