"""The Prefect UI as a merchant sees it: Debian's headless Chromium driven by Playwright, against a real
``prefect server start`` on 127.0.0.1. A catalog run with an invalid row shows red (Failed) in the run
page and the runs list, its log has a line per product, and the summary artifact's contact sheet link
opens the report (served by the review app, as ``packshot review`` serves it); an upload that is not a
catalog turns the intake run red with the file named; the on-demand form shows each field's help and
default, and Submit creates the run."""

from __future__ import annotations

import contextvars
import logging
import os
import threading
import time
from pathlib import Path

import pytest

from tests.prefect_server import free_port, start_server, stop
from tests.studio import write_catalog

HERE = Path(__file__).parent
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
pytestmark = pytest.mark.slow

if not CHROMIUM.is_file():
    pytest.skip("Debian's chromium is not installed: apt-get install -y chromium (.ci/run installs it)",
                allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (dev extra)")


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """A real Prefect server; this process's flow runs report to it. Yields the UI's base URL."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    import flows.catalog_run  # noqa: F401 - imported first: its imports configure Prefect's logging

    home = tmp_path_factory.mktemp("prefect-ui-home")
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "DO_NOT_TRACK": "1", "PREFECT_UI_API_URL": "/api"}  # the UI asks the server it came from
    env.pop("PREFECT_API_URL", None)
    proc, url = start_server(env, home / "server.log")
    flow_logger = logging.getLogger("prefect.flow_runs")
    level = flow_logger.level
    flow_logger.setLevel(logging.INFO)  # the suite runs Prefect at WARNING; a server shows INFO
    try:
        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield url.removesuffix("/api")
    finally:
        flow_logger.setLevel(level)
        stop(proc)


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("PACKSHOT_EXPORT__PRESETS_FILE", str(HERE / "small_presets.yaml"))
    monkeypatch.setenv("PACKSHOT_SEGMENT__BACKEND", "classic")
    monkeypatch.setenv("PACKSHOT_GENERATIVE__BACKEND", "classic")
    return tmp_path


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def context(browser):
    context = browser.new_context()
    context.set_default_timeout(30_000)
    yield context
    context.close()


def _serve_review(out: Path, port: int):
    """The review app over ``out`` on ``port``, as ``packshot review OUT --port PORT`` serves it."""
    import uvicorn

    from orchestrator.review.server import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(out), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the review server did not start"
        time.sleep(0.05)
    return server, thread


def _artifact_id(key: str):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    return artifact.id


def _flush_logs() -> None:
    """Send the queued log lines to the server (in a thread: Playwright's loop runs in this one)."""
    from prefect.logging.handlers import APILogWorker

    flush = threading.Thread(target=APILogWorker.drain_all, kwargs={"timeout": 10})
    flush.start()
    flush.join(15)


def test_a_run_with_an_invalid_row_is_red_and_its_report_opens_in_one_click(ui, env, context, monkeypatch):
    from flows.catalog_run import catalog_run

    review_port = free_port()
    monkeypatch.setenv("PACKSHOT_ORCHESTRATION__REVIEW_URL", f"http://127.0.0.1:{review_port}")
    catalog = write_catalog(env / "cat", [{"sku": "OK-1"}, {"sku": "", "title": "a row without a SKU"}],
                            name="autumn.csv")
    out = env / "out"
    state = catalog_run({"catalog": str(catalog), "out": str(out), "presets": ["test-white"],
                         "stages": ["segment", "export"]}, return_state=True)
    assert state.is_failed()
    _flush_logs()
    run_id = state.state_details.flow_run_id

    page = context.new_page()
    page.goto(f"{ui}/runs/flow-run/{run_id}")
    badge = page.locator(".state-badge").first
    badge.wait_for()
    assert badge.inner_text().strip() == "Failed" and "state--failed" in badge.get_attribute("class")
    assert page.get_by_text("autumn ", exact=False).first.is_visible()  # named after the catalog
    page.get_by_text("OK-1 done in", exact=False).first.wait_for()  # its line per product

    # The runs list: the run is red at a glance.
    page.goto(f"{ui}/runs")
    row_badge = page.locator(".state-badge.state--failed").first
    row_badge.wait_for()

    # The summary artifact (one key per catalog): its link opens the contact sheet.
    server, thread = _serve_review(out, review_port)
    try:
        page.goto(f"{ui}/artifacts/artifact/{_artifact_id('packshot-summary-autumn')}")
        link = page.get_by_role("link", name="Open the contact sheet")
        link.wait_for()
        with context.expect_page() as opened:
            link.click()
        report = opened.value
        report.wait_for_load_state()
        assert report.url == f"http://127.0.0.1:{review_port}/files/report.html"
        assert report.locator(".counts .invalid b").inner_text() == "1"  # this run's contact sheet
        assert report.locator(".counts .done b").inner_text() == "1"
    finally:
        server.should_exit = True
        thread.join(10)


def test_an_upload_that_is_not_a_catalog_turns_the_intake_run_red(ui, env, context):
    from flows.intake import intake_inbox

    inbox = env / "inbox"
    inbox.mkdir()
    (inbox / "holiday-photos.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00 an image renamed to .csv")
    state = intake_inbox(inbox=str(inbox), out=str(env / "out"), settle_s=0, return_state=True)
    assert state.is_failed() and "holiday-photos.csv" in state.message
    _flush_logs()

    page = context.new_page()
    page.goto(f"{ui}/runs/flow-run/{state.state_details.flow_run_id}")
    badge = page.locator(".state-badge").first
    badge.wait_for()
    assert badge.inner_text().strip() == "Failed"
    page.get_by_text("holiday-photos.csv rejected", exact=False).first.wait_for()  # the log: which and why


def test_the_run_form_explains_every_field_and_starts_a_run(ui, env, context):
    """Deployments > on-demand > Run: each field's help and default, then Submit creates the run (a
    worker would pick it up; the runs above show what the run then looks like)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    from flows.catalog_run import catalog_run

    made = []  # registered from a thread (with this one's settings): Playwright's event loop runs here
    register = threading.Thread(target=contextvars.copy_context().run, args=(
        lambda: made.append(catalog_run.to_deployment(name="on-demand").apply()),))
    register.start()
    register.join(60)
    (deployment_id,) = made
    page = context.new_page()
    page.goto(f"{ui}/deployments/deployment/{deployment_id}/run")
    page.get_by_text("checked when the run starts, listing the choices", exact=False).first.wait_for()
    for help_text in ("shopify://SHOP", "empty: the folder out/ plus the catalog's name",
                      "0: the settings' PACKSHOT_BATCH_SIZE", "A hosted provider's API key is checked"):
        assert page.get_by_text(help_text, exact=False).first.is_visible(), help_text
    page.locator("textarea").first.fill("catalogs/demo/catalog.csv")
    page.get_by_role("button", name="Submit").click()
    deadline = time.monotonic() + 30
    runs = []
    while not runs and time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(deployment_filter=DeploymentFilter(
                id=DeploymentFilterId(any_=[deployment_id])))
        time.sleep(0.5)
    (run,) = runs
    options = run.parameters["options"]
    assert options["catalog"] == "catalogs/demo/catalog.csv"
    assert options["stages"] == ["segment", "background", "lifestyle", "recolor", "export"]  # the defaults
