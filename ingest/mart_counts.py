"""Print the row count of each mart in the analytics schema: the last step of `make run`.

With --spark-warehouse DIR (make run-spark), the marts are read from a local Spark
warehouse folder instead: each mart is a managed Parquet table in
DIR/analytics.db/<mart>/, read with pyarrow once dbt has finished.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import psycopg
from psycopg import sql

from raw_loader.errors import one_line

MARTS = ("songplays", "users", "songs", "artists", "time")


def mart_counts(conn: psycopg.Connection) -> dict[str, int]:
    counts = {}
    for mart in MARTS:
        query = sql.SQL("select count(*) from {}").format(sql.Identifier("analytics", mart))
        row = conn.execute(query).fetchone()
        assert row is not None  # count(*) always returns one row
        counts[mart] = row[0]
    return counts


def spark_mart_counts(warehouse: Path) -> dict[str, int]:
    import pyarrow.parquet as pq  # requirements-spark.txt

    return {
        mart: pq.ParquetDataset(warehouse / "analytics.db" / mart).read([]).num_rows
        for mart in MARTS
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spark-warehouse", type=Path, help="a local Spark warehouse folder")
    args = parser.parse_args(argv)
    if args.spark_warehouse is not None:
        try:
            counts = spark_mart_counts(args.spark_warehouse)
        except (OSError, ValueError) as exc:
            print(f"mart_counts: {exc} (has 'make build-spark' run?)", file=sys.stderr)
            return 1
        return _print(counts)
    try:
        with psycopg.connect() as conn:
            counts = mart_counts(conn)
    except psycopg.Error as exc:
        print(f"mart_counts: {one_line(exc)} (has 'make build' run?)", file=sys.stderr)
        return 1
    return _print(counts)


def _print(counts: dict[str, int]) -> int:
    width = max(len(mart) for mart in MARTS)
    print("analytics marts:")
    for mart, count in counts.items():
        print(f"  {mart:<{width}}  {count:>10,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
