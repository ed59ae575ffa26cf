"""Hand-written feed lines and small feeds for the loader's tests, and its summary.

A real eventsim line and song file (the course sample's), changed one field at
a time by the tests; a few days of them in a folder; the loader's --json line.
"""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Any

from helpers import loader_summary, write_lines
from sparkify.loader.files import LocalFileSource, SourceFile

EVENT = {
    "artist": "Des'ree",
    "auth": "Logged In",
    "firstName": "Kaylee",
    "gender": "F",
    "itemInSession": 1,
    "lastName": "Summers",
    "length": 246.30812,
    "level": "free",
    "location": "Phoenix-Mesa-Scottsdale, AZ",
    "method": "PUT",
    "page": "NextSong",
    "registration": 1540344794796.0,
    "sessionId": 139,
    "song": "You Gotta Be",
    "status": 200,
    "ts": 1541106106796,
    "userAgent": '"Mozilla/5.0 (Windows NT 6.1; WOW64)"',
    "userId": "8",
}


SONG = {
    "num_songs": 1,
    "artist_id": "AR62SOJ1187FB47BB5",
    "artist_latitude": None,
    "artist_longitude": None,
    "artist_location": "",
    "artist_name": "Chase & Status",
    "song_id": "SOGVQGJ12AB017F169",
    "title": "Ten Tonne",
    "duration": 337.68444,
    "year": 2005,
}


def event_line(**changes: object) -> bytes:
    return json.dumps({**EVENT, **changes}, separators=(",", ":")).encode()


def make_feed(root: Path, days: int = 3, per_day: int = 5) -> Path:
    for day in range(1, days + 1):
        lines = [
            event_line(ts=1541000000000 + day * 86_400_000 + i, itemInSession=i)
            for i in range(per_day)
        ]
        write_lines(root / "log_data" / "2018" / "11" / f"2018-11-{day:02d}-events.json", lines)
    for n in range(3):
        song = {**SONG, "song_id": f"SOTEST{n:012d}", "title": f"Song {n}"}
        (root / "song_data" / "A" / "B" / "C").mkdir(parents=True, exist_ok=True)
        (root / "song_data" / "A" / "B" / "C" / f"TRTEST{n:012d}.json").write_text(json.dumps(song))
    return root


def summary_of(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The --json summary of a loader run that loaded (exit 0, or 3: files skipped)."""
    assert result.returncode in (0, 3), result.stderr
    return loader_summary(result.stdout)


class FailingSource(LocalFileSource):
    """A real folder whose second file breaks while it is being read (a disk error)."""

    def open_stored(self, source_file: SourceFile):
        if source_file.name.endswith("02-events.json"):
            with super().open_stored(source_file) as stream:
                return _BreaksAfter(stream.read(), after=10)
        return super().open_stored(source_file)


class _BreaksAfter(io.BytesIO):
    def __init__(self, data: bytes, after: int):
        super().__init__(data)
        self.after = after

    def read(self, size: int | None = -1) -> bytes:
        if self.tell() >= self.after:
            raise OSError("simulated read error")
        return super().read(min(size if size and size > 0 else self.after, self.after))
