"""Raw-load the Sparkify feed into PostgreSQL: every file, every line, nothing parsed.

Song files (song_data/**.json, one JSON object each) land in raw.songs, event
logs (log_data/**.json, JSON lines) in raw.events, as jsonb, one row per object,
with the file's name and line number. A line that cannot be jsonb goes to
raw.rejects with the reason. raw.load_manifest remembers each file's checksum, so
a re-run loads only new or changed files, and a changed file replaces its rows.

Files are loaded in batches, one transaction each (a batch's rows, rejects and
manifest rows commit together), by --workers processes at once, each with its
own connection and its own files. Each batch is one load: raw.loads gets a row
(its load id and counts) in the same transaction, and every row, reject and
manifest entry it writes carries that load_id, so a reader that sees a load in
raw.loads sees all of its rows. Many small song files share a batch; a big
log file is streamed in blocks, so memory stays flat whatever its size.

The connection comes from the standard libpq variables (PGHOST, PGPORT, PGUSER,
PGPASSWORD or ~/.pgpass, PGDATABASE). Passwords are never accepted as arguments.

The feed may be in object storage: --data-dir s3://bucket/prefix (or
--song-data/--log-data as s3:// URLs), with credentials and endpoint from the
standard AWS variables and files (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_SESSION_TOKEN, AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL or
AWS_ENDPOINT_URL_S3); see docs/operations.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg

from sparkify.loader.errors import ServerError, UsageError, describe
from sparkify.loader.files import UnreadableFile
from sparkify.loader.lines import DEFAULT_MAX_LINE_BYTES
from sparkify.loader.options import BATCH_MAX_BYTES, BATCH_MAX_FILES, LoadOptions
from sparkify.loader.parallel import WorkerFailed
from sparkify.loader.planning import plan
from sparkify.loader.run import Roots, list_feed, resolve_roots, run, source_for
from sparkify.loader.s3_source import (
    DEFAULT_IN_FLIGHT,
    DEFAULT_STORE_TIMEOUT,
    DENIED,
    NO_BUCKET,
    UNREACHABLE,
    ObjectStoreError,
)
from sparkify.loader.s3_source import is_url as is_s3_url
from sparkify.loader.s3_source import parse_url as parse_s3_url
from sparkify.loader.session import connect
from sparkify.loader.summary import Summary
from sparkify.messages import one_line


@dataclass(frozen=True)
class ExitCode:
    code: int
    kinds: tuple[str, ...]  # the kinds of outcome that end with this code
    meaning: str  # for --help and docs/operations.md


# The one table of exit codes, keyed by the kind of outcome (an error's kind:
# see KIND_OF); --help prints it, docs/operations.md repeats it.
EXIT_CODES = (
    ExitCode(
        0,
        ("ok",),
        "every file was loaded or was already loaded (rejected lines are not an error: "
        "they are in raw.rejects, counted in the summary); the summary says how many "
        "loads (rows in raw.loads) this run committed, and their load ids",
    ),
    ExitCode(
        1,
        ("database", "file"),
        "the database could not be reached or refused the load (the message names the "
        "SQLSTATE and what to do: a lost connection, a full disk, a cancelled "
        "statement...), a file could not be read (a corrupt .json.gz: fix or move it), "
        "or a worker failed (the other workers are stopped; what they had committed "
        "stays, re-run to finish)",
    ),
    ExitCode(
        2,
        ("usage",),
        "usage error: a folder that does not exist, or no data folder at all; or the feed "
        "would replace files loaded from another feed (another folder or s3:// prefix): "
        "load it into another database (PGDATABASE=...) or, with --lake, another lake folder; "
        "or pass --replace-other-feed",
    ),
    ExitCode(
        3,
        ("skipped",),
        "loaded, but some paths or files were skipped: a folder or file that could not be "
        "listed (no permission, a path over the system's limit), or a listed file or "
        "object that could not be read (gone since it was listed, archived, rewritten "
        "while read), each named in the log and in --json (paths_unreadable, "
        "files_unreadable); everything else was loaded, and the next run tries them again",
    ),
    ExitCode(
        4,
        (UNREACHABLE,),
        "s3:// feed: the store could not be reached or did not answer (the endpoint is "
        "down, does not speak S3, or kept failing or silent for --store-timeout seconds); "
        "re-run to finish",
    ),
    ExitCode(5, (DENIED,), "s3:// feed: the store refused the credentials or the access"),
    ExitCode(6, (NO_BUCKET,), "s3:// feed: no such bucket"),
    ExitCode(
        130,
        ("interrupted",),
        "interrupted (Ctrl-C): the batch under way was rolled back, re-run to finish",
    ),
    ExitCode(
        143,
        ("terminated",),
        "terminated (SIGTERM): the batch under way was rolled back, re-run to finish",
    ),
)
EXIT_BY_KIND = {kind: exit.code for exit in EXIT_CODES for kind in exit.kinds}


def _exit_codes_help() -> str:
    lines = ["exit codes:"]
    for exit in EXIT_CODES:
        text = textwrap.wrap(exit.meaning, 74, break_on_hyphens=False)
        lines.append(f"  {exit.code:<4} {text[0]}")
        lines.extend(f"       {line}" for line in text[1:])
    return "\n".join(lines)


EPILOG = f"""\
examples:
  python ingest/load_raw.py                          # the generated sample in data/sample
  python ingest/load_raw.py --data-dir /data/sparkify
  python ingest/load_raw.py --log-data /mnt/feed/logs # only new event logs

{_exit_codes_help()}

On any failure, the batches already committed stay, each a complete load in
raw.loads; a batch under way leaves no rows and no raw.loads row.
"""

log = logging.getLogger("load_raw")


class Terminated(SystemExit):
    """SIGTERM: unwinds like Ctrl-C (batches under way roll back); exit code 143.

    A SystemExit, because psycopg treats that (and KeyboardInterrupt) as an
    interruption: it cancels the statement under way, so the transaction can
    roll back cleanly."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated(EXIT_BY_KIND["terminated"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="load_raw.py",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data-dir",
        type=_location,
        help="folder or s3://bucket/prefix holding song_data/ and log_data/ "
        "(default: data/sample, the generated sample)",
    )
    parser.add_argument(
        "--song-data",
        type=_location,
        help="folder or s3:// prefix of song files (default: DATA_DIR/song_data)",
    )
    parser.add_argument(
        "--log-data",
        type=_location,
        help="folder or s3:// prefix of event logs (default: DATA_DIR/log_data)",
    )
    parser.add_argument(
        "-w",
        "--workers",
        type=_positive,
        default=default_workers(),
        help="processes loading at once, each with its own connection "
        "(default: the CPU count, %(default)s here)",
    )
    parser.add_argument(
        "--batch-files",
        type=_positive,
        default=BATCH_MAX_FILES,
        help="at most this many files per transaction (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-mb",
        type=_positive,
        default=BATCH_MAX_BYTES // 2**20,
        help="at most this many MB of files per transaction; a bigger file goes alone "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--max-line-bytes",
        type=_size,
        default=DEFAULT_MAX_LINE_BYTES,
        help="a longer line is a reject (too_long); suffixes K, M, G "
        "(default: %(default)s, 64M: the warehouse is tested to build with it)",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="hash every file already loaded, even one whose size and modification "
        "time are as recorded (slower: reads the whole feed; catches a file changed "
        "by cp -p, rsync -t or a restore)",
    )
    parser.add_argument(
        "--prune",
        action="store_true",
        help="remove the rows, rejects and manifest rows of loaded files that are no "
        "longer in the feed (without it they stay, and are counted and named)",
    )
    parser.add_argument(
        "--replace-other-feed",
        action="store_true",
        help="replace files of the same name that were loaded from another feed "
        "(another folder or s3:// prefix); without it the load is refused",
    )
    parser.add_argument(
        "--lake",
        type=_location,
        default=os.environ.get("SPARKIFY_LAKE") or None,
        help="land the feed as Apache Iceberg tables in this folder or s3://bucket/prefix, "
        "for Spark (dbt --target spark), instead of into PostgreSQL; the same contract, "
        "the catalog in PostgreSQL (docs/loader.md). Default: SPARKIFY_LAKE, if set",
    )
    parser.add_argument(
        "--store-timeout",
        type=_seconds,
        default=DEFAULT_STORE_TIMEOUT,
        metavar="SECONDS",
        help="s3:// feed: how long a request or an object's stream may keep failing or "
        "stay silent before the load gives up (exit 4); failures are retried with backoff "
        "doubling up to 10 s, a broken stream resumes where it stopped, and after 5 s of "
        "silence the loader says it is waiting (default: %(default)s)",
    )
    parser.add_argument(
        "--s3-in-flight",
        type=_positive,
        default=DEFAULT_IN_FLIGHT,
        metavar="N",
        help="s3:// feed: GETs in flight at once, shared by the workers: the small objects "
        "(up to 1 MB) of each batch are fetched ahead, so that the store's wait before each "
        "first byte overlaps; at most N MB of them are held (default: %(default)s)",
    )
    parser.add_argument(
        "--plan",
        action="store_true",
        help="load nothing: print, as one JSON object, which files a run would load "
        "(new or changed), how many are unchanged and which are gone (the orchestrator's "
        "sensor asks this, so that it and the loader agree on what is new)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every batch")
    return parser


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def _size(text: str) -> int:
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    scale = units.get(text[-1:].upper(), 1)
    try:
        value = int(text[:-1] if scale > 1 else text) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _location(text: str) -> Path | str:
    """A folder, or an s3:// URL (kept as text)."""
    if is_s3_url(text):
        try:
            parse_s3_url(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text
    return Path(text)


def main(argv: list[str] | None = None) -> int:
    # From here on Ctrl-C is a KeyboardInterrupt and SIGTERM a Terminated, both
    # said in one line below (load_raw.py handles them while importing).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print(
            "load_raw: interrupted; the batch under way was rolled back, re-run to finish",
            file=sys.stderr,
        )
        return EXIT_BY_KIND["interrupted"]
    except Terminated:
        print(
            "load_raw: terminated (SIGTERM); the batch under way was rolled back, re-run to finish",
            file=sys.stderr,
        )
        return EXIT_BY_KIND["terminated"]


def _pg_unreachable(exc: Exception) -> tuple[str, str]:
    return (
        "database",
        f"cannot reach PostgreSQL: {one_line(exc)}\n"
        "load_raw: set PGHOST/PGPORT/PGUSER/PGDATABASE, or run through "
        "'python -m sparkify.embedded_pg exec -- ...' (as 'make load' does)",
    )


# Each error the loader expects, by class: its kind (EXIT_CODES) and what is said.
# Looked up along the error's class hierarchy (most specific class first), so no
# order of except clauses decides which applies.
KIND_OF: dict[type[Exception], Callable[[Any], tuple[str, str]]] = {
    UsageError: lambda exc: ("usage", str(exc)),
    UnreadableFile: lambda exc: (
        "file",
        f"cannot read {exc}; nothing of its batch was loaded: fix or move the file, then re-run",
    ),
    ServerError: lambda exc: ("database", str(exc)),
    ObjectStoreError: lambda exc: (exc.kind, str(exc)),
    psycopg.OperationalError: _pg_unreachable,
    psycopg.Error: lambda exc: ("database", describe(exc)),
    WorkerFailed: lambda exc: (
        exc.kind,
        f"{exc}; the other workers were stopped, re-run to finish",
    ),
    OSError: lambda exc: ("file", f"cannot read a file: {one_line(exc)}"),
}


def kind_of(exc: Exception) -> tuple[str, str]:
    """An expected error's kind and its message (KIND_OF)."""
    said = next(KIND_OF[cls] for cls in type(exc).__mro__ if cls in KIND_OF)
    return said(exc)


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="load_raw: %(message)s", stream=sys.stderr)
    options = LoadOptions(
        workers=args.workers,
        batch_files=args.batch_files,
        batch_bytes=args.batch_mb * 2**20,
        max_line_bytes=args.max_line_bytes,
        verify=args.verify,
        prune=args.prune,
        replace_other_feed=args.replace_other_feed,
        store_timeout=args.store_timeout,
        s3_in_flight=args.s3_in_flight,
    )
    try:
        roots = resolve_roots(args.data_dir, args.song_data, args.log_data)
        if args.plan:
            print(json.dumps(plan_only(roots, options, args.lake)))
            return EXIT_BY_KIND["ok"]
        if args.lake is not None:
            from sparkify.loader import lake  # pyiceberg, imported only for a lake

            summary = lake.run(
                source_for(roots, options.store_timeout, options.s3_in_flight), args.lake, options
            )
        else:
            summary = run(roots, options)
    except (UsageError, ServerError, psycopg.Error, WorkerFailed, OSError) as exc:
        kind, message = kind_of(exc)
        print(f"load_raw: {message}", file=sys.stderr)
        return EXIT_BY_KIND[kind]
    return _print_summary(summary, args.json)


def plan_only(roots: Roots, options: LoadOptions, lake_root: Path | str | None) -> dict[str, Any]:
    """What a run would do, from the loader's own listing and planning, without
    writing anything: the files to load (new or changed), and the counts of the
    unchanged, gone and unreadable ones. A database or lake never loaded has an
    empty manifest: everything is new."""
    source = source_for(roots, options.store_timeout, options.s3_in_flight)
    files, _ = list_feed(source)
    if lake_root is not None:
        from sparkify.loader import lake  # pyarrow, imported only for a lake

        in_lake = lake.landed_manifest(lake_root, options.store_timeout)
        found = lake.plan(in_lake, source, files, verify=options.verify)
    else:
        with connect("sparkify load_raw --plan") as conn:
            found = plan(conn, source, files, verify=options.verify)
    return {
        "files_found": len(files),
        "to_load": [
            {
                "file": item.file.name,
                "kind": item.file.kind,
                "size": item.file.size,
                "replaces": item.replaces,
            }
            for item in found.to_load
        ],
        "files_unchanged": len(found.unchanged),
        "files_vanished": [name for _, name in found.vanished],
        "files_unreadable": [{"file": name, "reason": why} for name, why in found.unreadable],
        "paths_unreadable": [name for name, _ in source.unreadable],
    }


def _print_summary(summary: Summary, as_json: bool) -> int:
    print(summary.as_json() if as_json else summary.prose())
    paths, files = len(summary.paths_unreadable), len(summary.files_unreadable)
    if not (paths or files):
        return EXIT_BY_KIND["ok"]
    code = EXIT_BY_KIND["skipped"]
    what = [
        f"{count} {noun}{'' if count == 1 else 's'} could not be {verb}"
        for count, noun, verb in ((paths, "path", "listed"), (files, "file", "read"))
        if count
    ]
    print(
        f"load_raw: loaded, but {' and '.join(what)}: skipped (named above), "
        f"the rest loaded: exit code {code}",
        file=sys.stderr,
    )
    return code
