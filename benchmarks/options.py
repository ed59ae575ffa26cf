"""The benchmark's options: their parser and their typed form."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.scratch import SCRATCH


@dataclass(frozen=True)
class Options:
    """What benchmarks/ingest.py was asked for; the field names are the options'
    (the report writes them as they are)."""

    events: int
    songs: int
    workers: int
    per_row_lines: int
    per_row_files: int
    big_file_mb: int
    repeat: int
    warehouse_repeat: int
    skip_dbt: bool
    warehouse_only: bool
    skip_s3: bool
    s3_only: bool
    s3_repeat: int
    keep_data: bool


def parse(argv: list[str] | None, description: str | None) -> Options:
    return Options(**vars(build_parser(description).parse_args(argv)))


def build_parser(description: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ingest",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    positive, zero_or_more = _at_least(1), _at_least(0)
    parser.add_argument("--events", type=positive, default=1_000_000, help="events to generate")
    parser.add_argument("--songs", type=positive, default=20_000, help="song files to generate")
    parser.add_argument(
        "--workers", type=positive, default=_cpus(), help="loader workers and server connections"
    )
    parser.add_argument(
        "--per-row-lines",
        type=zero_or_more,
        default=5_000,
        help="event lines for the per-row approach (extrapolated); 0 to skip",
    )
    parser.add_argument(
        "--per-row-files", type=positive, default=300, help="song files for the per-row approach"
    )
    parser.add_argument(
        "--big-file-mb",
        type=zero_or_more,
        default=1024,
        help="size of the one-file case; 0 to skip",
    )
    parser.add_argument(
        "--repeat",
        type=positive,
        default=3,
        help="rounds of the side-by-side runs after one warm-up round; the best of each "
        "is kept (default: 3)",
    )
    parser.add_argument(
        "--warehouse-repeat",
        type=positive,
        default=2,
        help="full dbt builds and floor runs after one warm-up each; the best is kept (default: 2)",
    )
    parser.add_argument("--skip-dbt", action="store_true", help="leave out the warehouse timing")
    parser.add_argument(
        "--warehouse-only",
        action="store_true",
        help="load the feed once and time only the warehouse (dbt build against floor.sql,"
        " one more day, one more small file): the 10M run without the loader rounds",
    )
    parser.add_argument(
        "--skip-s3", action="store_true", help="leave out the feed from S3 (a local moto server)"
    )
    parser.add_argument(
        "--s3-only",
        action="store_true",
        help="only the S3 scenario (results in s3-*.md/json, not latest.*)",
    )
    parser.add_argument(
        "--s3-repeat",
        type=positive,
        default=2,
        help="rounds of the S3 runs, after one warm-up; the best is kept (default: 2)",
    )
    parser.add_argument(
        "--keep-data", action="store_true", help=f"keep the generated feed in {SCRATCH}"
    )
    return parser


def _at_least(least: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least `least` (argparse says which
    option was wrong)."""

    def whole_number(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, not {value}")
        return value

    return whole_number


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
