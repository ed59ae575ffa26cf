"""Small objects of a batch fetched ahead, so that a remote store's wait before
each first byte is paid by many requests at once, not by one file after another.

A remote store answers each GET after tens of milliseconds, and a song file is
one tiny object: read one at a time, a worker spends nearly all its time
waiting. A `ReadAhead` keeps up to `threads` GETs in flight for the files of the
batch being loaded, in the order the batch reads them; the loader still reads,
hashes and copies each file in that order, in the batch's one transaction, so
what lands, and when it commits, is as before.

Bounds: at most `threads` requests at once (that many threads, per process),
and at most `threads` fetched objects waiting to be read, each at most
`whole_bytes` (a bigger object is not fetched ahead: it is streamed when its
turn comes, as before; so is one that has grown past it since it was listed).
So the memory it holds is at most threads x whole_bytes per process.

A fetch fails the way a read would (a SkippedFile, an ObjectStoreError after
the store's retry policy): its error is raised when the loader opens the file,
so the batch handles it at the same place and in the same way as before.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future

from sparkify.loader.files import SourceFile

# A file's bytes, or None if it is to be read in its turn after all.
Fetch = Callable[[SourceFile], bytes | None]


class _Window:
    """The files of one pass over a batch: those fetched or being fetched, and
    those still to be asked for."""

    def __init__(self, pool: ReadAhead, files: Sequence[SourceFile]):
        self._pool = pool
        self._next = deque(file for file in files if file.size <= pool.whole_bytes)
        self._ahead: dict[str, Future[bytes | None]] = {}
        self._fill()

    def _fill(self) -> None:
        while self._next and len(self._ahead) < self._pool.threads:
            file = self._next.popleft()
            self._ahead[file.name] = self._pool.submit(file)

    def take(self, file: SourceFile) -> Future[bytes | None] | None:
        """The fetch of this file, if it was fetched ahead; the window moves on."""
        future = self._ahead.pop(file.name, None)
        self._fill()
        return future

    def close(self) -> None:
        # Not waited for: a fetch under way ends on its own (within the store
        # timeout) and its bytes are dropped; one not started never starts.
        for future in self._ahead.values():
            future.cancel()
        self._ahead.clear()
        self._next.clear()


class ReadAhead:
    """`threads` daemon threads that run `fetch` for the files of the current
    window. Made per process, on first use (threads do not survive a fork), and
    daemon threads: a process that is stopped or fails does not wait for them."""

    def __init__(self, fetch: Fetch, threads: int, whole_bytes: int):
        self.fetch = fetch
        self.threads = threads
        self.whole_bytes = whole_bytes
        self._work: queue.SimpleQueue[tuple[Future[bytes | None], SourceFile]] = queue.SimpleQueue()
        self._pid = 0
        self._window: _Window | None = None

    def submit(self, file: SourceFile) -> Future[bytes | None]:
        if self._pid != os.getpid():
            self._work, self._pid = queue.SimpleQueue(), os.getpid()
            for number in range(self.threads):
                threading.Thread(
                    target=self._run, args=(self._work,), name=f"read ahead {number}", daemon=True
                ).start()
        future: Future[bytes | None] = Future()
        self._work.put((future, file))
        return future

    def _run(self, work: queue.SimpleQueue[tuple[Future[bytes | None], SourceFile]]) -> None:
        while True:
            future, file = work.get()
            if not future.set_running_or_notify_cancel():  # its window was closed
                continue
            try:
                future.set_result(self.fetch(file))
            except BaseException as exc:  # raised again where the file is opened
                future.set_exception(exc)

    @contextlib.contextmanager
    def window(self, files: Sequence[SourceFile]) -> Iterator[None]:
        """Fetch these files ahead while the block runs (one pass over a batch)."""
        self._window = _Window(self, files)
        try:
            yield
        finally:
            self._window.close()
            self._window = None

    def take(self, file: SourceFile) -> bytes | None:
        """The file's bytes if they were fetched ahead (waiting for them if they
        are still on their way), or None: then the file is read as before."""
        future = self._window.take(file) if self._window is not None else None
        return None if future is None else future.result()
