"""Print the row count of each mart in the analytics schema: the last step of `make run`."""

from __future__ import annotations

import sys

import psycopg
from psycopg import sql

MARTS = ("songplays", "users", "songs", "artists", "time")


def mart_counts(conn: psycopg.Connection) -> dict[str, int]:
    counts = {}
    for mart in MARTS:
        query = sql.SQL("select count(*) from {}").format(sql.Identifier("analytics", mart))
        counts[mart] = conn.execute(query).fetchone()[0]
    return counts


def main() -> int:
    try:
        with psycopg.connect() as conn:
            counts = mart_counts(conn)
    except psycopg.Error as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"mart_counts: {message} (has 'make build' run?)", file=sys.stderr)
        return 1
    width = max(len(mart) for mart in MARTS)
    print("analytics marts:")
    for mart, count in counts.items():
        print(f"  {mart:<{width}}  {count:>10,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
