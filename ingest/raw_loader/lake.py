"""Land the feed as Parquet files in a lake folder, for Spark (`load_raw.py --lake`).

The same contract as the PostgreSQL landing tables (schema.py), kept with files
instead of transactions:

- Raw is raw: every non-blank line (a song file: its one document) lands as its
  text, with its file's name, its line number, when it landed and its load id;
  a line that cannot be a JSON object is a reject with its bytes and reason.
  The lines are judged as PostgreSQL's jsonb would judge them (lines.py's
  triage, then Python's parser standing in for jsonb's, with jsonb's own
  refusals: a \\u0000 escape, a lone surrogate), so both engines land the
  same rows.
- One batch is one load. Its rows, rejects and manifest rows are written as
  files named with its load id; the load's row in loads/ is written last, by
  an atomic rename: that rename is the commit. Readers take only the files of
  loads that are in loads/ (models/staging/sparkify, the spark sources), so a
  load killed midway is invisible, and the next run deletes its files.
- Exactly once: load_manifest/ keeps each file's checksum, size and stamp; a
  re-run lands only new or changed files. A changed file's new version is a
  new load; readers take each file's rows from the load of its current
  manifest row only, so the old version's rows drop out in the same commit.
  --prune writes a manifest row that marks the file removed.
- One loader at a time per lake: an exclusive lock on LAKE/.lock.

Layout, one folder per landing table (each a Spark external table):
    LAKE/{songs,events,rejects,load_manifest,loads}/load-<id>[-<n>].parquet
Files whose name starts with '.' are ignored by Spark: a file is written under
such a name and renamed when complete.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from raw_loader.columns import LINE_COLUMNS, LOADS_COLUMNS, REJECT_COLUMNS, Column
from raw_loader.contract import JSONB_REFUSED, SOURCE_KINDS
from raw_loader.files import FileSource, SourceFile
from raw_loader.lines import DEFAULT_MAX_LINE_BYTES, Reject, classify
from raw_loader.options import LoadOptions
from raw_loader.planning import PlannedFile, batches, in_load_order
from raw_loader.progress import Progress
from raw_loader.reading import FileResult, read_file
from raw_loader.run import list_feed, log_rejects
from raw_loader.summary import Summary

log = logging.getLogger("load_raw")

TABLES = (*SOURCE_KINDS, "rejects", "load_manifest", "loads")
# Rows of a log file are written in row groups of about this many lines.
ROW_GROUP_LINES = 100_000
_LOAD_FILE = re.compile(r"^load-(\d+)(?:-\d+)?\.parquet$")
_UTC = dt.UTC

# A manifest row as read back, and a Parquet file's columns as written.
ManifestRow = dict[str, Any]
Columns = dict[str, list[Any]]

_TIMESTAMP = pa.timestamp("us", tz="UTC")
# PostgreSQL's types of the landing tables' columns (columns.py), as Arrow's.
# A payload is jsonb in PostgreSQL, its text here: Spark parses it when read.
_ARROW_TYPES: dict[str, pa.DataType] = {
    "text": pa.string(),
    "jsonb": pa.string(),
    "bytea": pa.binary(),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "timestamptz": _TIMESTAMP,
}


def _arrow_schema(columns: tuple[Column, ...]) -> pa.Schema:
    return pa.schema([(column.name, _ARROW_TYPES[column.pg_type]) for column in columns])


LINE_SCHEMA = _arrow_schema(LINE_COLUMNS)
REJECT_SCHEMA = _arrow_schema(REJECT_COLUMNS)
LOADS_SCHEMA = _arrow_schema(LOADS_COLUMNS)
_MANIFEST_FIELDS: list[tuple[str, pa.DataType]] = [
    ("source_file", pa.string()),
    ("source_kind", pa.string()),
    ("checksum", pa.string()),
    ("size_bytes", pa.int64()),
    ("mtime_ns", pa.int64()),
    ("row_count", pa.int32()),
    ("reject_count", pa.int32()),
    ("loaded_at", _TIMESTAMP),
    ("first_loaded_at", _TIMESTAMP),
    ("load_id", pa.int64()),
    # A --prune load's row for a file no longer in the feed.
    ("is_removed", pa.bool_()),
]
MANIFEST_SCHEMA = pa.schema(_MANIFEST_FIELDS)


class Lake:
    """The lake folder: its tables, its committed loads and its manifest."""

    def __init__(self, root: Path):
        self.root = root

    def folder(self, table: str) -> Path:
        return self.root / table

    def create(self) -> None:
        for table in TABLES:
            self.folder(table).mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One loader at a time: a second one waits, and says so."""
        with open(self.root / ".lock", "a+b") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.warning("another load_raw is writing to this lake: waiting for it to finish")
                fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def committed_loads(self) -> set[int]:
        return set(self._load_files("loads"))

    def _load_files(self, table: str) -> dict[int, list[Path]]:
        found: dict[int, list[Path]] = {}
        for path in self.folder(table).iterdir():
            match = _LOAD_FILE.match(path.name)
            if match:
                found.setdefault(int(match.group(1)), []).append(path)
        return found

    def remove_uncommitted(self) -> int:
        """Delete the files of loads that never committed (a killed run), and
        unfinished temporary files. Returns the highest load id seen."""
        committed = self.committed_loads()
        highest = max(committed, default=0)
        for table in TABLES:
            for load_id, paths in self._load_files(table).items():
                highest = max(highest, load_id)
                if load_id not in committed:
                    for path in paths:
                        log.info("removing %s: its load %d never committed", path.name, load_id)
                        path.unlink()
            for path in self.folder(table).glob(".tmp-*"):
                path.unlink()
        return highest

    def manifest(self) -> dict[str, ManifestRow]:
        """Each file's current manifest row: that of its latest committed load."""
        committed = self.committed_loads()
        current: dict[str, ManifestRow] = {}
        for load_id, paths in sorted(self._load_files("load_manifest").items()):
            if load_id not in committed:
                continue
            for path in paths:
                for row in pq.read_table(path).to_pylist():
                    current[row["source_file"]] = row
        return {name: row for name, row in current.items() if not row["is_removed"]}


class _TableFile:
    """A Parquet file of one table for one load, written under a hidden name
    and renamed into place by publish()."""

    def __init__(self, lake: Lake, table: str, schema: pa.Schema, load_id: int, part: int = 0):
        suffix = f"-{part}" if part else ""
        self.path = lake.folder(table) / f"load-{load_id:010d}{suffix}.parquet"
        self.temp = self.path.with_name(f".tmp-{self.path.name}")
        self.schema = schema
        self.writer: pq.ParquetWriter | None = None
        self.rows = 0

    def write(self, columns: Columns) -> None:
        if not columns[self.schema.names[0]]:
            return
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.temp, self.schema, compression="zstd")
        self.writer.write_table(pa.table(columns, schema=self.schema))
        self.rows += len(columns[self.schema.names[0]])

    def publish(self) -> None:
        if self.writer is None:
            return
        self.writer.close()
        with open(self.temp, "rb") as stream:
            os.fsync(stream.fileno())
        os.replace(self.temp, self.path)

    def discard(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.temp.unlink(missing_ok=True)


def jsonb_refusal(line: bytes) -> str | None:
    """Why PostgreSQL's jsonb would refuse a line that is valid JSON, or None:
    it holds a \\u0000 escape or a lone surrogate (a valid pair is accepted)."""
    value = json.loads(line)
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                return "unsupported Unicode escape sequence: \\u0000 cannot be converted to text"
            if any("\ud800" <= char <= "\udfff" for char in item):
                return "invalid Unicode surrogate: a lone surrogate escape"
    return None


def judge(
    numbered: list[tuple[int, bytes]], last_line: int | None
) -> tuple[list[tuple[int, bytes]], list[Reject]]:
    """Split candidate lines into those that land and rejects, as jsonb would."""
    landed: list[tuple[int, bytes]] = []
    rejects: list[Reject] = []
    for number, line in numbered:
        reject = classify(number, line, may_be_truncated=number == last_line)
        if reject is None and b"\\u" in line:
            try:
                why = jsonb_refusal(line)
            except RecursionError:
                why = None
            if why is not None:
                reject = Reject(number, line, JSONB_REFUSED, why)
        if reject is None:
            landed.append((number, line))
        else:
            rejects.append(reject)
    return landed, rejects


def plan_lake(
    lake: Lake, source: FileSource, files: list[SourceFile], *, verify: bool
) -> tuple[list[PlannedFile], list[SourceFile], list[tuple[str, str]]]:
    """(to load, unchanged, vanished (kind, name)) against the lake's manifest."""
    manifest = lake.manifest()
    to_load: list[PlannedFile] = []
    unchanged: list[SourceFile] = []
    kinds = {file.kind for file in files} or set(getattr(source, "roots", {}).keys())
    listed = {file.name for file in files}
    vanished = sorted(
        (row["source_kind"], name)
        for name, row in manifest.items()
        if row["source_kind"] in kinds and name not in listed
    )
    for file in files:
        previous = manifest.get(file.name)
        if previous is None:
            to_load.append(PlannedFile(file, None, replaces=False))
        elif (
            not verify
            and file.mtime_ns
            and (previous["size_bytes"], previous["mtime_ns"]) == (file.size, file.mtime_ns)
        ) or source.checksum(file) == previous["checksum"]:
            unchanged.append(file)
        else:
            to_load.append(PlannedFile(file, None, replaces=True))
    return to_load, unchanged, vanished


def load_batch(
    lake: Lake,
    source: FileSource,
    batch: list[PlannedFile],
    load_id: int,
    manifest: dict[str, ManifestRow],
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> list[FileResult]:
    """Write a batch of files of one kind as one load; its loads row last."""
    kind = batch[0].file.kind
    now = dt.datetime.now(_UTC)
    lines = _TableFile(lake, kind, LINE_SCHEMA, load_id)
    rejected = _TableFile(lake, "rejects", REJECT_SCHEMA, load_id)
    results: list[FileResult] = []
    try:
        for item in batch:
            result = FileResult(item.file, load_id=load_id, replaces=item.replaces)
            columns: Columns = {name: [] for name in LINE_SCHEMA.names}
            for chunk in read_file(source, item.file, result, None, max_line_bytes):
                candidates = chunk.numbered() + chunk.suspects
                last = None
                if chunk.ends_unterminated and candidates:
                    last = max(number for number, _ in candidates)
                landed, rejects = judge(candidates, last)
                rejects = sorted([*chunk.rejects, *rejects], key=lambda r: r.line_number)
                landed.sort()
                for number, line in landed:
                    columns["source_file"].append(item.file.name)
                    columns["line_number"].append(number)
                    columns["payload"].append(line.decode("utf-8"))
                    columns["loaded_at"].append(now)
                    columns["load_id"].append(load_id)
                if len(columns["source_file"]) >= ROW_GROUP_LINES:
                    lines.write(columns)
                    columns = {name: [] for name in LINE_SCHEMA.names}
                rejected.write(
                    {
                        "source_file": [item.file.name] * len(rejects),
                        "line_number": [r.line_number for r in rejects],
                        "line": [r.line for r in rejects],
                        "reason": [r.reason for r in rejects],
                        "detail": [r.detail for r in rejects],
                        "rejected_at": [now] * len(rejects),
                        "load_id": [load_id] * len(rejects),
                    }
                )
                result.rows += len(landed)
                result.rejects += len(rejects)
            lines.write(columns)
            results.append(result)
        lines.publish()
        rejected.publish()
        _write_manifest_and_commit(lake, kind, results, load_id, now, manifest)
    except BaseException:
        lines.discard()
        rejected.discard()
        raise
    return results


def _write_manifest_and_commit(
    lake: Lake,
    kind: str,
    results: list[FileResult],
    load_id: int,
    now: dt.datetime,
    manifest: dict[str, ManifestRow],
    removed: list[str] | None = None,
) -> None:
    entries = _TableFile(lake, "load_manifest", MANIFEST_SCHEMA, load_id)
    names = [r.file.name for r in results] + (removed or [])
    previous = [manifest.get(name) or {} for name in names]
    entries.write(
        {
            "source_file": names,
            "source_kind": [kind] * len(names),
            "checksum": [r.checksum for r in results] + [""] * len(removed or []),
            "size_bytes": [r.file.size for r in results] + [0] * len(removed or []),
            "mtime_ns": [r.file.mtime_ns or None for r in results] + [None] * len(removed or []),
            "row_count": [r.rows for r in results] + [0] * len(removed or []),
            "reject_count": [r.rejects for r in results] + [0] * len(removed or []),
            "loaded_at": [now] * len(names),
            "first_loaded_at": [row.get("first_loaded_at") or now for row in previous],
            "load_id": [load_id] * len(names),
            "is_removed": [False] * len(results) + [True] * len(removed or []),
        }
    )
    entries.publish()
    commit = _TableFile(lake, "loads", LOADS_SCHEMA, load_id)
    commit.write(
        {
            "load_id": [load_id],
            "source_kind": [kind],
            "file_count": [len(results)],
            "row_count": [sum(r.rows for r in results)],
            "reject_count": [sum(r.rejects for r in results)],
            "replaced_file_count": [sum(r.replaces for r in results) + len(removed or [])],
            "loaded_at": [now],
        }
    )
    commit.publish()  # the commit: from here on, readers see the load


def run(source: FileSource, lake_dir: Path, options: LoadOptions) -> Summary:
    """Land the feed `source` lists (a local folder or an s3:// prefix) into
    the lake; the same summary as run.run. One process: options.workers and
    options.replace_other_feed do not apply."""
    started = time.monotonic()
    files, skipped = list_feed(source)
    listed = time.monotonic()
    lake = Lake(lake_dir)
    lake.root.mkdir(parents=True, exist_ok=True)
    with lake.locked():
        lake.create()
        last_id = lake.remove_uncommitted()
        manifest = lake.manifest()
        to_load, unchanged, vanished = plan_lake(lake, source, files, verify=options.verify)
        unreadable = {name for name, _ in source.unreadable}
        unlisted = tuple(f"{name}/" for name in unreadable)
        vanished = [
            (kind, name)
            for kind, name in vanished
            if name not in unreadable and not name.startswith(unlisted)
        ]
        replaced = sum(item.replaces for item in to_load)
        work = list(batches(in_load_order(to_load), options.batch_bytes, options.batch_files))
        log.info(
            "%d files found: %d new, %d changed, %d already loaded; %d batches, lake %s",
            len(files),
            len(to_load) - replaced,
            replaced,
            len(unchanged),
            len(work),
            lake.root,
        )
        planned = time.monotonic()
        progress = Progress(
            total_files=len(to_load), total_bytes=sum(item.file.size for item in to_load)
        )
        load_ids: set[int] = set()
        for batch in work:
            last_id += 1
            results = load_batch(lake, source, batch, last_id, manifest, options.max_line_bytes)
            load_ids.add(last_id)
            progress.add(results)
            log_rejects(results, "rejects")
        if vanished and options.prune:
            for kind in sorted({kind for kind, _ in vanished}):
                last_id += 1
                names = [name for k, name in vanished if k == kind]
                _write_manifest_and_commit(
                    lake, kind, [], last_id, dt.datetime.now(_UTC), manifest, removed=names
                )
                load_ids.add(last_id)
            log.warning("pruned %d files no longer in the feed", len(vanished))
        elif vanished:
            log.warning(
                "%d loaded files are no longer in the feed (their rows stay in the lake; "
                "--prune removes them)",
                len(vanished),
            )
    finished = time.monotonic()
    return Summary(
        files_found=len(files),
        files_loaded=len(to_load),
        files_replaced=replaced,
        files_unchanged=len(unchanged),
        files_skipped=len(skipped),
        paths_unreadable=[name for name, _ in source.unreadable],
        files_vanished=[name for _, name in vanished],
        files_pruned=len(vanished) if options.prune else 0,
        event_rows=progress.rows_by_kind["events"],
        song_rows=progress.rows_by_kind["songs"],
        rejects=progress.rejects,
        loads=len(load_ids),
        first_load_id=min(load_ids, default=0),
        last_load_id=max(load_ids, default=0),
        workers=1,
        batches=len(work),
        seconds=finished - started,
        seconds_listing=listed - started,
        seconds_planning=planned - listed,
        seconds_loading=finished - planned,
        lake=str(lake.root),
    )
