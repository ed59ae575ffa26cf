"""`python -m sparkify.generator` (or `sparkify-generate`): the demo feed, see cli.py."""

import sys

from sparkify.generator.cli import main

if __name__ == "__main__":
    sys.exit(main())
