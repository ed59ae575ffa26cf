"""Create the warehouse's three roles and give each exactly what its job needs.

  loader       writes raw only: owns schema raw and its tables (ingest/load_raw.py)
  transformer  reads raw; owns and builds staging and analytics (dbt build)
  analyst      reads analytics and reports only, and finds them without a schema
               prefix (its search_path in this database: analytics, reports, public)

Run it once per database, as a superuser or a role with CREATEROLE that owns the
database (with the embedded server: `make roles`). It is idempotent: run it again
after a `make run` as superuser and it hands the existing objects to their roles.
Grants on each mart are kept after every build by dbt itself (the `grants` config
in dbt_project.yml and macros/grants.sql); this command sets up the rest.

Role names come from SPARKIFY_LOADER_ROLE, SPARKIFY_TRANSFORMER_ROLE and
SPARKIFY_ANALYST_ROLE (defaults sparkify_loader, sparkify_transformer,
sparkify_analyst). Passwords come only from SPARKIFY_LOADER_PASSWORD,
SPARKIFY_TRANSFORMER_PASSWORD and SPARKIFY_ANALYST_PASSWORD: never from
arguments, never printed, and sent to the server only as a SCRAM-SHA-256
verifier computed here, so not even the server's statement log sees them.
Without a password variable the role's password is left as it is (none for a new
role: it logs in however pg_hba.conf allows, e.g. peer or a unix socket).

The connection comes from the standard libpq variables (PGHOST, PGPORT, PGUSER,
PGPASSWORD or ~/.pgpass, PGDATABASE).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from dataclasses import dataclass

import psycopg
from psycopg import sql

from sparkify.messages import one_line

log = logging.getLogger("setup_roles")

EXIT_OK = 0
EXIT_DATABASE = 1
EXIT_USAGE = 2

# Plain lowercase identifiers only: the same names go into dbt's grants config.
ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Every schema dbt builds belongs to the transformer: staging (with the intermediate
# models), analytics (the marts), reports (the analysts' rpt_ tables), audit
# (reconciliation) and reference (seeds).
SCHEMA_OWNERS = {
    "raw": "loader",
    "staging": "transformer",
    "analytics": "transformer",
    "reports": "transformer",
    "audit": "transformer",
    "reference": "transformer",
}
# What the analyst reads: the marts and the reports built on them.
ANALYST_SCHEMAS = ("analytics", "reports")
# The analyst's search_path in this database: `select * from songplays` finds the mart.
ANALYST_SEARCH_PATH = (*ANALYST_SCHEMAS, "public")


@dataclass(frozen=True)
class Role:
    job: str  # 'loader' | 'transformer' | 'analyst'
    name: str
    password: str | None


class UsageError(Exception):
    """A bad role name in the environment: said in one line, exit code 2."""


def roles_from_env(environ: os._Environ[str] | dict[str, str] = os.environ) -> list[Role]:
    roles = []
    for job in ("loader", "transformer", "analyst"):
        name = environ.get(f"SPARKIFY_{job.upper()}_ROLE", "").strip() or f"sparkify_{job}"
        if not ROLE_NAME.match(name):
            raise UsageError(
                f"SPARKIFY_{job.upper()}_ROLE must be a lowercase identifier "
                f"(letters, digits, _; at most 63), not {name!r}"
            )
        password = environ.get(f"SPARKIFY_{job.upper()}_PASSWORD") or None
        roles.append(Role(job, name, password))
    if len({role.name for role in roles}) != len(roles):
        raise UsageError("the loader, transformer and analyst roles must have different names")
    return roles


def setup(conn: psycopg.Connection, roles: list[Role]) -> None:
    """All of it in one transaction: a failure leaves the database as it was."""
    by_job = {role.job: sql.Identifier(role.name) for role in roles}
    database = sql.Identifier(conn.info.dbname)
    with conn.transaction():
        for role in roles:
            _ensure_role(conn, role)
        ex = conn.execute
        ex(sql.SQL("grant connect on database {} to {}, {}, {}").format(database, *by_job.values()))
        # PostgreSQL 15+ already denies this; older servers let anyone create in public.
        ex("revoke create on schema public from public")
        for schema, job in SCHEMA_OWNERS.items():
            _ensure_schema(conn, schema, job, by_job[job])
        loader, transformer, analyst = by_job["loader"], by_job["transformer"], by_job["analyst"]
        # raw: the transformer reads every table, today's and those the loader creates later.
        ex(sql.SQL("grant usage on schema raw to {}").format(transformer))
        ex(sql.SQL("grant select on all tables in schema raw to {}").format(transformer))
        ex(
            sql.SQL(
                "alter default privileges for role {} in schema raw grant select on tables to {}"
            ).format(loader, transformer)
        )
        # analytics: the analyst reads the marts. dbt re-grants each mart on every build.
        for schema in ANALYST_SCHEMAS:
            ident = sql.Identifier(schema)
            ex(sql.SQL("grant usage on schema {} to {}").format(ident, analyst))
            ex(sql.SQL("grant select on all tables in schema {} to {}").format(ident, analyst))
        # On the role in this database only: another database (another feed) sets its own.
        ex(
            sql.SQL("alter role {} in database {} set search_path = {}").format(
                analyst,
                database,
                sql.SQL(", ").join(map(sql.Identifier, ANALYST_SEARCH_PATH)),
            )
        )


def _ensure_role(conn: psycopg.Connection, role: Role) -> None:
    name = sql.Identifier(role.name)
    exists = conn.execute("select 1 from pg_roles where rolname = %s", [role.name]).fetchone()
    if exists:
        log.info("role %s exists: making sure it can log in", role.name)
        conn.execute(sql.SQL("alter role {} login").format(name))
    else:
        log.info("creating role %s (%s)", role.name, role.job)
        conn.execute(sql.SQL("create role {} login").format(name))
    if role.password:
        # libpq computes the verifier here; the password itself never reaches the server.
        verifier = conn.pgconn.encrypt_password(
            role.password.encode(), role.name.encode(), b"scram-sha-256"
        )
        conn.execute(
            sql.SQL("alter role {} password {}").format(name, sql.Literal(verifier.decode()))
        )
        log.info("role %s: password set from SPARKIFY_%s_PASSWORD", role.name, role.job.upper())


def _ensure_schema(conn: psycopg.Connection, schema: str, job: str, owner: sql.Identifier) -> None:
    """The schema exists, belongs to its role, and so does everything already in it."""
    ident = sql.Identifier(schema)
    conn.execute(sql.SQL("create schema if not exists {} authorization {}").format(ident, owner))
    conn.execute(sql.SQL("alter schema {} owner to {}").format(ident, owner))
    conn.execute(sql.SQL("revoke all on schema {} from public").format(ident))
    relations = conn.execute(
        "select c.relname, c.relkind from pg_class as c "
        "where c.relnamespace = %s::regnamespace and c.relkind in ('r', 'p', 'v', 'm')",
        [schema],
    ).fetchall()
    for relname, relkind in relations:
        # A table's indexes and owned sequences follow it.
        kind = {"v": "view", "m": "materialized view"}.get(relkind, "table")
        conn.execute(
            sql.SQL("alter {} {} owner to {}").format(
                sql.SQL(kind), sql.Identifier(schema, relname), owner
            )
        )
    functions = conn.execute(
        "select p.oid::regprocedure::text from pg_proc as p "
        "where p.pronamespace = %s::regnamespace",
        [schema],
    ).fetchall()
    for (signature,) in functions:
        # regprocedure's text is a qualified, quoted signature PostgreSQL itself wrote.
        conn.execute(sql.SQL("alter routine {} owner to {}").format(sql.SQL(signature), owner))
    if relations or functions:
        log.info(
            "schema %s: %d relations and %d functions now belong to the %s",
            schema,
            len(relations),
            len(functions),
            job,
        )


def build_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="sparkify-roles",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit codes: 0 done, 1 the database refused or could not be reached, 2 usage",
    )


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="setup_roles: %(message)s", stream=sys.stderr)
    try:
        roles = roles_from_env()
        with psycopg.connect(autocommit=True, application_name="sparkify setup_roles") as conn:
            setup(conn, roles)
            database = conn.info.dbname
    except UsageError as exc:
        print(f"setup_roles: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except psycopg.OperationalError as exc:
        print(f"setup_roles: cannot reach PostgreSQL: {one_line(exc)}", file=sys.stderr)
        return EXIT_DATABASE
    except psycopg.Error as exc:
        print(f"setup_roles: PostgreSQL refused: {one_line(exc)}", file=sys.stderr)
        return EXIT_DATABASE
    names = ", ".join(f"{role.job} {role.name}" for role in roles)
    print(f"roles ready in database {database}: {names}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
