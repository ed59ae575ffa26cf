"""Synthetic Sparkify source data: song files and event logs shaped like the real feed.

The package is the engine behind ``python -m sparkify.generator`` (cli.py). Each module has one job:

- ``vocab``: fixed word lists (names, metro areas, user agents, song-title words);
- ``catalogue``: artists and songs, the written catalogue and the hidden "universe",
  and the near-miss spellings of catalogue songs seen in the logs;
- ``users``: the simulated listeners and their stable attributes;
- ``events``: sessions and events, merged into timestamp order, rendered as log lines;
- ``faults``: the damage ``--faults`` adds to chosen files, and its manifest;
- ``writer``: the on-disk layout (song_data/, log_data/, _truth/);
- ``generator``: the orchestration used by the CLI.

Everything is standard library only and deterministic for a given seed and options.
"""

from sparkify.generator.generator import GeneratorConfig, OutputExistsError, generate

__all__ = ["GeneratorConfig", "OutputExistsError", "generate"]
