"""The damage ``--faults`` adds to a generated feed, and the manifest that describes it.

Faults are planned up front with their own random stream, so turning them on never changes
which events are generated; the writer applies them while it streams the day files.

Reject reasons a correct loader must use (``expect`` in the manifest):

- ``truncated``: the last line of a file is an unterminated JSON object;
- ``invalid_utf8``: the line is not valid UTF-8;
- ``not_json``: the line does not parse as JSON;
- ``not_an_object``: the line is JSON but not an object (``[1,2]``, ``"x"``);
- ``jsonb_refused``: valid JSON that PostgreSQL jsonb refuses (``\\u0000`` in a string);

and otherwise:

- ``load``: the line (or file) loads into raw; the warehouse must cope with its content;
- ``skip_file``: not a ``*.json`` data file, the loader must not read it;
- ``duplicate_file``: a day delivered twice under another name; it loads and the warehouse
  must dedupe its events;
- ``ignore``: blank lines are not input lines (they still count as physical lines).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

# kind -> what a correct loader must do
EXPECT: dict[str, str] = {
    "truncated_line": "truncated",
    "invalid_utf8": "invalid_utf8",
    "blank_line": "ignore",
    "whitespace_line": "ignore",
    "bom_crlf": "load",
    "not_an_object": "not_an_object",
    "not_json": "not_json",
    "nul_in_string": "jsonb_refused",
    "ts_as_string": "load",
    "user_id_as_number": "load",
    "length_as_string": "load",
    "ts_not_a_number": "load",
    "non_data_file": "skip_file",
    "duplicate_file": "duplicate_file",
    "song_bom": "load",
}
# Faults that destroy the event on their line: a correct loader rejects the line.
LOSES_EVENT: frozenset[str] = frozenset({"truncated_line", "invalid_utf8", "nul_in_string"})

# Extra lines inserted between events: (kind, text, detail).
INSERTED_LINES: tuple[tuple[str, str, str], ...] = (
    ("blank_line", "", "an empty line"),
    ("whitespace_line", " \t ", "a line of spaces and a tab"),
    ("not_an_object", "[1,2]", "a JSON array"),
    ("not_an_object", '"x"', "a JSON string"),
    ("not_json", "<html><body><h1>502 Bad Gateway</h1></body></html>", "an HTML error page"),
)
# Damage to an existing event line: (kind, which events qualify, detail).
# "song": a NextSong event; "user": a logged-in event; "any": any event.
DAMAGES: tuple[tuple[str, str, str], ...] = (
    ("invalid_utf8", "song", 'a raw latin-1 byte 0xE9 at the start of "song"'),
    ("nul_in_string", "song", '"\\u0000" at the start of "song"'),
    ("ts_as_string", "song", 'ts written as a string of digits, e.g. "1541105830796"'),
    ("user_id_as_number", "user", "userId written as a number instead of a string"),
    ("length_as_string", "song", 'length written as a string, e.g. "246.30812"'),
    ("ts_not_a_number", "song", 'ts is the string "yesterday"'),
)

DS_STORE = b"\x00\x00\x00\x01Bud1\x00\x00\x10\x00\x00\x00\x08\x00" + b"\x00" * 48
README_TEXT = (
    "Event export (eventsim). One JSON object per line, one file per day.\n"
    "Contact the data platform team before changing this folder.\n"
)


@dataclass(frozen=True, slots=True)
class FaultRecord:
    kind: str
    file: str  # relative to the output directory, with "/" separators
    line_number: int | None
    detail: str

    def as_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "file": self.file,
            "line_number": self.line_number,
            "expect": EXPECT[self.kind],
            "detail": self.detail,
        }


@dataclass(slots=True)
class DayFaults:
    """Faults planned for one day file."""

    # before the event with this 0-based index: (index, kind, text, detail)
    inserts: list[tuple[int, str, str, str]] = field(default_factory=list)
    # on the first qualifying event at or after this index: (index, kind, qualifier, detail)
    damages: list[tuple[int, str, str, str]] = field(default_factory=list)
    truncate_last_line: bool = False
    bom_crlf: bool = False
    duplicate: bool = False

    def is_clean(self) -> bool:
        return (
            not (self.inserts or self.damages or self.truncate_last_line or self.bom_crlf)
            and not self.duplicate
        )


@dataclass(slots=True)
class FaultPlan:
    days: dict[int, DayFaults]
    song_bom_index: int  # index into the sorted written songs

    def for_day(self, day_index: int) -> DayFaults:
        return self.days.get(day_index, DayFaults())


def plan_faults(days: int, n_songs: int, seed: int) -> FaultPlan:
    """Choose where each fault goes. Whole-file faults get different days when possible."""
    rng = random.Random(f"{seed}:faults")
    plan: dict[int, DayFaults] = {}

    def day(i: int) -> DayFaults:
        return plan.setdefault(i, DayFaults())

    if days >= 3:
        truncate_day, bom_day, duplicate_day = rng.sample(range(days), 3)
    else:
        truncate_day, bom_day, duplicate_day = days - 1, 0, 0
    day(truncate_day).truncate_last_line = True
    day(bom_day).bom_crlf = True
    day(duplicate_day).duplicate = True

    line_days = [d for d in range(days) if d != duplicate_day] or [0]
    for kind, text, detail in INSERTED_LINES:
        day(rng.choice(line_days)).inserts.append((rng.randint(1, 12), kind, text, detail))
    for kind, qualifier, detail in DAMAGES:
        day(rng.choice(line_days)).damages.append((rng.randint(0, 12), kind, qualifier, detail))
    for faults in plan.values():
        faults.inserts.sort(key=lambda x: x[0])
        faults.damages.sort(key=lambda x: x[0])
    return FaultPlan(days=plan, song_bom_index=rng.randrange(n_songs))


def _replace_value(line: str, key: str, make: str) -> str:
    """Replace the JSON value of top-level ``key`` (a number or string) with ``make``.

    ``make`` may contain ``{v}``, the old value's text.
    """
    marker = f'"{key}":'
    start = line.index(marker) + len(marker)
    end = start
    if line[start] == '"':
        end = line.index('"', start + 1) + 1
    else:
        while line[end] not in ",}":
            end += 1
    return line[:start] + make.format(v=line[start:end]) + line[end:]


def qualifies(line: str, is_song: bool, qualifier: str) -> bool:
    if qualifier == "song":
        return is_song
    if qualifier == "user":
        return '"auth":"Logged In"' in line
    return True


def damage_line(line: str, kind: str) -> bytes:
    """The damaged bytes of an event line."""
    if kind == "invalid_utf8":
        return line.replace('"song":"', '"song":"\x00', 1).encode("ascii").replace(b"\x00", b"\xe9")
    if kind == "nul_in_string":
        text = line.replace('"song":"', '"song":"\\u0000', 1)
    elif kind == "ts_as_string":
        text = _replace_value(line, "ts", '"{v}"')
    elif kind == "user_id_as_number":
        head, _, user_id = line.rpartition('"userId":"')  # userId is the last field
        text = head + '"userId":' + user_id.replace('"}', "}")
    elif kind == "length_as_string":
        text = _replace_value(line, "length", '"{v}"')
    elif kind == "ts_not_a_number":
        text = _replace_value(line, "ts", '"yesterday"')
    else:
        raise ValueError(f"unknown damage: {kind}")
    return text.encode("ascii")


def truncate(line: bytes) -> bytes:
    """Cut a line mid-object: keep the first half, so the closing brace is gone."""
    return line[: max(1, len(line) // 2)]
