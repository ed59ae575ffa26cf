"""The feed listed in a thread while the load goes on (run.py).

An object store lists at most 1,000 keys per request, each a round trip: a
feed of a million objects is a thousand of them. The listing runs in a thread
of the coordinator, which plans the parts listed so far and hands out their
batches while the rest is listed.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

from sparkify.loader.files import FileSource, SourceFile, whole_listing

Part = tuple[list[SourceFile], list[str]]  # data files, names skipped as not data


class BackgroundListing:
    """`source.list_pages()` run in a daemon thread: it ends with the process if
    the load stops first (a listing holds no lock and writes nothing)."""

    def __init__(self, source: FileSource):
        self._parts: queue.Queue[Part | BaseException | None] = queue.Queue()
        self._listed: list[Part] = []  # every part taken so far
        self._waiting: list[Part] = []  # parts taken by wait_for_files, not yet by parts()
        self._ended = False  # the end of the listing was taken
        self._whole: Part | None = None  # all of it, once ended (whole())
        self.finished_at: float | None = None
        threading.Thread(
            target=self._list, args=(source,), name="load_raw listing", daemon=True
        ).start()

    def _list(self, source: FileSource) -> None:
        try:
            for part in source.list_pages():
                self._parts.put(part)
        except BaseException as exc:  # raised again where the parts are taken
            self._parts.put(exc)
        else:
            self.finished_at = time.monotonic()
            self._parts.put(None)

    def _next(self) -> Part | None:
        """The next part listed (None: the end); the listing's error, if it failed."""
        part = self._parts.get()
        if isinstance(part, BaseException):
            raise part
        if part is not None:
            self._listed.append(part)
        return part

    def wait_for_files(self) -> bool:
        """Wait until a part with a data file is listed (True) or the listing
        ends without one (False): a store that cannot be listed, or a feed with
        nothing, is said before the database is touched."""
        while (part := self._next()) is not None:
            self._waiting.append(part)
            if part[0]:
                return True
        self._ended = True
        return False

    def parts(self) -> Iterator[Part]:
        """The parts as they are listed; the listing's error, if it fails."""
        yield from self._waiting
        if self._ended:
            return
        while (part := self._next()) is not None:
            yield part
        self._ended = True

    def whole(self) -> Part:
        """Every part so far as one listing (after `parts()` has ended: all of
        it, joined and sorted once)."""
        if not self._ended:
            return whole_listing(self._listed)
        if self._whole is None:
            self._whole = whole_listing(self._listed)
        return self._whole
