"""The on-disk layout: song files, day files of events, the truth file, fault side files.

Day files are streamed in chunks (no trailing newline, like the feed); the truth file gets
one row per NextSong event with its physical line number. Days with planned faults go
through a slower path that applies them line by line, still streaming.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import TextIO

from sparkify.generator import faults as fl
from sparkify.generator.catalogue import Song, song_file_path, song_file_text
from sparkify.generator.events import N_KINDS, Event

TRUTH_HEADER = (
    "source_file,line_number,ts,user_id,session_id,item_in_session,"
    "song_id,artist_id,variant,fault\n"
)
BOM = b"\xef\xbb\xbf"
_CHUNK = 8192  # lines per write


def log_file_path(day: date) -> str:
    """``log_data/YYYY/MM/YYYY-MM-DD-events.json``, relative to the output directory."""
    return f"log_data/{day:%Y}/{day:%m}/{day:%Y-%m-%d}-events.json"


def duplicate_file_path(rel: str) -> str:
    """The name a re-delivered day gets: ``2018-11-05-events (1).json``."""
    return rel[: -len(".json")] + " (1).json"


class FeedWriter:
    """Writes one generated feed under ``out``; counts what it writes."""

    def __init__(self, out: Path, truth: TextIO, plan: fl.FaultPlan | None) -> None:
        self.out = out
        self._truth = truth
        self._plan = plan
        self.counts = [0] * N_KINDS  # events written, per kind (see events.KIND_*)
        self.faults: list[fl.FaultRecord] = []
        self.lost_events = 0
        self.lost_nextsong = 0
        self.song_files = 0
        self.log_files = 0
        self.extra_files = 0
        self._carry = fl.DayFaults()  # faults a previous day could not place
        truth.write(TRUTH_HEADER)

    # --- songs ------------------------------------------------------------------------

    def song_faults(self, songs: Sequence[Song]) -> None:
        """Record the song-file faults :meth:`write_songs` will apply (call it first)."""
        if self._plan:
            rel = song_file_path(songs[self._plan.song_bom_index])
            self.faults.append(fl.FaultRecord("song_bom", rel, None, "UTF-8 BOM before '{'"))

    def write_songs(self, songs: Sequence[Song]) -> int:
        """One file per song; returns how many. Safe to run in a thread beside the days:
        it touches only song_data/ (creating many small files is the file system's cost)."""
        bom_index = self._plan.song_bom_index if self._plan else -1
        made: set[Path] = set()
        for i, song in enumerate(songs):
            path = self.out / song_file_path(song)
            if path.parent not in made:
                path.parent.mkdir(parents=True, exist_ok=True)
                made.add(path.parent)
            data = song_file_text(song).encode("ascii")
            path.write_bytes(BOM + data if i == bom_index else data)
        self.song_files = len(songs)
        return len(songs)

    # --- days -------------------------------------------------------------------------

    def write_day(self, day_index: int, day: date, events: Iterable[Event]) -> None:
        rel = log_file_path(day)
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        planned = self._plan.for_day(day_index) if self._plan else fl.DayFaults()
        carry, self._carry = self._carry, fl.DayFaults()
        todo = fl.DayFaults(
            inserts=[(0, kind, a, b) for _, kind, a, b in carry.inserts] + planned.inserts,
            damages=[(0, kind, a, b) for _, kind, a, b in carry.damages] + planned.damages,
            truncate_last_line=planned.truncate_last_line or carry.truncate_last_line,
            bom_crlf=planned.bom_crlf,
            duplicate=planned.duplicate,
        )
        if todo.is_clean():
            self._write_clean(path, rel, events)
        else:
            self._write_faulty(path, rel, events, todo)
        self.log_files += 1
        if todo.duplicate:
            copy_rel = duplicate_file_path(rel)
            shutil.copyfile(path, self.out / copy_rel)
            self.extra_files += 1
            self.faults.append(
                fl.FaultRecord("duplicate_file", copy_rel, None, f"identical bytes to {rel}")
            )

    def _write_clean(self, path: Path, rel: str, events: Iterable[Event]) -> None:
        counts = self.counts
        truth_write = self._truth.write
        prefix = rel + ","
        buf: list[str] = []
        rows: list[str] = []
        n = 0
        lead = ""
        with path.open("wb") as f:
            for _ts, line, tail, kind in events:
                n += 1
                buf.append(line)
                counts[kind] += 1
                if tail is not None:
                    rows.append(f"{prefix}{n},{tail},\n")
                if len(buf) >= _CHUNK:
                    f.write((lead + "\n".join(buf)).encode("ascii"))
                    lead = "\n"
                    buf.clear()
                    truth_write("".join(rows))
                    rows.clear()
            if buf:
                f.write((lead + "\n".join(buf)).encode("ascii"))
            truth_write("".join(rows))

    def _write_faulty(
        self, path: Path, rel: str, events: Iterable[Event], todo: fl.DayFaults
    ) -> None:
        counts = self.counts
        sep = b"\r\n" if todo.bom_crlf else b"\n"
        inserts = sorted(todo.inserts, key=lambda x: x[0])
        damages = sorted(todo.damages, key=lambda x: x[0])
        # A line waiting to be written: (bytes, line number, truth tail, fault kind or "").
        pending: tuple[bytes, int, str | None, str] | None = None
        lineno = 0
        n_events = 0
        started = False
        last_line = ""

        with path.open("wb") as f:

            def emit(item: tuple[bytes, int, str | None, str]) -> None:
                nonlocal started
                data, number, tail, fault = item
                f.write(sep + data if started else data)
                started = True
                if fault in fl.LOSES_EVENT:
                    self.lost_events += 1
                    self.lost_nextsong += tail is not None
                if tail is not None:
                    self._truth.write(f"{rel},{number},{tail},{fault}\n")

            if todo.bom_crlf:
                f.write(BOM)
                self.faults.append(
                    fl.FaultRecord("bom_crlf", rel, None, "UTF-8 BOM and CRLF line endings")
                )
            for _ts, line, tail, kind in events:
                while inserts and inserts[0][0] <= n_events:
                    _, fkind, text, detail = inserts.pop(0)
                    if pending is not None:
                        emit(pending)
                    lineno += 1
                    pending = (text.encode("ascii"), lineno, None, "")
                    self.faults.append(fl.FaultRecord(fkind, rel, lineno, detail))
                counts[kind] += 1
                lineno += 1
                data: bytes | None = None
                fault = ""
                for j, (start, fkind, qualifier, detail) in enumerate(damages):
                    if start <= n_events and fl.qualifies(line, tail is not None, qualifier):
                        data = fl.damage_line(line, fkind)
                        fault = fkind
                        del damages[j]
                        self.faults.append(fl.FaultRecord(fkind, rel, lineno, detail))
                        break
                if data is None:
                    data = line.encode("ascii")
                if pending is not None:
                    emit(pending)
                pending = (data, lineno, tail, fault)
                last_line = line
                n_events += 1

            if todo.truncate_last_line and pending is not None:
                data, number, tail, fault = pending
                if fault:  # the line already carries a damage: move that damage on
                    self.faults = [
                        r for r in self.faults if not (r.file == rel and r.line_number == number)
                    ]
                    self._carry.damages.extend((0, k, q, d) for k, q, d in fl.DAMAGES if k == fault)
                pending = (fl.truncate(last_line.encode("ascii")), number, tail, "truncated_line")
                self.faults.append(
                    fl.FaultRecord("truncated_line", rel, number, "file ends mid-object")
                )
            elif todo.truncate_last_line:
                self._carry.truncate_last_line = True
            if pending is not None:
                emit(pending)

        # Whatever found no place here moves to the next day.
        self._carry.inserts.extend(inserts)
        self._carry.damages.extend(damages)

    def unplaced_faults(self) -> int:
        """Planned line faults that found no line (days with too few events)."""
        c = self._carry
        return len(c.inserts) + len(c.damages) + int(c.truncate_last_line)

    # --- other files ------------------------------------------------------------------

    def write_non_data_files(self, first_day: date, songs: Sequence[Song]) -> None:
        """Files a loader must skip: a README and a .DS_Store among the logs, one in songs."""
        log_dir = f"log_data/{first_day:%Y}/{first_day:%m}"
        song_dir = song_file_path(songs[0]).split("/")[1]
        files = (
            (f"{log_dir}/README.txt", fl.README_TEXT.encode("ascii"), "a README among the logs"),
            (f"{log_dir}/.DS_Store", fl.DS_STORE, "a macOS .DS_Store among the logs"),
            (f"song_data/{song_dir}/.DS_Store", fl.DS_STORE, "a macOS .DS_Store among songs"),
        )
        for rel, data, detail in files:
            (self.out / rel).write_bytes(data)
            self.extra_files += 1
            self.faults.append(fl.FaultRecord("non_data_file", rel, None, detail))
