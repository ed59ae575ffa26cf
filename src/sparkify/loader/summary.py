"""What a load did: the summary on stdout, as prose or as one JSON object (--json)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Summary:
    files_found: int
    files_loaded: int  # new or changed files landed, each in some load
    files_replaced: int  # of those, files whose earlier version was replaced
    files_unchanged: int
    files_skipped: int  # listed, but not .json or .json.gz
    paths_unreadable: list[str]  # folders or files that could not be listed
    files_vanished: list[str]  # loaded before, no longer in the feed
    files_pruned: int  # of those, removed (--prune)
    event_rows: int
    song_rows: int
    rejects: int
    loads: int  # loads this run committed (rows in raw.loads, or the lake's loads/)
    first_load_id: int  # 0 when no load was committed
    last_load_id: int
    workers: int
    batches: int
    seconds: float
    seconds_listing: float
    seconds_planning: float
    seconds_loading: float
    # Listed files that could not be read at all and were left out of their load
    # (gone since they were listed, archived): (name, why); the next run tries them.
    files_unreadable: list[tuple[str, str]] = field(default_factory=list)
    lake: str | None = field(default=None)  # the lake folder, for a --lake load

    def as_dict(self) -> dict[str, Any]:
        """The JSON object's fields: `lake` only for a lake load; each unreadable
        file as {"file": name, "reason": why}."""
        fields = asdict(self)
        fields["files_unreadable"] = [
            {"file": name, "reason": why} for name, why in self.files_unreadable
        ]
        if self.lake is None:
            del fields["lake"]
        return fields

    def as_json(self) -> str:
        return json.dumps(self.as_dict())

    def prose(self) -> str:
        loads = self.loads
        ids = (
            ""
            if not loads
            else f", load id {self.first_load_id}"
            if loads == 1
            else f", load ids {self.first_load_id}-{self.last_load_id}"
        )
        return (
            f"loaded {self.files_loaded} files ({self.files_replaced} replaced), "
            f"{self.files_unchanged} unchanged, {self.files_skipped} skipped as not data; "
            f"{self.event_rows} event rows, {self.song_rows} song rows, "
            f"{self.rejects} rejects; {loads} load{'s' if loads != 1 else ''}{ids}; "
            f"{len(self.files_vanished)} no longer in the feed "
            f"({self.files_pruned} pruned), "
            f"{len(self.paths_unreadable)} paths unreadable, "
            f"{len(self.files_unreadable)} files unreadable; "
            f"in {self.seconds:.1f} s "
            f"(listing {self.seconds_listing:.1f} s, planning {self.seconds_planning:.1f} s, "
            f"loading {self.seconds_loading:.1f} s with {self.workers} "
            f"worker{'s' if self.workers != 1 else ''})"
        )
