"""Land the feed as Apache Iceberg tables in a lake, for Spark (`load_raw.py --lake`).

The same contract as the PostgreSQL landing tables (schema.py), kept with
Iceberg's table commits instead of one transaction:

- Raw is raw: every non-blank line (a song file: its one document) lands as its
  text, with its file's name, its line number, when it landed and its load id;
  a line that cannot be a JSON object is a reject with its bytes and reason.
  The lines are judged as PostgreSQL's jsonb would judge them (lines.py's
  triage, then Python's parser standing in for jsonb's, with jsonb's own
  refusals: a \\u0000 escape, a lone surrogate), so both engines land the
  same rows.
- One batch is one load. Iceberg commits one table at a time, atomically: a
  load appends its lines, then its rejects, then its manifest rows, and last
  its row in loads, the commit readers see. Readers take only rows of loads
  that are in loads (the views of schema raw over the tables of raw_lake:
  macros/landing.sql), so a load killed between two commits is invisible; the
  next run deletes its rows (a row-level delete: loads run one after another,
  so they are the rows of loads after the last in loads).
- Exactly once: load_manifest keeps each file's checksum, size and stamp
  (an object's ETag included) and its feed root; the run plans with
  planning.plan_files, as PostgreSQL's loader does, so a re-run lands only new
  or changed files, and a file of another feed is refused unless asked. A
  changed file's new version is a new load; readers take each file's rows
  from the load of its current manifest row only, so the old version's rows
  drop out with the new load's commit. --prune writes a manifest row that
  marks the file removed. A file whose content is unchanged under a new stamp
  is restamped: a load of manifest rows only, which keep the load_id of the
  file's rows and record their own load in recorded_by_load.
- One loader at a time per lake: an advisory lock in the catalog's database
  (lake_store.py).

Where things are (lake_catalog.py): the catalog's rows in PostgreSQL
(database sparkify_lake_catalog); each table's files under
LAKE/raw_lake/<table>/ (data/*.parquet, metadata/*.json and *.avro), LAKE a
folder or an s3:// prefix.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from sparkify.loader import lake_catalog
from sparkify.loader.batch import Skipped, skipping
from sparkify.loader.columns import LINE_COLUMNS, LOADS_COLUMNS, REJECT_COLUMNS, Column
from sparkify.loader.contract import JSONB_REFUSED, SOURCE_KINDS
from sparkify.loader.errors import ServerError, UsageError
from sparkify.loader.files import FileSource, SourceError, SourceFile, UnreadableFile
from sparkify.loader.lines import DEFAULT_MAX_LINE_BYTES, Reject, classify
from sparkify.loader.options import LoadOptions
from sparkify.loader.planning import (
    ManifestEntry,
    Plan,
    PlannedFile,
    batches,
    check_other_feed,
    in_load_order,
    plan_files,
    vanished_message,
)
from sparkify.loader.progress import Progress
from sparkify.loader.reading import FileResult, read_file
from sparkify.loader.run import list_feed, log_rejects, log_skipped
from sparkify.loader.s3_source import UNREACHABLE, ObjectStoreError
from sparkify.loader.summary import Summary
from sparkify.messages import one_line

if TYPE_CHECKING:  # pyiceberg is imported when a lake is loaded, not with the schemas
    from sparkify.loader.lake_store import LakeStore

log = logging.getLogger("load_raw")

# Lines are handed to the table's writer in record batches of about this many.
ROW_GROUP_LINES = 100_000
_UTC = dt.UTC

# A manifest row as read back, and a table's columns as written.
ManifestRow = dict[str, Any]
Columns = dict[str, list[Any]]

_TIMESTAMP = pa.timestamp("us", tz="UTC")
# PostgreSQL's types of the landing tables' columns (columns.py), as Arrow's
# (Iceberg's: string, binary, int, long, timestamptz). A payload is jsonb in
# PostgreSQL, its text here: Spark parses it when read.
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
    # An object's ETag (with size and mtime_ns its stamp); null for a local file.
    ("etag", pa.string()),
    # Where the file was loaded from (planning: one feed per lake).
    ("feed_root", pa.string()),
    ("row_count", pa.int32()),
    ("reject_count", pa.int32()),
    ("loaded_at", _TIMESTAMP),
    ("first_loaded_at", _TIMESTAMP),
    ("load_id", pa.int64()),
    # A --prune load's row for a file no longer in the feed.
    ("is_removed", pa.bool_()),
    # The load that wrote this row: load_id, or a later load that only
    # restamped the file (its rows stay those of load_id).
    ("recorded_by_load", pa.int64()),
]
MANIFEST_SCHEMA = pa.schema(_MANIFEST_FIELDS)
# Each landing table's columns, in lake_catalog.TABLES' order.
SCHEMAS = {
    **{kind: LINE_SCHEMA for kind in SOURCE_KINDS},
    "rejects": REJECT_SCHEMA,
    "load_manifest": MANIFEST_SCHEMA,
    "loads": LOADS_SCHEMA,
}
# The column that names a row's load, in each table a killed load may leave
# rows in (a manifest row belongs to the load that recorded it).
UNCOMMITTED_BY = {
    **{kind: "load_id" for kind in SOURCE_KINDS},
    "rejects": "load_id",
    "load_manifest": "recorded_by_load",
}


@contextlib.contextmanager
def writing(lake: Path | str) -> Iterator[None]:
    """Around a whole run: an s3:// lake that fails to answer (pyarrow's S3
    client has tried each request 3 times) ends the run as the S3 source's
    failures do: an ObjectStoreError (exit 4), nothing of the load under way
    visible to readers."""
    if not lake_catalog.is_s3(lake):
        yield
        return
    try:
        yield
    except (SourceError, UnreadableFile):
        raise  # the feed's, not the lake's: a skipped or corrupt file, an S3 feed's failure
    except OSError as exc:
        raise ObjectStoreError(
            UNREACHABLE,
            f"the lake {lake} could not be read or written: {one_line(exc)} (check "
            "AWS_ENDPOINT_URL and the network); the load under way is not visible, the "
            "next run removes what it wrote: re-run to finish",
        ) from exc


class Lake:
    """The lake's landing tables (Iceberg, lake_store.py): its committed loads,
    its manifest, and the commits of a load."""

    def __init__(self, store: LakeStore):
        self.store = store
        self.tables = store.tables(SCHEMAS)

    def committed_loads(self) -> set[int]:
        loads = self.tables["loads"].scan(selected_fields=("load_id",)).to_arrow()
        return set(loads.column("load_id").to_pylist())

    def remove_uncommitted(self) -> int:
        """Delete the rows of loads that never committed (a run killed between
        its tables' commits, before its loads row): row-level deletes, each an
        Iceberg commit of its own, of rows no reader takes. Loads run one after
        another under the lake's lock, so those are the loads after the last
        committed one. Returns the highest load id seen, committed or not, so
        that no id is used twice."""
        highest = max(self.committed_loads(), default=0)
        seen = highest
        for table, column in UNCOMMITTED_BY.items():
            after = f"{column} > {highest}"  # pyiceberg's row filter syntax
            stray = self.tables[table].scan(row_filter=after, selected_fields=(column,)).to_arrow()
            if stray.num_rows == 0:
                continue
            ids = sorted(set(stray.column(column).to_pylist()))
            log.info(
                "removing %d rows of %s: their loads (%s) never committed",
                stray.num_rows,
                table,
                ", ".join(map(str, ids)),
            )
            seen = max(seen, ids[-1])
            self.tables[table].delete(after)
        return seen

    def manifest(self) -> dict[str, ManifestRow]:
        """Each file's current manifest row: that of its latest committed load."""
        committed = self.committed_loads()
        rows = self.tables["load_manifest"].scan().to_arrow().to_pylist()
        current: dict[str, ManifestRow] = {}
        for row in sorted(rows, key=lambda row: row["recorded_by_load"]):
            if row["recorded_by_load"] in committed:
                current[row["source_file"]] = row
        return {name: row for name, row in current.items() if not row["is_removed"]}

    def append(self, table: str, rows: pa.Table) -> None:
        """Append rows to one table: one Iceberg commit."""
        if rows.num_rows:
            self.tables[table].append(rows)


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


def manifest_entries(manifest: dict[str, ManifestRow]) -> dict[str, ManifestEntry]:
    """The lake's manifest as planning reads PostgreSQL's: a lake written
    before etag and feed_root were kept has neither ('' and None, as
    PostgreSQL reads its own older rows)."""
    return {
        name: ManifestEntry(
            checksum=row["checksum"],
            size=row["size_bytes"],
            mtime_ns=row["mtime_ns"],
            etag=row.get("etag") or "",
            kind=row["source_kind"],
            feed_root=row.get("feed_root"),
        )
        for name, row in manifest.items()
    }


def plan(
    manifest: dict[str, ManifestRow], source: FileSource, files: list[SourceFile], *, verify: bool
) -> Plan:
    """planning.plan_files against the lake's manifest (Lake.manifest)."""
    return plan_files(source, files, manifest_entries(manifest), verify=verify)


def load_batch(
    lake: Lake,
    source: FileSource,
    batch: list[PlannedFile],
    load_id: int,
    manifest: dict[str, ManifestRow],
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> list[FileResult]:
    """Land a batch of files of one kind as one load: its lines, its rejects,
    its manifest rows, then its loads row (the commit readers see), each
    table's rows one Iceberg commit. The lines stream into the table's data
    files as they are read (pyiceberg bins them into files), so memory stays
    flat for a big file; nothing is committed until every file was read, so a
    file skipped midway leaves no row."""
    kind = batch[0].file.kind
    now = dt.datetime.now(_UTC)
    results: list[FileResult] = []
    rejected: list[pa.Table] = []

    def line_batches() -> Iterator[pa.RecordBatch]:
        with source.reading_ahead([item.file for item in batch]):
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
                        yield pa.record_batch(columns, schema=LINE_SCHEMA)
                        columns = {name: [] for name in LINE_SCHEMA.names}
                    if rejects:
                        rejected.append(_reject_rows(item.file.name, rejects, now, load_id))
                    result.rows += len(landed)
                    result.rejects += len(rejects)
                if columns["source_file"]:
                    yield pa.record_batch(columns, schema=LINE_SCHEMA)
                results.append(result)

    lines = lake.tables[kind].transaction()
    lines.append(pa.RecordBatchReader.from_batches(LINE_SCHEMA, line_batches()))
    if any(result.rows for result in results):
        lines.commit_transaction()
    if rejected:
        lake.append("rejects", pa.concat_tables(rejected))
    rows = _landed_rows(results, load_id, now, manifest, source.feed_root(kind))
    _commit(lake, kind, rows, load_id, now, results)
    return results


def _reject_rows(name: str, rejects: list[Reject], now: dt.datetime, load_id: int) -> pa.Table:
    return pa.table(
        {
            "source_file": [name] * len(rejects),
            "line_number": [r.line_number for r in rejects],
            "line": [r.line for r in rejects],
            "reason": [r.reason for r in rejects],
            "detail": [r.detail for r in rejects],
            "rejected_at": [now] * len(rejects),
            "load_id": [load_id] * len(rejects),
        },
        schema=REJECT_SCHEMA,
    )


def _landed_rows(
    results: list[FileResult],
    load_id: int,
    now: dt.datetime,
    manifest: dict[str, ManifestRow],
    feed_root: str,
) -> list[ManifestRow]:
    """The manifest rows of files this load landed."""
    return [
        {
            "source_file": r.file.name,
            "source_kind": r.file.kind,
            "checksum": r.checksum,
            "size_bytes": r.file.size,
            "mtime_ns": r.file.mtime_ns or None,
            "etag": r.file.etag or None,
            "feed_root": feed_root,
            "row_count": r.rows,
            "reject_count": r.rejects,
            "loaded_at": now,
            "first_loaded_at": manifest.get(r.file.name, {}).get("first_loaded_at") or now,
            "load_id": load_id,
            "is_removed": False,
            "recorded_by_load": load_id,
        }
        for r in results
    ]


def _removed_rows(
    names: list[str], load_id: int, now: dt.datetime, manifest: dict[str, ManifestRow]
) -> list[ManifestRow]:
    """The rows of a prune load: each file marked removed."""
    return [
        {
            **manifest[name],
            "checksum": "",
            "size_bytes": 0,
            "mtime_ns": None,
            "etag": None,
            "row_count": 0,
            "reject_count": 0,
            "loaded_at": now,
            "load_id": load_id,
            "is_removed": True,
            "recorded_by_load": load_id,
        }
        for name in names
    ]


def _restamped_rows(
    files: list[SourceFile], load_id: int, manifest: dict[str, ManifestRow]
) -> list[ManifestRow]:
    """The rows of a restamp load: the file's current row under its new size
    and stamp. Its rows stay those of the load that landed them (load_id)."""
    return [
        {
            **manifest[file.name],
            "size_bytes": file.size,
            "mtime_ns": file.mtime_ns or None,
            "etag": file.etag or None,
            "recorded_by_load": load_id,
        }
        for file in files
    ]


def _commit(
    lake: Lake,
    kind: str,
    rows: list[ManifestRow],
    load_id: int,
    now: dt.datetime,
    results: list[FileResult] | None = None,
) -> None:
    """Append a load's manifest rows, then its loads row: the commit readers
    see (the views of schema raw take only rows of loads in loads). `results`:
    the files it landed (none for a prune or a restamp)."""
    results = results or []
    lake.append("load_manifest", pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA))
    removed = sum(bool(row["is_removed"]) for row in rows)
    marker = {
        "load_id": [load_id],
        "source_kind": [kind],
        "file_count": [len(results)],
        "row_count": [sum(r.rows for r in results)],
        "reject_count": [sum(r.rejects for r in results)],
        "replaced_file_count": [sum(r.replaces for r in results) + removed],
        "loaded_at": [now],
    }
    lake.append("loads", pa.table(marker, schema=LOADS_SCHEMA))  # from here on, readers see it


def _restamp(
    lake: Lake, files: list[SourceFile], last_id: int, manifest: dict[str, ManifestRow]
) -> list[int]:
    """Record the new stamps of files whose content did not change: one load
    of manifest rows per kind, with ids after last_id. Returns their ids."""
    load_ids = []
    for kind in sorted({file.kind for file in files}):
        last_id += 1
        rows = _restamped_rows([file for file in files if file.kind == kind], last_id, manifest)
        _commit(lake, kind, rows, last_id, dt.datetime.now(_UTC))
        load_ids.append(last_id)
    return load_ids


def _prune(
    lake: Lake, vanished: list[tuple[str, str]], last_id: int, manifest: dict[str, ManifestRow]
) -> list[int]:
    """Mark vanished files removed: one load per kind, with ids after last_id."""
    load_ids = []
    for kind in sorted({kind for kind, _ in vanished}):
        last_id += 1
        now = dt.datetime.now(_UTC)
        rows = _removed_rows([name for k, name in vanished if k == kind], last_id, now, manifest)
        _commit(lake, kind, rows, last_id, now)
        load_ids.append(last_id)
    return load_ids


def landed_manifest(lake_location: Path | str, store_timeout: float) -> dict[str, ManifestRow]:
    """Each landed file's current manifest row, for planning without loading
    (load_raw.py --plan). A lake never loaded has empty tables: nothing landed."""
    from sparkify.loader.lake_store import LakeStore

    return Lake(LakeStore(lake_location, store_timeout)).manifest()


def run(source: FileSource, lake_location: Path | str, options: LoadOptions) -> Summary:
    """Land the feed `source` lists (a local folder or an s3:// prefix) into
    the lake; the same plan, refusals and summary as run.run. One process:
    options.workers does not apply. A failure of the catalog's database is a
    ServerError: one line, what to do."""
    try:
        from pyiceberg.exceptions import CommitFailedException
        from sqlalchemy.exc import SQLAlchemyError
    except ImportError as exc:  # requirements-spark.txt not installed
        raise UsageError(
            f"--lake needs pyiceberg ({one_line(exc)}): run 'make spark-deps', or "
            "pip install -r requirements-spark.txt"
        ) from exc
    try:
        with writing(lake_location):  # its reads too
            return _run(source, lake_location, options)
    except (SQLAlchemyError, CommitFailedException) as exc:
        raise ServerError(
            f"the lake catalog failed: {one_line(exc)}; the load under way is not visible "
            "to readers and the next run removes what it wrote: re-run to finish"
        ) from exc


def _run(source: FileSource, lake_location: Path | str, options: LoadOptions) -> Summary:
    started = time.monotonic()
    files, skipped = list_feed(source)
    listed = time.monotonic()
    from sparkify.loader.lake_store import LakeStore

    store = LakeStore(lake_location, options.store_timeout)
    with store.locked():
        lake = Lake(store)
        last_id = lake.remove_uncommitted()
        manifest = lake.manifest()
        load_plan = plan(manifest, source, files, verify=options.verify)
        check_other_feed(
            load_plan.other_feed, options.replace_other_feed, "another lake (--lake another_folder)"
        )
        load_ids = set(_restamp(lake, load_plan.restamped, last_id, manifest))
        last_id = max(load_ids, default=last_id)
        replaced = sum(item.replaces for item in load_plan.to_load)
        work = list(
            batches(in_load_order(load_plan.to_load), options.batch_bytes, options.batch_files)
        )
        log.info(
            "%d files found: %d new, %d changed, %d already loaded; %d batches, lake %s",
            len(files),
            len(load_plan.to_load) - replaced,
            replaced,
            len(load_plan.unchanged),
            len(work),
            lake_location,
        )
        planned = time.monotonic()
        progress = Progress(
            total_files=len(load_plan.to_load),
            total_bytes=sum(item.file.size for item in load_plan.to_load),
        )
        unread: list[Skipped] = list(load_plan.unreadable)
        log_skipped(unread)
        for batch in work:
            last_id += 1
            # A file that cannot be read at all (gone since it was listed,
            # archived) is left out of its load and named, as on PostgreSQL.
            load = functools.partial(
                load_batch,
                lake,
                source,
                load_id=last_id,
                manifest=manifest,
                max_line_bytes=options.max_line_bytes,
            )
            results, skipped_files = skipping(load, batch)
            if results:
                load_ids.add(last_id)
            progress.add(results, skipped=len(skipped_files))
            log_rejects(results, "rejects")
            log_skipped(skipped_files)
            unread.extend(skipped_files)
        vanished = load_plan.vanished
        if vanished and options.prune:
            load_ids.update(_prune(lake, vanished, last_id, manifest))
        if vanished:
            log.warning(vanished_message(vanished, pruned=options.prune, kept_in="the lake"))
    finished = time.monotonic()
    unread_names = {name for name, _ in unread}
    return Summary(
        files_found=len(files),
        files_loaded=progress.files,
        files_replaced=sum(
            item.replaces for item in load_plan.to_load if item.file.name not in unread_names
        ),
        files_unchanged=len(load_plan.unchanged),
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
        files_unreadable=sorted(unread),
        lake=str(lake_location),
    )
