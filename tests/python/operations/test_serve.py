"""The orchestrator as `make serve` runs it: Dagster's daemon and web UI on
127.0.0.1, its run history in PostgreSQL, watching a feed folder. Asked through
the web UI's GraphQL API (what the UI itself reads) and, once, through the UI in
Chromium. The tests of this module share one `make serve` and run in order.

- a day's file dropped into the feed is loaded and built by the sensor, no
  command typed, and the marts equal a full refresh; an unchanged feed starts
  nothing;
- two runs launched at once build one after the other (the second waits, Queued);
- the asset graph in the UI launches a run that succeeds;
- a failing error-severity test fails the run, and the webhook gets one alert;
- run history survives a restart.
"""

from __future__ import annotations

import http.server
import json
import re
import shutil
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from analyst_site import SCREENSHOTS
from helpers import (
    MARTS,
    REPO_ROOT,
    admin_conninfo,
    connect,
    free_port,
    generate_feed,
    plain_run_marts,
    throwaway_database,
    warehouse_fingerprint,
)

pytestmark = pytest.mark.slow  # PostgreSQL, dbt, the Dagster daemon, Chromium

FEED = ("--days", "3", "--users", "20", "--songs", "40", "--events-per-day", "100")
LOCATION = {"repositoryLocationName": "sparkify", "repositoryName": "__repository__"}
RUN_SECONDS = 900  # a run on this small feed takes ~30 s alone; CI shares the cores
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


class Webhook(http.server.ThreadingHTTPServer):
    """A small HTTP server on 127.0.0.1 that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/alert"


@dataclass
class Served:
    url: str
    env: dict[str, str]  # make serve's environment (PG* of the warehouse database)
    feed: Path
    day_files: list[Path]  # the generated days not yet in the feed
    webhook: Webhook
    runs_seen: list[str] = field(default_factory=list)

    def gql(self, query: str, **variables: Any) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query, "variables": variables}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            said = json.load(answer)
        assert "errors" not in said, said
        return said["data"]

    def runs(self) -> list[dict[str, Any]]:
        data = self.gql(
            "{ runsOrError(limit: 100) { ... on Runs { results {"
            " runId jobName status startTime endTime tags { key value } } } } }"
        )
        return data["runsOrError"]["results"]

    def run(self, run_id: str) -> dict[str, Any]:
        return next(run for run in self.runs() if run["runId"] == run_id)

    def ticks(self, sensor: str, after: float = 0) -> list[dict[str, Any]]:
        """The sensor's evaluated ticks (not the one under way) since `after`."""
        data = self.gql(
            "query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) {"
            " ... on Sensor { sensorState { ticks(limit: 100) {"
            " tickId status timestamp skipReason runIds } } } } }",
            s={**LOCATION, "sensorName": sensor},
        )
        ticks = data["sensorOrError"]["sensorState"]["ticks"]
        return [t for t in ticks if t["status"] != "STARTED" and t["timestamp"] > after]

    def launch(self) -> str:
        data = self.gql(
            "mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {"
            " __typename ... on LaunchRunSuccess { run { runId } }"
            " ... on PythonError { message } } }",
            p={"selector": {**LOCATION, "jobName": "sparkify"}, "runConfigData": {}},
        )
        assert data["launchRun"]["__typename"] == "LaunchRunSuccess", data
        return data["launchRun"]["run"]["runId"]

    def wait_finished(self, run_id: str) -> dict[str, Any]:
        return wait_for(
            lambda: (run := self.run(run_id))["status"] in FINISHED and run,
            f"run {run_id} to finish",
        )

    def sensor_runs(self) -> list[dict[str, Any]]:
        tagged = [
            run
            for run in self.runs()
            if {"key": "dagster/sensor_name", "value": "sparkify_feed"} in run["tags"]
        ]
        return sorted(tagged, key=lambda run: run["startTime"] or float("inf"))


def wait_for(check: Callable[[], Any], what: str, seconds: float = RUN_SECONDS) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"waited {seconds:.0f} s for {what}")
        time.sleep(2)


def make(target: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", target],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def served(server_env, tmp_path_factory) -> Iterator[Served]:
    """`make serve` on a feed of two days (a third kept back), a database of its
    own, its run history in another, a webhook listening; stopped at the end."""
    work = tmp_path_factory.mktemp("served")
    generate_feed(work / "generated", *FEED, "--seed", "5")
    days = sorted((work / "generated" / "log_data").rglob("*.json"))
    shutil.copytree(work / "generated", work / "feed", ignore=shutil.ignore_patterns("_*"))
    for day in days[2:]:
        (work / "feed" / day.relative_to(work / "generated")).unlink()
    webhook = Webhook()
    threading.Thread(target=webhook.serve_forever, daemon=True).start()
    history = f"sparkify_pytest_dagster_{uuid.uuid4().hex[:12]}"
    port = free_port()
    try:
        for env in throwaway_database(server_env):
            env = {
                **env,
                "DATA_DIR": str(work / "feed"),
                "DAGSTER_HOME": str(work / "dagster"),
                "SERVE_PORT": str(port),
                "SPARKIFY_SENSOR_SECONDS": "5",
                "SPARKIFY_DAGSTER_DB": history,
                "SPARKIFY_ALERT_WEBHOOK": webhook.url,
                "SPARKIFY_REPORT": str(work / "report.html"),
            }
            started = make("serve", env)
            assert started.returncode == 0, started.stderr[-3000:]
            url = f"http://127.0.0.1:{port}"
            assert url in started.stdout
            try:
                yield Served(url, env, work / "feed", days[2:], webhook)
            finally:
                stopped = make("stop-serve", env)
                assert stopped.returncode == 0, stopped.stderr
    finally:
        webhook.shutdown()
        with psycopg.connect(admin_conninfo(server_env), autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(history))
            )


def test_the_sensor_builds_a_new_day_with_no_command_typed(served, server_env, tmp_path):
    # Started on a feed never loaded: the sensor's first tick asks for a run.
    first = served.wait_finished(
        wait_for(lambda: [r["runId"] for r in served.sensor_runs()], "the sensor's first run")[0]
    )
    assert first["status"] == "SUCCESS"
    # An unchanged feed: ticks that skip, and no other run.
    wait_for(
        lambda: len(served.ticks("sparkify_feed", after=first["endTime"])) >= 2,
        "two sensor ticks after the first run",
    )
    later = served.ticks("sparkify_feed", after=first["endTime"])
    assert {t["status"] for t in later} == {"SKIPPED"}
    assert [t["runIds"] for t in later] == [[] for _ in later]
    assert len(served.sensor_runs()) == 1

    # A day's file dropped into the feed folder.
    day = served.day_files[0]
    target = served.feed / day.relative_to(day.parents[3])
    shutil.copy(day, target)
    second = wait_for(lambda: served.sensor_runs()[1:], "a run for the new day")[0]
    assert served.wait_finished(second["runId"])["status"] == "SUCCESS"

    plain = plain_run_marts(server_env, served.feed, tmp_path)
    assert warehouse_fingerprint(served.env, MARTS, load_times=False) == plain


def test_two_runs_launched_at_once_build_one_after_the_other(served):
    launched = [served.launch(), served.launch()]
    waited = False
    while True:
        statuses = {run["runId"]: run["status"] for run in served.runs()}
        mine = [statuses[run_id] for run_id in launched]
        waited |= "QUEUED" in mine and bool({"STARTING", "STARTED"} & set(mine))
        if set(mine) <= FINISHED:
            break
        time.sleep(1)
    runs = sorted((served.run(run_id) for run_id in launched), key=lambda r: r["startTime"])
    assert [run["status"] for run in runs] == ["SUCCESS", "SUCCESS"]
    assert runs[0]["endTime"] <= runs[1]["startTime"]
    assert waited, "the second run was never seen waiting in the queue"


def test_the_asset_graph_in_the_web_ui_launches_a_run_that_succeeds(served, chromium_browser):
    before = {run["runId"] for run in served.runs()}
    page = chromium_browser.new_page(viewport={"width": 1600, "height": 1000})
    try:
        page.goto(f"{served.url}/asset-groups", wait_until="load")
        graph = page.get_by_text("Global asset lineage")
        graph.wait_for(timeout=120_000)
        # The lineage the docs site draws, by group: raw -> dbt's groups -> report.
        for group in ("raw", "analytics", "report"):
            page.locator(f"text=/^{group}$/").first.wait_for(timeout=120_000)
        page.get_by_role("button", name="Materialize all").click()
        new = wait_for(
            lambda: [r["runId"] for r in served.runs() if r["runId"] not in before],
            "the run the UI launched",
            seconds=120,
        )[0]
        page.goto(f"{served.url}/runs/{new}", wait_until="load")
        page.get_by_text(re.compile(r"^Success$")).first.wait_for(timeout=RUN_SECONDS * 1000)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "dagster_run.png"))
    finally:
        page.close()
    assert served.run(new)["status"] == "SUCCESS"


def test_a_failing_error_test_fails_the_run_and_alerts_once(served):
    # A play by a listener who is in no `users` row: the error-severity
    # relationships test on songplays.user_id fails (songplays is incremental,
    # so the next build keeps the row).
    with connect(served.env) as conn:
        conn.execute(
            "create temp table stray as select * from analytics.songplays limit 1;"
            "update stray set songplay_id = md5('stray'), user_id = 'no such listener';"
            "insert into analytics.songplays select * from stray"
        )
    run = served.wait_finished(served.launch())
    assert run["status"] == "FAILURE"
    events = served.gql(
        "query($r: ID!) { logsForRun(runId: $r) { ... on EventConnection { events {"
        " __typename ... on AssetCheckEvaluationEvent { evaluation {"
        " checkName success severity assetKey { path } } } } } } }",
        r=run["runId"],
    )["logsForRun"]["events"]
    failed = [
        e["evaluation"]
        for e in events
        if e["__typename"] == "AssetCheckEvaluationEvent" and not e["evaluation"]["success"]
    ]
    assert {(f["assetKey"]["path"][-1], f["severity"]) for f in failed} >= {("songplays", "ERROR")}
    assert any("user_id" in f["checkName"] and "relationships" in f["checkName"] for f in failed)

    wait_for(lambda: served.webhook.received, "the alert")
    # A few more ticks of the alert sensor: still one alert.
    alerted = served.webhook.received[0]
    seen = time.time()
    wait_for(
        lambda: len(served.ticks("sparkify_alert", after=seen)) >= 2,
        "two more ticks of the alert sensor",
    )
    assert [alert["run_id"] for alert in served.webhook.received] == [run["runId"]]
    assert alerted["job"] == "sparkify"
    with connect(served.env) as conn:
        conn.execute("delete from analytics.songplays where user_id = 'no such listener'")


def test_run_history_survives_a_restart(served):
    before = {run["runId"]: run["status"] for run in served.runs()}
    assert make("stop-serve", served.env).returncode == 0
    restarted = make("serve", served.env)
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    after = {run["runId"]: run["status"] for run in served.runs()}
    assert set(before) <= set(after)
    finished = {run_id: status for run_id, status in before.items() if status in FINISHED}
    assert finished.items() <= after.items()
