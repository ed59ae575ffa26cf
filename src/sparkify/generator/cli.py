#!/usr/bin/env python3
"""Generate a synthetic Sparkify feed (song files and daily event logs) with a truth file.

The command line in front of the ``sparkify.generator`` package; see ``--help``.
Progress and errors go to stderr, a one-paragraph summary to stdout.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from sparkify.generator import GeneratorConfig, OutputExistsError, generate

DESCRIPTION = """\
Generate a synthetic Sparkify feed shaped like the real one: song metadata as
song_data/X/Y/Z/TR....json (one JSON object per file) and eventsim-style event logs as
log_data/YYYY/MM/YYYY-MM-DD-events.json (JSON lines, one file per UTC day), with the same
field names, order and JSON types. Users live in sessions with a daily and weekly rhythm,
about 83% of events are NextSong plays, some visits are logged out, and some users upgrade
or downgrade mid-period.

A share of the plays (--match-share) are of songs in the written catalogue; the rest are of
songs that exist only in the logs. Of the catalogue plays, a share (--near-miss-share) is
spelled with a near miss as in the real feed: different case, stray whitespace, a duration
rounded or off by less than 0.01 s, or artist/title text UTF-8-encoded twice (mojibake).

Besides song_data/ and log_data/ the generator writes DIR/_truth/songplays.csv (one row
per NextSong event: file, physical line, ts, user, session, item, true song_id and
artist_id, variant) and DIR/_truth/summary.json (counts). With --faults it damages a few
files the way real feeds are damaged and lists every fault in DIR/_faults.json.
The same seed and options always give byte-identical files."""

EPILOG = """\
examples:
  %(prog)s                                   # default set (~10k events) into data/sample
  %(prog)s --out /tmp/feed --days 7 --users 20 --seed 7
  %(prog)s --out data/faulty --faults --force  # with damaged files and _faults.json
  %(prog)s --out /tmp/big --days 30 --users 2000 --songs 20000 --events-per-day 33334
                                             # ~1M events (benchmark size)

exit status: 0 on success, 2 on bad options or when DIR already contains song_data or
log_data and --force is not given."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must not be negative: {text}")
    return value


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1: {text}")
    return value


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date in YYYY-MM-DD form: {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    defaults = GeneratorConfig()
    parser = argparse.ArgumentParser(
        prog="sparkify-generate",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        default=defaults.out,
        help="output directory, relative to the current directory (default: %(default)s)",
    )
    parser.add_argument(
        "--days",
        metavar="N",
        type=_positive_int,
        default=defaults.days,
        help="number of days of logs, one file per day (default: %(default)s)",
    )
    parser.add_argument(
        "--start-date",
        metavar="YYYY-MM-DD",
        type=_date,
        default=defaults.start_date,
        help="first day (UTC) of the logs (default: %(default)s)",
    )
    parser.add_argument(
        "--users",
        metavar="N",
        type=_positive_int,
        default=defaults.users,
        help="number of simulated users (default: %(default)s)",
    )
    parser.add_argument(
        "--songs",
        metavar="N",
        type=_positive_int,
        default=defaults.songs,
        help="catalogue size: songs written to song_data; the logs also play about 2N more "
        "songs that are not written (default: %(default)s)",
    )
    parser.add_argument(
        "--events-per-day",
        metavar="N",
        type=_non_negative_float,
        default=defaults.events_per_day,
        help="mean events per day; weekdays busier than weekends, days vary by about 20%% "
        "(default: %(default)g, about 10k events over 30 days)",
    )
    parser.add_argument(
        "--seed",
        metavar="N",
        type=int,
        default=defaults.seed,
        help="random seed; the same seed and options give identical files (default: %(default)s)",
    )
    parser.add_argument(
        "--match-share",
        metavar="F",
        type=_share,
        default=defaults.match_share,
        help="share of NextSong plays whose song is in the written catalogue "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--near-miss-share",
        metavar="F",
        type=_share,
        default=defaults.near_miss_share,
        help="share of catalogue plays spelled with a near miss instead of the exact text "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--faults",
        action="store_true",
        help="damage a few files like real feeds (truncated line, invalid UTF-8, blank "
        "lines, BOM+CRLF, non-object and non-JSON lines, \\u0000, wrong-typed values, "
        "non-data files, a day delivered twice) and write DIR/_faults.json",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="overwrite DIR's song_data/, log_data/, _truth/ and _faults.json if present",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    return parser


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def summary_paragraph(summary: dict, out: Path) -> str:
    v = summary["variants"]
    near = v["case"] + v["whitespace"] + v["duration_rounding"] + v["mojibake"]
    opts = summary["options"]
    text = (
        f"Wrote {_n(summary['events'], 'event')} ({summary['nextsong']:,} NextSong plays, "
        f"{summary['logged_out']:,} logged out) by {_n(summary['users'], 'user')} over "
        f"{_n(opts['days'], 'day')} from {opts['start_date']} to {out}: "
        f"{_n(summary['files']['log_data'], 'log file')} and "
        f"{_n(summary['files']['song_data'], 'song file')} by {_n(summary['artists'], 'artist')}. "
        f"{summary['match_share']:.1%} of plays are of catalogue songs "
        f"({v['exact']:,} exact, {near:,} near misses), {v['not_in_catalogue']:,} are not; "
        f"{_n(summary['level_changes'], 'level change')}. "
        f"Truth in {out / '_truth'}."
    )
    if summary["faults"]:
        f = summary["faults"]
        text += (
            f" Injected {_n(f['injected'], 'fault')} ({_n(f['events_lost'], 'event')} lost), "
            f"listed in {out / '_faults.json'}."
        )
    return text


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    config = GeneratorConfig(
        out=args.out,
        days=args.days,
        start_date=args.start_date,
        users=args.users,
        songs=args.songs,
        events_per_day=args.events_per_day,
        seed=args.seed,
        match_share=args.match_share,
        near_miss_share=args.near_miss_share,
        faults=args.faults,
        force=args.force,
    )

    def progress(message: str) -> None:
        print(f"generate_data: {message}", file=sys.stderr, flush=True)

    try:
        summary = generate(config, progress=None if args.quiet else progress)
    except OutputExistsError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    print(summary_paragraph(summary, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
