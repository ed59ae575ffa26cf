"""Raw-load the Sparkify feed into PostgreSQL: `python ingest/load_raw.py --help`.

The documented front end of the loader, the same as `python -m sparkify.loader`
(src/sparkify/loader/): kept so that the command the docs name stays short.
"""

import sys

from sparkify.loader.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
