"""The analysts' side, built once per test session: a warehouse on the default demo
feed, its dbt docs (manifest, catalog, site) and a headless Chromium to look at them.

Registered as a pytest plugin by conftest.py, so operations/test_docs_coverage.py,
test_docs_site.py and test_report_page.py share one build: generate -> load ->
dbt build -> dbt docs generate, exactly the steps of `make run`, in a database of
its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from helpers import REPO_ROOT, admin_conninfo, generate_feed, run_dbt, run_loader

# Screenshots the browser tests take: kept after the run, ignored by git.
SCREENSHOTS = REPO_ROOT / "target" / "screenshots"


@dataclass(frozen=True)
class BuiltSite:
    env: dict[str, str]  # PG* variables of the built database
    work: Path  # the folder run_dbt used: dbt-target/, dbt-profiles/
    target: Path  # dbt's target folder: manifest.json, catalog.json, index.html


@pytest.fixture(scope="session")
def built_site(server_env: dict[str, str], tmp_path_factory) -> Iterator[BuiltSite]:
    work = tmp_path_factory.mktemp("analyst_site")
    name = f"sparkify_pytest_site_{uuid.uuid4().hex[:12]}"
    admin = admin_conninfo(server_env)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    env = {**server_env, "PGDATABASE": name}
    try:
        feed = work / "feed"
        generate_feed(feed)  # the default demo month, as make run writes it
        loaded = run_loader(env, "--data-dir", feed)
        assert loaded.returncode == 0, loaded.stderr
        # --warn-error: the demo builds without a single warning (dbt's own, or a
        # warn-severity test finding rows), as `make run` shows a newcomer.
        for command in (["--warn-error", "build"], ["docs", "generate", "--static"]):
            done = run_dbt(env, work, *command)
            assert done.returncode == 0, done.stdout[-4000:]
        yield BuiltSite(env=env, work=work, target=work / "dbt-target")
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="session")
def chromium_browser():
    """A headless Debian Chromium (installed first when missing and root)."""
    from playwright.sync_api import sync_playwright

    from headless_chromium import launch

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            yield browser
        finally:
            browser.close()
