"""One log file of a given size (the event logs concatenated, over and over):
the loader's peak memory on it, which should not grow with the file."""

from __future__ import annotations

from pathlib import Path

from benchmarks.feed import Feed, count_lines
from benchmarks.measuring import PYTHON, Recorder, log, run_watched
from benchmarks.scratch import ScratchDatabases, check_count, env_for


def run(
    recorder: Recorder, feed: Feed, databases: ScratchDatabases, size_mb: int, folder: Path
) -> None:
    """Write (or reuse) folder/log_data/big-events.json and load it into a fresh database."""
    target = size_mb * 2**20
    path = folder / "log_data" / "big-events.json"
    if not path.exists() or path.stat().st_size < target:
        log(f"writing a {size_mb} MB log file")
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as out:
            while out.tell() < target:
                for _, source, _ in feed.event_files:
                    out.write(source.read_bytes().rstrip(b"\n") + b"\n")
                    if out.tell() >= target:
                        break
    lines = count_lines([path])
    db = databases.new("big")
    log(f"loader, one {path.stat().st_size / 2**20:.0f} MB file")
    with recorder.timed("loader, one big file", "big_file") as m:
        run_watched(
            [PYTHON, "-m", "sparkify.loader", "--log-data", str(path.parent), "-q"], env_for(db), m
        )
    m.lines, m.files, m.bytes = lines, 1, path.stat().st_size
    check_count(env_for(db), "raw.events", lines)
    databases.drop(db)
