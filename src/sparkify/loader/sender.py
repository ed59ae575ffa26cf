"""A COPY writer that sends from a thread of its own.

Without it a worker alternates: it reads and formats a block while its
PostgreSQL backend waits, then waits while the backend parses the block. With
it, the next block is read and formatted while the backend parses this one, so
one worker runs at about the speed of its backend alone. (The thread mostly
waits on the socket, without the GIL.)

psycopg's own `psycopg.copy.QueuedLibpqWriter` does the same, but its queue
holds up to 1024 buffers: about 128 MB when the client formats faster than the
server parses, as here. This one holds at most `QUEUE_BLOCKS` blocks, so a
worker's memory stays flat whatever the size of the file.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

import psycopg
from psycopg.abc import Buffer
from psycopg.copy import LibpqWriter

# Blocks formatted ahead of the one being sent. One is enough to overlap; a few
# absorb the jitter of a shared machine. Each is about lines.CHUNK_BYTES.
QUEUE_BLOCKS = 3


class QueuedWriter(LibpqWriter):
    """`LibpqWriter` whose writes are handed to a sending thread (bounded queue)."""

    def __init__(self, cursor: psycopg.Cursor[Any]):
        super().__init__(cursor)
        self._blocks: queue.Queue[Buffer] = queue.Queue(maxsize=QUEUE_BLOCKS)
        self._sender: threading.Thread | None = None
        self._failure: BaseException | None = None

    def _send(self) -> None:
        try:
            while data := self._blocks.get():
                super().write(data)
        except BaseException as exc:  # handed to the caller by write() or finish()
            self._failure = exc
            while self._blocks.get():  # keep taking, so that write() never blocks
                pass

    def write(self, data: Buffer) -> None:
        if self._failure is not None:
            raise self._failure
        if self._sender is None:  # started here: a COPY that never starts leaves none
            self._sender = threading.Thread(target=self._send, name="copy sender", daemon=True)
            self._sender.start()
        self._blocks.put(data)

    def finish(self, exc: BaseException | None = None) -> None:
        if self._sender is not None:
            self._blocks.put(b"")  # the end: the thread sends what is queued, then stops
            self._sender.join()
            self._sender = None
        if self._failure is not None:
            raise self._failure
        super().finish(exc)
