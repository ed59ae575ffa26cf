"""One run of the loader into PostgreSQL: list the feed, plan, load the batches, summarize.

The order matters: the workers start first (they connect while the feed is
listed); the listing runs in a thread (listing.py). Once it has found a data
file (a store that cannot be listed, or a feed with nothing, is said before
the database is touched), the coordinator takes the load lock, waits for any
earlier loader's workers, reads the manifest, and then plans and hands out
the batches of each part of the listing as it comes: an object store lists
1,000 keys per request, and the first ones load while the rest are listed.
Files that vanished from the feed are known, and pruned, only at the end.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import psycopg

from sparkify.checkout import REPO_ROOT
from sparkify.loader.batch import Skipped, load_batch, prune, restamp, skipping
from sparkify.loader.contract import EVENTS, FEED_FOLDERS, LOAD_LOCK, SONGS
from sparkify.loader.errors import UsageError, described
from sparkify.loader.files import FileSource, LocalFileSource, SourceFile, whole_listing
from sparkify.loader.listing import BackgroundListing, Part
from sparkify.loader.options import LoadOptions
from sparkify.loader.parallel import WorkerPool, batch_cost, drain_earlier_workers
from sparkify.loader.planning import (
    Plan,
    PlannedFile,
    batches,
    check_other_feed,
    in_load_order,
    others_on_record,
    plan_part,
    read_manifest,
    vanished_files,
    vanished_message,
)
from sparkify.loader.progress import Progress
from sparkify.loader.reading import FileResult
from sparkify.loader.s3_source import DEFAULT_IN_FLIGHT, DEFAULT_STORE_TIMEOUT, S3FileSource
from sparkify.loader.s3_source import parse_url as parse_s3_url
from sparkify.loader.schema import ensure_schema
from sparkify.loader.session import connect
from sparkify.loader.summary import Summary

DEFAULT_DATA_DIR = REPO_ROOT / "data" / "sample"

Roots = Mapping[str, Path] | Mapping[str, str]

log = logging.getLogger("load_raw")


def resolve_roots(
    data_dir: Path | str | None, song_data: Path | str | None, log_data: Path | str | None
) -> dict[str, Path] | dict[str, str]:
    """Which folder (or s3:// prefix, kept as text) feeds which landing table."""
    explicit = {SONGS: song_data, EVENTS: log_data}
    given = [data_dir, *explicit.values()]
    if any(isinstance(value, str) for value in given):
        return _s3_roots(data_dir, explicit)
    paths = {kind: path for kind, path in explicit.items() if isinstance(path, Path)}
    if data_dir is None and paths:
        roots = paths
    else:
        base = data_dir if isinstance(data_dir, Path) else DEFAULT_DATA_DIR
        if not base.is_dir():
            hint = " (generate the sample with 'make data')" if data_dir is None else ""
            raise UsageError(f"no such folder: {base}{hint}")
        roots = {kind: paths.get(kind) or base / folder for kind, folder in FEED_FOLDERS.items()}
        missing = [kind for kind, path in roots.items() if not path.is_dir()]
        if len(missing) == len(roots):
            raise UsageError(f"{base} holds neither song_data/ nor log_data/")
        for kind in missing:
            log.warning("no %s folder at %s: loading the other one only", kind, roots.pop(kind))
    for path in roots.values():
        if not path.is_dir():
            raise UsageError(f"no such folder: {path}")
    return roots


def _s3_roots(
    data_dir: Path | str | None, explicit: dict[str, Path | str | None]
) -> dict[str, str]:
    """The s3:// prefixes of each kind; their being empty is found when listed."""
    given = [data_dir, *explicit.values()]
    if any(isinstance(value, Path) for value in given):
        raise UsageError("the feed is either in folders or in s3://, not both")
    if data_dir is None:
        return {kind: str(url) for kind, url in explicit.items() if url is not None}
    base = str(data_dir).rstrip("/")
    return {
        kind: str(explicit[kind] or f"{base}/{folder}") for kind, folder in FEED_FOLDERS.items()
    }


def source_for(
    roots: Roots,
    store_timeout: float = DEFAULT_STORE_TIMEOUT,
    in_flight: int = DEFAULT_IN_FLIGHT,
    processes: int = 1,
) -> LocalFileSource | S3FileSource:
    """Local folders, or s3:// prefixes (see resolve_roots: never a mix). For
    s3://, `in_flight` GETs at once in all, shared by the `processes` that read
    (at least one each)."""
    folders = {kind: root for kind, root in roots.items() if isinstance(root, Path)}
    if len(folders) == len(roots):
        return LocalFileSource(folders)
    return S3FileSource(
        {kind: parse_s3_url(str(root)) for kind, root in roots.items()},
        store_timeout,
        in_flight=max(1, in_flight // processes),
    )


def run(roots: Roots, options: LoadOptions) -> Summary:
    """Load the feed under `roots` into PostgreSQL (the connection from PG* variables)."""
    started = time.monotonic()
    source = source_for(roots, options.store_timeout, options.s3_in_flight, options.workers)
    with contextlib.ExitStack() as stack:
        pool = (
            stack.enter_context(WorkerPool(source, options.workers, options.max_line_bytes))
            if options.workers > 1
            else None
        )
        return _run(source, pool, options, started)


def _run(
    source: LocalFileSource | S3FileSource,
    pool: WorkerPool | None,
    options: LoadOptions,
    started: float,
) -> Summary:
    listing = BackgroundListing(source)  # goes on while this process plans and loads
    found = listing.wait_for_files()
    if not found:
        said_listing(source, *listing.whole())
    with connect("sparkify load_raw") as conn, described():
        ensure_schema(conn)
        _take_load_lock(conn)
        drain_earlier_workers(conn)
        manifest = read_manifest(conn)
        load_plan = Plan(to_load=[], unchanged=[])
        progress = Progress(total_files=0, total_bytes=0, listing=True)
        unread: list[Skipped] = []
        handed_out = 0
        seconds_planning = 0.0

        def planned_batches() -> Iterator[list[PlannedFile]]:
            """Each part of the listing planned as it comes, and each full batch
            handed out at once; the files left when the listing ends, spread
            (_limits). All of it at once if the database holds another feed's
            files, so that replacing them is refused before anything is written."""
            nonlocal handed_out, seconds_planning
            pending: list[PlannedFile] = []  # planned, not yet in a full batch
            # An object costs a round trip, not its few bytes: the last small
            # files of a store are spread over every worker, not one batch.
            spread_over = len(pool.processes) if pool and isinstance(source, S3FileSource) else 1
            parts: Iterable[Part] = listing.parts()
            if others_on_record(source, manifest):
                parts = [whole_listing(parts)]
            for files, _ in parts:
                began = time.monotonic()
                part = plan_part(source, files, manifest, verify=options.verify)
                check_other_feed(
                    part.other_feed,
                    options.replace_other_feed,
                    "another database (PGDATABASE=another_name; the embedded server creates it)",
                )
                restamp(conn, part.restamped)
                load_plan.add(part)
                log_skipped(part.unreadable)
                unread.extend(part.unreadable)
                progress.expect(part.to_load)
                work = list(batches(in_load_order(pending + part.to_load), *_limits(options)))
                pending = work.pop() if work else []  # perhaps not full yet
                seconds_planning += time.monotonic() - began
                handed_out += len(work)
                yield from sorted(work, key=batch_cost, reverse=True)
            work = list(batches(pending, *_limits(options, spread_over, len(pending))))
            handed_out += len(work)
            yield from sorted(work, key=batch_cost, reverse=True)
            progress.listing = False
            files, skipped = listing.whole()
            if found:  # said above otherwise
                said_listing(source, files, skipped)
            _say_found(len(files), load_plan, handed_out, pool)

        def committed(worker: object, results: list[FileResult], skipped: list[Skipped]) -> None:
            progress.add(results, worker, len(skipped))
            log_rejects(results, "raw.rejects")
            log_skipped(skipped)
            unread.extend(skipped)

        if pool is None:  # in this process, on this connection
            for batch in planned_batches():
                committed(
                    None,
                    *skipping(
                        lambda part: load_batch(
                            conn,
                            source,
                            part,
                            on_read=lambda n: progress.reading(None, n),
                            max_line_bytes=options.max_line_bytes,
                        ),
                        batch,
                    ),
                )
        else:
            pool.run(planned_batches(), committed, progress.reading)
        files, skipped = listing.whole()
        load_plan.vanished = vanished_files(source, {file.name for file in files}, manifest)
        prune_loads = _vanished(conn, load_plan.vanished, options.prune)
    finished = time.monotonic()
    load_ids = progress.load_ids | set(prune_loads)
    unread_names = {name for name, _ in unread}
    listed = listing.finished_at or finished
    return Summary(
        files_found=len(files),
        files_loaded=progress.files,
        files_replaced=sum(
            item.replaces for item in load_plan.to_load if item.file.name not in unread_names
        ),
        files_unchanged=len(load_plan.unchanged),
        files_skipped=len(skipped),
        paths_unreadable=[name for name, _ in source.unreadable],
        files_vanished=[name for _, name in load_plan.vanished],
        files_pruned=len(load_plan.vanished) if options.prune else 0,
        event_rows=progress.rows_by_kind[EVENTS],
        song_rows=progress.rows_by_kind[SONGS],
        rejects=progress.rejects,
        loads=len(load_ids),
        first_load_id=min(load_ids, default=0),
        last_load_id=max(load_ids, default=0),
        workers=_workers_used(handed_out, pool),
        batches=handed_out,
        seconds=finished - started,
        seconds_listing=listed - started,
        seconds_planning=seconds_planning,
        seconds_loading=finished - progress.started,
        files_unreadable=sorted(unread),
    )


def _workers_used(batches: int, pool: WorkerPool | None) -> int:
    return min(len(pool.processes), batches) if pool and batches > 1 else 1


def _say_found(files: int, load_plan: Plan, batches: int, pool: WorkerPool | None) -> None:
    """Once the whole feed is listed (its first batches may have committed)."""
    replaced = sum(item.replaces for item in load_plan.to_load)
    workers = _workers_used(batches, pool)
    log.info(
        "%d files found: %d new, %d changed, %d already loaded; %d batches, %d %s",
        files,
        len(load_plan.to_load) - replaced,
        replaced,
        len(load_plan.unchanged),
        batches,
        workers,
        "worker" if workers == 1 else "workers",
    )


def _limits(options: LoadOptions, spread_over: int = 1, remaining: int = 0) -> tuple[int, int]:
    """A batch's most bytes and files; the `remaining` files (the last ones
    listed) spread over `spread_over` workers."""
    if spread_over == 1:
        return options.batch_bytes, options.batch_files
    return options.batch_bytes, min(options.batch_files, max(1, -(-remaining // spread_over)))


def list_feed(source: FileSource) -> tuple[list[SourceFile], list[str]]:
    """The feed's data files and the names skipped as not data (said_listing)."""
    files, skipped = source.list_files()
    said_listing(source, files, skipped)
    return files, skipped


def said_listing(source: FileSource, files: list[SourceFile], skipped: list[str]) -> None:
    """What the listing skipped and could not list is said, and an s3:// feed
    with nothing is refused."""
    if isinstance(source, S3FileSource):
        _check_s3_roots(source, files)
    for name in skipped:
        what = (
            "a folder marker, not a file" if name.endswith("/") else "not a .json or .json.gz file"
        )
        log.warning("skipped %s: %s", name, what)
    for name, why in source.unreadable:
        log.warning("skipped %s: cannot be listed (%s); the rest is loaded", name, why)


def log_skipped(skipped: list[Skipped]) -> None:
    """One line per listed file that could not be read and was left out of its load."""
    for name, why in skipped:
        log.warning("skipped %s: %s; the rest is loaded", name, why)


def log_rejects(results: list[FileResult], where: str) -> None:
    for result in results:
        if result.rejects:
            log.warning("%s: %d rejected lines (see %s)", result.file.name, result.rejects, where)


def _check_s3_roots(source: S3FileSource, files: list[SourceFile]) -> None:
    """Like missing folders: a prefix with no object at all is said, and if no
    prefix holds one it is a usage error (a typo in the URL, most likely)."""
    listed = {file.kind for file in files}
    empty = [kind for kind in source.roots if kind not in listed]
    if len(empty) == len(source.roots):
        where = " nor ".join(str(source.roots[kind]) for kind in sorted(empty))
        raise UsageError(f"no .json or .json.gz object under {where}")
    for kind in empty:
        log.warning("no %s objects under %s: loading the other one only", kind, source.roots[kind])


def _vanished(
    conn: psycopg.Connection[Any], vanished: list[tuple[str, str]], prune_them: bool
) -> list[int]:
    """Say which loaded files are no longer in the feed; with --prune, remove
    them (one load per kind). Returns the prune loads' ids."""
    if not vanished:
        return []
    if not prune_them:
        log.warning(vanished_message(vanished, pruned=False, kept_in="raw"))
        return []
    load_ids = []
    for kind in sorted({kind for kind, _ in vanished}):
        load_ids.append(prune(conn, kind, [name for k, name in vanished if k == kind]))
    log.warning(vanished_message(vanished, pruned=True, kept_in="raw"))
    return load_ids


def _take_load_lock(conn: psycopg.Connection[Any]) -> None:
    """One loader at a time per database: a second loader waits, and says so.

    Only loaders take this lock. Readers (dbt) do not wait for it and need not:
    a load's rows become visible in the same commit as its raw.loads row.
    """
    row = conn.execute("select pg_try_advisory_lock(hashtext(%s))", [LOAD_LOCK]).fetchone()
    if not (row and row[0]):
        log.warning("another load_raw is running against this database: waiting for it to finish")
        conn.execute("select pg_advisory_lock(hashtext(%s))", [LOAD_LOCK])
