"""An independent oracle of the marts: the documented rules, in plain Python.

It reads the feed's JSON files itself and shares no code with the loader or the
models, so a mart that agrees with it agrees with the docs (warehouse/test_oracle.py on
PostgreSQL, spark/test_parity.py and the cluster's fault tests on Spark).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from helpers import UDACITY_SAMPLE

ORACLE_MARTS = ("songplays", "users", "songs", "artists", "time")


needs_udacity = pytest.mark.skipif(
    not UDACITY_SAMPLE.exists(), reason=f"the public sample is not at {UDACITY_SAMPLE}"
)


def read_feed(root: Path) -> tuple[list[dict], list[dict]]:
    def parse(data: bytes) -> dict:
        return json.loads(data, parse_float=Decimal)

    events = [
        parse(line)
        for path in sorted((root / "log_data").rglob("*.json"))
        for line in path.read_bytes().split(b"\n")
        if line.strip()
    ]
    songs = [parse(path.read_bytes()) for path in sorted((root / "song_data").rglob("*.json"))]
    return events, songs


def repaired(text: str) -> str:
    """Undo text encoded as UTF-8 twice (or once) over, as the docs state."""
    for _ in range(2):
        try:
            text = text.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            break
    return text


def match_key(text: str) -> str:
    return " ".join(text.split()).lower()


def best_song(event: dict, catalogue: list[dict]) -> tuple[str, str] | None:
    """The documented rule: (song_id, 'exact' | 'normalized'), or None."""
    song, artist, length = event["song"].strip(), event["artist"].strip(), event["length"]
    candidates = []
    for entry in catalogue:
        exact = (song, artist, length) == (entry["title"], entry["artist_name"], entry["duration"])
        close = abs(length - entry["duration"]) <= Decimal("0.5")
        same = (match_key(repaired(song)), match_key(repaired(artist))) == (
            match_key(entry["title"]),
            match_key(entry["artist_name"]),
        )
        if exact or (same and close):
            rule = "exact" if exact else "normalized"
            candidates.append((not exact, abs(length - entry["duration"]), entry["song_id"], rule))
    if not candidates:
        return None
    _, _, song_id, rule = min(candidates)
    return song_id, rule


def oracle(events: list[dict], songs: list[dict]) -> dict:
    """What the marts must hold, by the documented rules, computed in plain Python."""
    plays: dict[tuple, dict] = {}
    for event in events:
        if event["page"] == "NextSong" and isinstance(event["ts"], int):
            key = (event["userId"], event["sessionId"], event["itemInSession"], event["ts"])
            plays.setdefault(key, event)
    catalogue = [
        {**song, "title": song["title"].strip(), "artist_name": song["artist_name"].strip()}
        for song in songs
    ]
    matched = {}
    for key, event in plays.items():
        found = best_song(event, catalogue)
        if found:
            matched[key] = found
    return {
        "songplays": len(plays),
        "users": len({e["userId"] for e in events if e["userId"]}),
        "songs": len({s["song_id"] for s in songs}),
        "artists": len({s["artist_id"] for s in songs}),
        "time": len({e["ts"] for e in plays.values()}),
        "matched": matched,
        "plays": plays,
    }
