"""Where each input line landed: raw.events, raw.songs, or raw.rejects with its
reason, and the lines the loader tests write to find out."""

from __future__ import annotations

from pathlib import Path

from feed_lines import event_line
from helpers import connect

# Where a line lands: a landing table, or a reject reason (raw.rejects.reason).
EV = "events"  # the line lands in raw.events
SONG_ROW = "songs"  # the song file lands in raw.songs
LIMIT = 512  # MAX_NESTING_DEPTH: the deepest line that lands, on both engines
DEEP = 10_000  # PostgreSQL's jsonb takes it, Spark's readers do not: too deep for both
DEEPER = 100_000  # PostgreSQL refuses it: "stack depth limit exceeded"


def numbered(n: int, **changes: object) -> bytes:
    return event_line(itemInSession=n, ts=1541106106796 + n * 1000, **changes)


def deep_object(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def deep_array(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def outcomes(env: dict[str, str]) -> dict[tuple[str, int], str]:
    """Where each landed line is: 'events', 'songs', or its reject reason."""
    with connect(env) as conn:
        rows = conn.execute(
            "select source_file, line_number, 'events' from raw.events "
            "union all select source_file, line_number, 'songs' from raw.songs "
            "union all select source_file, line_number, reason from raw.rejects"
        ).fetchall()
    found: dict[tuple[str, int], str] = {}
    for name, number, where in rows:
        assert (name, number) not in found, f"{name}:{number} landed twice"
        found[(name, number)] = where
    return found


def expected_outcomes(root: Path, cases: dict[str, list[str]]) -> dict[tuple[str, int], str]:
    """The outcome of each non-blank line of each case file (numbered by LF)."""
    expected = {}
    for relative, wanted in cases.items():
        data = (root / relative).read_bytes()
        if relative.startswith("song_data/"):
            numbers = [1] if data.strip() else []
        else:
            numbers = [n for n, line in enumerate(data.split(b"\n"), 1) if line.strip()]
        assert len(numbers) == len(wanted), relative
        expected.update({(relative, n): w for n, w in zip(numbers, wanted, strict=True)})
    return expected


def one_line_said(stderr: str) -> str:
    """The loader's last word: one line, no traceback."""
    assert "Traceback" not in stderr, stderr
    return stderr.strip().splitlines()[-1]
