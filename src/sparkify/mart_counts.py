"""Print the row count of each mart in the analytics schema: the last step of `make run`.

With --spark (make run-spark), the counts are asked of the Spark Thrift server
that dbt's `spark` output builds on (SPARKIFY_SPARK_THRIFT_HOST and _PORT,
default 127.0.0.1:10000), with PyHive: the warehouse belongs to the cluster,
not to a folder this process may read.
"""

from __future__ import annotations

import argparse
import os
import sys

import psycopg
from psycopg import sql

from sparkify.messages import one_line

MARTS = ("songplays", "users", "songs", "artists", "time")


def mart_counts(conn: psycopg.Connection) -> dict[str, int]:
    counts = {}
    for mart in MARTS:
        query = sql.SQL("select count(*) from {}").format(sql.Identifier("analytics", mart))
        row = conn.execute(query).fetchone()
        assert row is not None  # count(*) always returns one row
        counts[mart] = row[0]
    return counts


def spark_mart_counts(host: str, port: int) -> dict[str, int]:
    from pyhive import hive  # requirements-spark.txt (dbt-spark[PyHive])

    connection = hive.connect(host=host, port=port, username="mart_counts")
    try:
        cursor = connection.cursor()
        counts = {}
        for mart in MARTS:
            # MARTS are fixed names, not input: nothing to quote.
            cursor.execute(f"select count(*) from analytics.{mart}")
            counts[mart] = int(cursor.fetchone()[0])
        return counts
    finally:
        connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sparkify-counts", description=__doc__)
    parser.add_argument(
        "--spark",
        action="store_true",
        help="ask the Spark Thrift server (SPARKIFY_SPARK_THRIFT_HOST, _PORT) instead",
    )
    args = parser.parse_args(argv)
    if args.spark:
        host = os.environ.get("SPARKIFY_SPARK_THRIFT_HOST", "").strip() or "127.0.0.1"
        port = os.environ.get("SPARKIFY_SPARK_THRIFT_PORT", "").strip() or "10000"
        try:
            counts = spark_mart_counts(host, int(port))
        except Exception as exc:  # Thrift's, PyHive's and the socket's errors alike
            said = one_line(exc) or type(exc).__name__
            print(
                f"mart_counts: the Spark Thrift server {host}:{port}: {said} "
                "(is the cluster up, 'make spark-start', and has 'make build-spark' run?)",
                file=sys.stderr,
            )
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
