"""The goals: one table, read by the evaluation and, through it, by the report.

A goal compares two kept measures, each found by its kind and the start of its
run name ("{n}" stands for the number of workers). Two ways to compare:

- "speed": ours against theirs on the same work, so theirs' seconds over ours'
  is a ratio of rates; the goal is a floor (at least `goal`). Shown as n/a when
  either side did not run.
- "share": ours' seconds as a share of theirs' (a warehouse step against a full
  build, or a build against floor.sql); the goal is a ceiling (at most `goal`)
  at the feed size it was set for. Left out when either side did not run or
  dbt failed.

A goal of None is a figure to read, with nothing to meet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from benchmarks.measuring import Measure

LOADER = ("events", "loader, {n} worker")
SONG_LOADER = ("songs", "loader, {n} worker")
BRIN_LOADER = ("events", "loader + BRIN on load_id, {n} worker")
KEYLESS_LOADER = ("events", "loader, raw.events without its key, {n} worker")
S3_LOADER = ("events", "loader from S3, {n} worker")
S3_SONG_LOADER = ("songs", "loader from S3, {n} worker")
COPY_1 = ("events", "PostgreSQL COPY FROM file, 1 conn")
COPY_N = ("events", "PostgreSQL COPY FROM file, {n} conn")
COPY_SHAPED_N = ("events", "PostgreSQL COPY FROM file into raw's shape, {n} conn")
FULL_BUILD = ("warehouse", "dbt build, full")


@dataclass(frozen=True)
class Goal:
    label: str
    ours: tuple[str, str]  # (what, start of the run name)
    theirs: tuple[str, str]
    compare: Literal["speed", "share"]
    goal: float | None
    unit: str = ""  # speed: what the rate counts
    at_events: str = ""  # share: the feed size the goal is set for


GOALS: tuple[Goal, ...] = (
    Goal(
        "events from S3: loader ({n} workers) / download to nowhere ({n} processes)",
        S3_LOADER,
        ("events", "S3 download to nowhere"),
        "speed",
        0.8,
        unit="bytes",
    ),
    Goal(
        "songs from S3: loader ({n} workers) / download to nowhere ({n} processes)",
        S3_SONG_LOADER,
        ("songs", "S3 download to nowhere"),
        "speed",
        0.8,
        unit="files",
    ),
    Goal(
        "events: loader from S3 / loader from disk ({n} workers)",
        S3_LOADER,
        LOADER,
        "speed",
        None,
        unit="lines",
    ),
    Goal(
        "songs: loader from S3 / loader from disk ({n} workers)",
        S3_SONG_LOADER,
        SONG_LOADER,
        "speed",
        None,
        unit="files",
    ),
    Goal(
        "events: loader ({n} workers) / bare-table COPY, 1 connection",
        LOADER,
        COPY_1,
        "speed",
        1.0,  # issue 26's goal (1.5 before)
        unit="lines",
    ),
    Goal(
        "events: loader ({n} workers) / bare-table COPY, {n} connections",
        LOADER,
        COPY_N,
        "speed",
        0.85,
        unit="lines",
    ),
    Goal(
        "events: loader + BRIN on load_id ({n} workers) / bare-table COPY, 1 connection",
        BRIN_LOADER,
        COPY_1,
        "speed",
        1.0,
        unit="lines",
    ),
    Goal(
        "events: loader + BRIN on load_id ({n} workers) / bare-table COPY, {n} connections",
        BRIN_LOADER,
        COPY_N,
        "speed",
        0.85,
        unit="lines",
    ),
    Goal(
        "events (reference): loader ({n} workers) / COPY into raw's shape, {n} connections",
        LOADER,
        COPY_SHAPED_N,
        "speed",
        None,
        unit="lines",
    ),
    Goal(
        "events (reference): loader, raw.events without its key ({n} workers) "
        "/ bare-table COPY, 1 connection",
        KEYLESS_LOADER,
        COPY_1,
        "speed",
        None,
        unit="lines",
    ),
    Goal(
        "events (reference): loader, raw.events without its key ({n} workers) "
        "/ bare-table COPY, {n} connections",
        KEYLESS_LOADER,
        COPY_N,
        "speed",
        None,
        unit="lines",
    ),
    Goal(
        "events (reference): loader with the key / without it ({n} workers)",
        LOADER,
        KEYLESS_LOADER,
        "speed",
        None,
        unit="lines",
    ),
    Goal(
        "events (reference): COPY into raw's shape / bare-table COPY, {n} connections",
        COPY_SHAPED_N,
        COPY_N,
        "speed",
        None,
        unit="lines",
    ),
    Goal(
        "events: loader / per-row INSERT",
        LOADER,
        ("events", "pandas"),
        "speed",
        20.0,
        unit="lines",
    ),
    Goal(
        "songs: loader / bare-table pg_read_file, 1 connection",
        SONG_LOADER,
        ("songs", "PostgreSQL pg_read_file, 1 conn"),
        "speed",
        0.5,  # issue 26's goal (0.8 before)
        unit="files",
    ),
    Goal(
        "songs: loader / per-row INSERT",
        SONG_LOADER,
        ("songs", "pandas"),
        "speed",
        20.0,
        unit="files",
    ),
    Goal(
        "full dbt build / floor.sql",
        FULL_BUILD,
        ("warehouse", "floor.sql"),
        "share",
        2.5,
        at_events="1M",
    ),
    Goal(
        "one more day / full dbt build",
        ("warehouse", "dbt build, one more day"),
        FULL_BUILD,
        "share",
        0.10,
        at_events="10M",
    ),
    Goal(
        "one more small file (1% of the events) / full dbt build",
        ("warehouse", "dbt build, one more small file"),
        FULL_BUILD,
        "share",
        0.25,
        at_events="1M",
    ),
    Goal(
        "dbt build with nothing new (fixed cost) / full dbt build",
        ("warehouse", "dbt build, nothing new"),
        FULL_BUILD,
        "share",
        None,
    ),
)


def evaluate(measures: Sequence[Measure], workers: int) -> list[dict[str, Any]]:
    """Each goal's ratio and whether it is met, in the table's order."""
    out = []
    for goal in GOALS:
        ours = _find(measures, goal.ours, workers)
        theirs = _find(measures, goal.theirs, workers)
        if goal.compare == "speed":
            out.append(_speed(goal, ours, theirs, workers))
        elif ours and theirs and not ours.note and not theirs.note:
            out.append(_share(goal, ours, theirs))
    return out


def _speed(
    goal: Goal, ours: Measure | None, theirs: Measure | None, workers: int
) -> dict[str, Any]:
    label = goal.label.format(n=workers)
    said = f">= {goal.goal}" if goal.goal else "(a figure)"
    if ours is None or theirs is None:
        return {"target": label, "ratio": None, "goal": said, "met": None}
    ratio = theirs.seconds / ours.seconds  # same work, so a ratio of rates
    return {
        "target": label,
        "ratio": round(ratio, 2),
        "goal": said,
        "met": ratio >= goal.goal if goal.goal else None,
        "unit": goal.unit,
    }


def _share(goal: Goal, ours: Measure, theirs: Measure) -> dict[str, Any]:
    ratio = ours.seconds / theirs.seconds
    return {
        "target": f"warehouse: {goal.label}",
        "ratio": round(ratio, 3),
        "goal": f"<= {goal.goal} (at {goal.at_events} events)" if goal.goal else "(a figure)",
        "met": ratio <= goal.goal if goal.goal else None,
    }


def _find(measures: Sequence[Measure], which: tuple[str, str], workers: int) -> Measure | None:
    """The first kept measure of that kind whose name starts so and that ran."""
    what, prefix = which
    prefix = prefix.format(n=workers)
    for m in measures:
        if m.what == what and m.name.startswith(prefix) and m.seconds:
            return m
    return None
