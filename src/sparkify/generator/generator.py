"""Orchestration: catalogue, users, days of events, truth and fault files, summary."""

from __future__ import annotations

import calendar
import json
import random
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from sparkify.generator import events as ev
from sparkify.generator.catalogue import VARIANTS, Catalogue, build_catalogue
from sparkify.generator.faults import plan_faults
from sparkify.generator.users import make_users
from sparkify.generator.writer import FeedWriter

DATA_DIRS = ("song_data", "log_data")
SIDE_OUTPUTS = ("_truth", "_faults.json")


class OutputExistsError(Exception):
    """The output directory already holds a generated feed and overwriting was not asked."""


@dataclass(frozen=True)
class GeneratorConfig:
    out: Path = Path("data/sample")
    days: int = 30
    start_date: date = date(2018, 11, 1)
    users: int = 100
    songs: int = 300
    events_per_day: float = 330.0
    seed: int = 42
    match_share: float = 0.7
    near_miss_share: float = 0.15
    faults: bool = False
    force: bool = False

    def validate(self) -> None:
        for name in ("days", "users", "songs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.events_per_day < 0:
            raise ValueError("events_per_day must not be negative")
        for name in ("match_share", "near_miss_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")


def prepare_output(out: Path, force: bool) -> None:
    """Refuse to overwrite a generated feed unless ``force``; then clear our own outputs.

    Only song_data/, log_data/, _truth/ and _faults.json are removed, never anything else.
    """
    existing = [name for name in DATA_DIRS if (out / name).exists()]
    if existing and not force:
        raise OutputExistsError(
            f"{out} already contains {' and '.join(existing)}; use --force to overwrite it"
        )
    for name in DATA_DIRS + SIDE_OUTPUTS:
        target = out / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
    out.mkdir(parents=True, exist_ok=True)


def generate(
    config: GeneratorConfig, progress: Callable[[str], None] | None = None
) -> dict[str, object]:
    """Write the feed described by ``config``; return the summary (also in _truth/)."""
    config.validate()
    say = progress or (lambda _msg: None)
    out = config.out
    prepare_output(out, config.force)
    started = time.monotonic()

    start_s = calendar.timegm(config.start_date.timetuple())
    catalogue = build_catalogue(config.songs, random.Random(f"{config.seed}:catalogue"))
    users = make_users(config.users, random.Random(f"{config.seed}:users"), start_s)
    plan = plan_faults(config.days, config.songs, config.seed) if config.faults else None
    say(
        f"catalogue: {len(catalogue.songs):,} songs by {len(catalogue.artists):,} artists for "
        f"song_data, {len(catalogue.hidden):,} more only in the logs; {len(users):,} users"
    )

    truth_dir = out / "_truth"
    truth_dir.mkdir()
    with (truth_dir / "songplays.csv").open("w", encoding="ascii", newline="") as truth:
        writer = FeedWriter(out, truth, plan)
        writer.song_faults(catalogue.songs)
        sim = ev.EventSimulator(
            users,
            catalogue,
            start_s=start_s,
            days=config.days,
            events_per_day=config.events_per_day,
            match_share=config.match_share,
            near_miss_share=config.near_miss_share,
            seed=config.seed,
        )
        # Song files are written by a second thread while the days are generated: creating
        # many small files mostly waits on the file system, which releases the GIL.
        with ThreadPoolExecutor(max_workers=1) as pool:
            songs_written = pool.submit(writer.write_songs, catalogue.songs)
            events_started = last_report = time.monotonic()
            for i in range(config.days):
                day = config.start_date + timedelta(days=i)
                writer.write_day(i, day, sim.day_events(i))
                now = time.monotonic()
                if now - last_report >= 2.0 or i == config.days - 1:
                    last_report = now
                    total = sum(writer.counts)
                    rate = total / max(now - events_started, 1e-9)
                    say(
                        f"day {i + 1}/{config.days} {day.isoformat()}: "
                        f"{total:,} events so far, {rate:,.0f} events/s"
                    )
            songs_written.result()
        say(f"{writer.song_files:,} song files written")
        if plan is not None:
            writer.write_non_data_files(config.start_date, catalogue.songs)
            if writer.unplaced_faults():
                say(f"{writer.unplaced_faults()} planned faults found no line and were skipped")

    if plan is not None:
        manifest = [record.as_json() for record in writer.faults]
        (out / "_faults.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="ascii")

    summary = _summary(config, writer, sim, catalogue)
    (truth_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="ascii")
    say(f"done in {time.monotonic() - started:.1f} s")
    return summary


def _summary(
    config: GeneratorConfig, writer: FeedWriter, sim: ev.EventSimulator, catalogue: Catalogue
) -> dict[str, object]:
    counts = writer.counts
    variants = {v: counts[ev.KIND_SONG + i] for i, v in enumerate(VARIANTS)}
    nextsong = sum(variants.values())
    in_catalogue = nextsong - variants["not_in_catalogue"]
    return {
        "options": {
            "days": config.days,
            "start_date": config.start_date.isoformat(),
            "users": config.users,
            "songs": config.songs,
            "events_per_day": config.events_per_day,
            "seed": config.seed,
            "match_share": config.match_share,
            "near_miss_share": config.near_miss_share,
            "faults": config.faults,
        },
        "events": sum(counts),
        "nextsong": nextsong,
        "logged_out": counts[ev.KIND_LOGGED_OUT],
        "users": len(sim.users_seen),
        "sessions": sim.stats.sessions,
        "level_changes": counts[ev.KIND_UPGRADE] + counts[ev.KIND_DOWNGRADE],
        "upgrades": counts[ev.KIND_UPGRADE],
        "downgrades": counts[ev.KIND_DOWNGRADE],
        "users_changing_level": len(sim.level_change_users),
        "variants": variants,
        "catalogue_plays": in_catalogue,
        "match_share": round(in_catalogue / nextsong, 4) if nextsong else 0.0,
        "songs": len(catalogue.songs),
        "artists": len(catalogue.artists),
        "hidden_songs": len(catalogue.hidden),
        "files": {
            "song_data": writer.song_files,
            "log_data": writer.log_files,
            "extra": writer.extra_files,
        },
        "faults": (
            {
                "injected": len(writer.faults),
                "events_lost": writer.lost_events,
                "nextsong_lost": writer.lost_nextsong,
            }
            if config.faults
            else None
        ),
    }
