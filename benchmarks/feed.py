"""The feed under test: generated with the project's generator, once per size,
then listed as the loader lists it."""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from benchmarks.measuring import PYTHON, check_command, log
from benchmarks.options import Options
from benchmarks.scratch import SCRATCH
from sparkify.loader.files import LocalFileSource

START_DATE = dt.date(2018, 11, 1)
DAYS = 30


class FeedFile(NamedTuple):
    name: str  # as the loader's manifest names it
    path: Path
    size: int


@dataclass(frozen=True)
class Folders:
    """Where each generated feed lives (kept between runs of the same size with --keep-data)."""

    feed: Path  # the DAYS days every scenario reads
    extra: Path  # one more day, for the warehouse
    small: Path  # one more small file (1% of the events), for the warehouse
    big: Path  # one big log file

    @classmethod
    def for_options(cls, options: Options) -> Folders:
        size = f"{options.events}-{options.songs}"
        return cls(
            feed=SCRATCH / f"feed-{size}",
            extra=SCRATCH / f"extra-day-{size}",
            small=SCRATCH / f"small-file-{size}",
            big=SCRATCH / f"big-{options.big_file_mb}mb",
        )

    def remove(self) -> None:
        for folder in (self.feed, self.extra, self.small, self.big):
            shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class Feed:
    """The main feed's files and sizes, the denominators of every rate."""

    folder: Path
    event_files: list[FeedFile]
    song_files: list[FeedFile]
    event_lines: int
    event_bytes: int
    song_bytes: int

    @classmethod
    def scan(cls, folder: Path) -> Feed:
        source = LocalFileSource({"events": folder / "log_data", "songs": folder / "song_data"})
        files, _ = source.list_files()
        found = {
            kind: [FeedFile(f.name, source.path_of(f), f.size) for f in files if f.kind == kind]
            for kind in ("events", "songs")
        }
        return cls(
            folder=folder,
            event_files=found["events"],
            song_files=found["songs"],
            event_lines=count_lines([file.path for file in found["events"]]),
            event_bytes=sum(file.size for file in found["events"]),
            song_bytes=sum(file.size for file in found["songs"]),
        )


def count_lines(paths: list[Path]) -> int:
    """Non-blank lines: the rows the loader lands."""
    total = 0
    for path in paths:
        with open(path, "rb") as stream:
            for line in stream:
                total += bool(line.strip())
    return total


def generate(options: Options, folders: Folders) -> None:
    """The feeds the options need, unless a kept one is there already."""
    per_day = max(1, round(options.events / DAYS))
    users = max(100, options.events // 500)
    common = ["--users", str(users), "--songs", str(options.songs)]
    common += ["--events-per-day", str(per_day), "--quiet"]
    if not (folders.feed / "log_data").is_dir():
        log(f"generating {options.events:,} events and {options.songs:,} songs")
        _generate(folders.feed, DAYS, None, common)
    if options.s3_only or options.skip_dbt:
        return
    if not (folders.small / "log_data").is_dir():
        day = START_DATE + dt.timedelta(days=DAYS + 1)
        log(f"generating one more small file ({day}, 1% of the events)")
        small = ["--users", str(users), "--songs", str(options.songs)]
        small += ["--events-per-day", str(max(1, options.events // 100)), "--quiet"]
        _generate(folders.small, 1, day, small)
    if not (folders.extra / "log_data").is_dir():
        day = START_DATE + dt.timedelta(days=DAYS)
        log(f"generating one more day ({day})")
        _generate(folders.extra, 1, day, common)


def _generate(out: Path, days: int, start: dt.date | None, rest: list[str]) -> None:
    start_date = [] if start is None else ["--start-date", start.isoformat()]
    command = [PYTHON, "-m", "sparkify.generator", "--out", str(out), "--days", str(days)]
    check_command([*command, *start_date, *rest])
