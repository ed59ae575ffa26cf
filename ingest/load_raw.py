"""Raw-load the Sparkify feed into PostgreSQL: `python ingest/load_raw.py --help`.

A thin front end over raw_loader.cli. Ctrl-C or SIGTERM while the modules
still import (the first fraction of a second) is said in one line, not a
traceback: nothing was loaded yet.
"""

import os
import signal
import sys


def _stopped_while_starting(signum: int, frame: object) -> None:
    name = "interrupted" if signum == signal.SIGINT else "terminated (SIGTERM)"
    os.write(2, f"load_raw: {name} while starting; nothing was loaded\n".encode())
    os._exit(128 + signum)  # 130 for Ctrl-C, 143 for SIGTERM, as once under way


signal.signal(signal.SIGINT, _stopped_while_starting)
signal.signal(signal.SIGTERM, _stopped_while_starting)

from raw_loader.cli import main  # noqa: E402  (after the handlers, on purpose)

if __name__ == "__main__":
    sys.exit(main())
