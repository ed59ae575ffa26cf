"""The docs site as `make docs` serves it, opened in a real headless Chromium (Debian's):
the full lineage graph must show every source, every staging model, the five marts,
the report models and the report's exposure, drawn inside the graph's view.
"""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Iterator

import pytest

from analyst_site import SCREENSHOTS
from helpers import REPO_ROOT, VENV_BIN, free_port
from sparkify.checks.docs_check import load_artifacts

pytestmark = pytest.mark.slow  # a real server: PostgreSQL, dbt, Chromium

MARTS = ("songplays", "users", "songs", "artists", "time")

# The docs app's own graph service holds the cytoscape instance it drew.
LINEAGE_NODES = """() => {
    const graph = angular.element(document.body).injector().get('graph');
    const cy = graph.graph_element;
    const box = cy.container().getBoundingClientRect();
    return cy.nodes().map(node => {
        const drawn = node.renderedBoundingBox();
        return {
            id: node.id(),
            visible: node.visible(),
            inside: drawn.w > 0 && drawn.h > 0 && drawn.x1 >= 0 && drawn.y1 >= 0
                && drawn.x2 <= box.width && drawn.y2 <= box.height,
        };
    });
}"""


@pytest.fixture(scope="module")
def docs_server(built_site) -> Iterator[str]:
    """`dbt docs serve` on the built target, as `make docs` runs it."""
    port = free_port()
    server = subprocess.Popen(
        [
            str(VENV_BIN / "dbt"),
            "docs",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-browser",
            "--project-dir",
            str(REPO_ROOT),
            "--target-path",
            str(built_site.target),
        ],
        env={
            **built_site.env,
            "DBT_PROFILES_DIR": str(built_site.work / "dbt-profiles"),
            "DO_NOT_TRACK": "1",
        },
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as answer:
                    assert answer.status == 200
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    server.kill()
                    pytest.fail(f"dbt docs serve did not answer: {server.communicate()[1]}")
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_lineage_graph_shows_sources_staging_marts_and_reports(
    built_site, docs_server, chromium_browser
):
    manifest, _ = load_artifacts(built_site.target)
    models = {
        node["unique_id"]: node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
    }
    expected = {
        "sources": set(manifest["sources"]),
        "staging": {
            uid
            for uid, node in models.items()
            if node["original_file_path"].startswith("models/staging/")
        },
        "marts": {uid for uid, node in models.items() if node["name"] in MARTS},
        "reports": {
            uid
            for uid, node in models.items()
            if node["original_file_path"].startswith("models/reports/")
        },
        "exposures": set(manifest["exposures"]),
    }
    assert len(expected["sources"]) == 5  # events, songs, rejects, load_manifest, loads
    assert len(expected["marts"]) == 5
    assert expected["staging"] and expected["reports"] and expected["exposures"]

    page = chromium_browser.new_page(viewport={"width": 1600, "height": 1000})
    outside = []
    page.on(
        "request",
        lambda request: (
            None
            if request.url.startswith(docs_server) or request.url.startswith("data:")
            else outside.append(request.url)
        ),
    )
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        # The "View Lineage Graph" button opens this: the whole project's DAG.
        page.goto(docs_server + "#!/overview?g_v=1", wait_until="load")
        page.wait_for_function(
            "() => { try { const g = angular.element(document.body).injector().get('graph');"
            " return g.graph_element && g.graph_element.nodes().length > 0; }"
            " catch (e) { return false; } }",
            timeout=60_000,
        )
        # Wait for the layout to settle: every node placed inside the view.
        page.wait_for_function(
            f"() => ({LINEAGE_NODES})().every(node => node.inside)", timeout=60_000
        )
        shown = page.evaluate(LINEAGE_NODES)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shot = SCREENSHOTS / "docs_lineage.png"
        page.screenshot(path=str(shot))
    finally:
        page.close()

    drawn = {node["id"] for node in shown if node["visible"] and node["inside"]}
    for layer, wanted in expected.items():
        assert wanted <= drawn, f"{layer} missing from the lineage graph: {wanted - drawn}"
    assert outside == [], f"the docs site fetched from outside localhost: {outside}"
    assert errors == []
    assert shot.stat().st_size > 20_000


def test_static_one_file_site_is_complete(built_site):
    """`dbt docs generate --static` gives one file with the manifest and catalog inside."""
    page = (built_site.target / "static_index.html").read_text(encoding="utf-8")
    manifest, _ = load_artifacts(built_site.target)
    for uid in [*manifest["sources"], *manifest["exposures"]] + [
        uid for uid in manifest["nodes"] if uid.startswith(("model.", "seed."))
    ]:
        assert f'"{uid}"' in page, uid
