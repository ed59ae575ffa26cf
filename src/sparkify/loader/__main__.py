"""The loader's command: `python -m sparkify.loader`, `sparkify-load`, and
`python ingest/load_raw.py` (the documented front end) all run main() here.

Ctrl-C or SIGTERM while the loader's modules still import (the first fraction
of a second) is said in one line, not a traceback: nothing was loaded yet. So
the handlers are set before the import, which main() makes itself.
"""

import os
import signal
import sys


def _stopped_while_starting(signum: int, frame: object) -> None:
    name = "interrupted" if signum == signal.SIGINT else "terminated (SIGTERM)"
    os.write(2, f"load_raw: {name} while starting; nothing was loaded\n".encode())
    os._exit(128 + signum)  # 130 for Ctrl-C, 143 for SIGTERM, as once under way


def main() -> int:
    signal.signal(signal.SIGINT, _stopped_while_starting)
    signal.signal(signal.SIGTERM, _stopped_while_starting)
    from sparkify.loader.cli import main as load

    return load()


if __name__ == "__main__":
    sys.exit(main())
