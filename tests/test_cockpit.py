"""The Prefect UI as the merchant's cockpit, under Prefect's real (ephemeral) API: states that tell the
truth, one-line errors, per-product progress, artifacts per catalog, the form, the video provider
checked before any work, a quiet intake and the deployment definition written from the settings.
(What the browser shows of this is in tests/test_ui_browser.py.)"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.studio import write_catalog

HERE = Path(__file__).parent
REPO = HERE.parent
PRESETS = ["test-white"]


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("PACKSHOT_EXPORT__PRESETS_FILE", str(HERE / "small_presets.yaml"))
    monkeypatch.setenv("PACKSHOT_SEGMENT__BACKEND", "classic")
    monkeypatch.setenv("PACKSHOT_GENERATIVE__BACKEND", "classic")
    monkeypatch.setenv("PACKSHOT_BRAND_STYLES_DIR", str(tmp_path / "brands"))
    (tmp_path / "brands").mkdir()
    (tmp_path / "brands" / "acme.yaml").write_text(
        'name: acme\nscene_prompts: ["{title} on a table"]\npresets: [test-white]\npalette: ["#D9CBB5"]\n')
    for name in ("RUNWAYML_API_SECRET", "OPENAI_API_KEY", "PACKSHOT_VIDEO__PROVIDER"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def info_logs():
    """Flow run logs at INFO (the suite runs Prefect at WARNING), as a server shows them by default."""
    import flows.catalog_run  # noqa: F401 - its imports configure Prefect's logging again: first

    flow_logger = logging.getLogger("prefect.flow_runs")
    level = flow_logger.level
    flow_logger.setLevel(logging.INFO)
    yield
    flow_logger.setLevel(level)


def _client():
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def _logs(flow_run_id) -> list[str]:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)  # logs travel to the API in batches

    with _client() as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return [log.message for log in logs]


def _artifacts(flow_run_id) -> dict:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with _client() as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    return {a.key: a for a in found}


def test_a_run_with_invalid_rows_and_failures_is_failed_and_watchable(prefect_api, env, info_logs):
    from flows.catalog_run import catalog_run

    catalog = write_catalog(env / "Spring 2026", [
        {"sku": "OK-1", "shape": "bottle"}, {"sku": "GONE-2", "image": "images/missing.jpg"},
        {"sku": "", "title": "no sku"},
    ], name="Spring 2026.csv")
    state = catalog_run({"catalog": str(catalog), "out": str(env / "out"), "presets": PRESETS,
                         "stages": ["segment", "export"]}, return_state=True)

    # Not green: Failed, with the counts in the message, and the summary still the state's data.
    assert state.is_failed()
    assert "failed 1" in state.message and "invalid rows 1" in state.message and "done 1" in state.message
    summary = state.result(raise_on_failure=False)
    assert summary["counts"]["done"] == 1 and Path(summary["report"]).is_file()

    with _client() as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert run.name.startswith("spring-2026 ")  # named after the catalog and the date
    logs = _logs(run.id)
    assert any(line.startswith("OK-1 done in ") and "(1/2)" in line for line in logs), logs
    assert any(line.startswith("GONE-2 failed in ") and "missing.jpg" in line for line in logs), logs
    assert not any("Traceback" in line for line in logs)

    artifacts = _artifacts(run.id)
    assert {"packshot-progress-spring-2026", "packshot-summary-spring-2026",
            "packshot-results-spring-2026"} <= set(artifacts)
    progress = artifacts["packshot-progress-spring-2026"]
    assert progress.data == 100.0 and "2/2 products" in progress.description
    summary_md = artifacts["packshot-summary-spring-2026"].data
    assert "[Open the contact sheet](http://127.0.0.1:8765/files/report.html)" in summary_md
    assert f"packshot review {env / 'out'}" in summary_md


def test_user_errors_end_failed_with_one_line_before_any_work(prefect_api, env, info_logs):
    from flows.catalog_run import catalog_run

    catalog = write_catalog(env / "cat", [{"sku": "A"}])
    base = {"catalog": str(catalog), "presets": PRESETS, "stages": ["segment", "export"]}
    cases = {
        "typo": ({**base, "catalog": str(env / "cat" / "catalgo.csv")}, "does not exist"),
        # Choices are read when the run starts: a brand style added after deploying is there at once.
        "brand": ({**base, "brand": "nordic_home"}, "choose from acme"),
        "no provider": ({**base, "stages": ["segment", "video"]}, "video.provider in the run form"),
        "no key": ({**base, "stages": ["segment", "video"], "video": {"provider": "runway"}},
                   "no Runway API key"),
    }
    for name, (options, expected) in cases.items():
        out = env / f"out-{name.replace(' ', '-')}"
        state = catalog_run({**options, "out": str(out)}, return_state=True)
        assert state.is_failed() and expected in state.message, (name, state.message)
        assert "\n" not in state.message
        assert not out.exists() or not [p for p in out.iterdir() if p.name == "A"], name  # no image work
        errors = [line for line in _logs(state.state_details.flow_run_id) if expected in line]
        assert errors and not any("Traceback" in line for line in errors), name


def test_the_form_shows_every_default_and_freezes_no_choices():
    from prefect.utilities.callables import parameter_schema, parameter_schema_from_entrypoint

    from flows.catalog_run import catalog_run

    schema = parameter_schema(catalog_run.fn).model_dump()
    props = schema["definitions"]["RunOptions"]["properties"]
    for name, prop in props.items():
        assert prop.get("description"), name
        if name not in ("catalog", "video"):
            assert "default" in prop and "anyOf" not in prop, (name, prop)  # shown, no "None" to click away
    assert "enum" not in json.dumps(props["brand"]) and "enum" not in json.dumps(props["presets"])
    assert props["stages"]["items"]["enum"][-1] == "video"
    # The intake form, as `prefect deploy` reads it (from the source), has the same help.
    intake = parameter_schema_from_entrypoint("flows/intake.py:intake_inbox").model_dump()["properties"]
    assert all(p.get("description") for p in intake.values()), intake
    assert "listing the choices" in intake["brand"]["description"] and intake["stages"]["default"]


def test_the_progress_artifact_is_reused_when_the_run_is_retried(prefect_api):
    from prefect import flow

    from flows.watch import progress_artifact

    @flow
    def twice():  # a retry is the same flow run starting again: it finds its progress artifact
        return [progress_artifact("packshot-progress-x", "0/1") for _ in range(2)]

    first, second = twice()
    assert first == second


def test_summary_markdown_escapes_what_the_catalog_says(tmp_path):
    from markdown_it import MarkdownIt

    from orchestrator.manifest import RunTally
    from orchestrator.report import summary_markdown
    from packshot.schemas.results import ProductResult, RunManifest

    hostile = '<img src=x onerror="alert(1)">'
    tally = RunTally()
    tally.add(ProductResult(sku=f"SKU{hostile}", status="failed",
                            error=f"[click](javascript:alert(1)) {hostile}",
                            source_file=f"/in/`{hostile}`.csv", source_line=2))
    header = RunManifest(catalog=f"/in/{hostile}.csv", catalog_format="packshot", output=str(tmp_path),
                         started="2026-01-01T00:00:00Z", stages=["segment"], presets=[], products=[],
                         notes=[f"note {hostile}"])
    html = MarkdownIt("commonmark").render(summary_markdown(header, tally, str(tmp_path / "report.html"),
                                                            review_url="http://127.0.0.1:9876"))
    assert "<img" not in html
    # Two links only: the contact sheet as `packshot review` serves it, and its review page.
    assert html.count("<a href=") == 2 and 'href="http://127.0.0.1:9876/files/report.html"' in html
    assert "SKU&lt;img src=x onerror=" in html  # the SKU is shown, as text


def test_intake_does_nothing_when_idle_dedupes_by_content_and_keeps_uploads_on_a_bad_form(prefect_api, env):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    from flows.deployments import deployment_specs
    from flows.intake import intake_inbox, watch_inbox

    assert "schedules" not in deployment_specs()["intake"]  # no run per minute
    inbox = env / "inbox"
    inbox.mkdir()
    deployment_id = intake_inbox.to_deployment(name="intake").apply()
    assert watch_inbox(str(inbox), poll_s=0, settle_s=0, rounds=3) == 0  # idle: no run
    write_catalog(inbox, [{"sku": "A"}], name="shop.csv")
    assert watch_inbox(str(inbox), poll_s=0, settle_s=0, rounds=3) == 1  # one new file: one run
    with _client() as client:
        runs = client.read_flow_runs(deployment_filter=DeploymentFilter(
            name=DeploymentFilterName(any_=["intake"])))
    assert [r.deployment_id for r in runs] == [deployment_id]

    # A typo in the form fails at once, names the choices and leaves the upload where it is.
    state = intake_inbox(inbox=str(inbox), out=str(env / "out"), brand="acme_home", settle_s=0,
                         return_state=True)
    assert state.is_failed() and "choose from acme" in state.message
    assert (inbox / "shop.csv").is_file() and not (inbox / "failed").exists()


def test_deploy_definitions_come_from_the_settings(monkeypatch, tmp_path):
    from flows.deployments import deployment_specs, prefect_yaml
    from orchestrator.settings import Settings

    # The repository's prefect.yaml is the one written for the default settings: it cannot drift.
    assert (REPO / "prefect.yaml").read_text() == prefect_yaml(Settings(_env_file=None))
    monkeypatch.setenv("PACKSHOT_ORCHESTRATION__TIMEZONE", "Europe/Berlin")
    monkeypatch.setenv("PACKSHOT_ORCHESTRATION__NIGHTLY_CRON", "30 1 * * *")
    specs = deployment_specs(Settings(_env_file=None))
    (schedule,) = specs["nightly"]["schedules"]
    assert "Europe/Berlin" in schedule.slug and "Europe/Berlin" in specs["nightly"]["description"]
    assert "timezone: Europe/Berlin" in prefect_yaml(Settings(_env_file=None))

    for variable, value in (("TIMEZONE", "Europe/Berln"), ("NIGHTLY_CRON", "0 25 * *")):
        command = [sys.executable, "-m", "flows.deployments", "yaml", "--out", str(tmp_path / "p.yaml")]
        proc = subprocess.run(command,
                              env={**os.environ, f"PACKSHOT_ORCHESTRATION__{variable}": value}, cwd=REPO,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and f"PACKSHOT_ORCHESTRATION__{variable}" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "p.yaml").exists()


def test_the_cli_chooses_the_video_provider(env):
    """``--video-provider`` is checked with the other options, before Prefect starts: one line."""
    from typer.testing import CliRunner

    from cli.main import app
    from orchestrator.options import RunOptions

    catalog = write_catalog(env / "cat", [{"sku": "A"}])
    result = CliRunner().invoke(app, ["run", str(catalog), "--stages", "segment,video",
                                      "--video-provider", "runwy"])
    assert result.exit_code == 2
    text = " ".join(result.output.split())  # Rich wraps at the terminal's width
    assert text.count("error:") == 1 and "--video-provider 'runwy'" in text and "'runway'" in text, text
    chosen = RunOptions(catalog=str(catalog), video={"provider": "sora"})
    assert chosen.video.provider == "sora" and chosen.video.model_fields_set == {"provider"}


def test_a_cancelled_run_is_cancelled_keeps_what_finished_and_lists_the_rest(prefect_api, env):
    """Cancel in the UI sets the run Cancelling: batches end Cancelled (none green), the products that
    finished keep their files, and the run's message lists the ones that did not."""
    from uuid import UUID

    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.runtime import flow_run
    from prefect.states import Cancelling

    from flows.catalog_run import catalog_run
    from packshot import progress

    catalog = write_catalog(env / "cat", [{"sku": f"P{i}"} for i in range(4)])
    out = env / "out"

    cancelled = []

    def cancel_after_the_first(result):
        # The first product to finish: at most the batches already running finish after it (how many
        # depends on the threads' timing), the rest never start. This is what the UI's Cancel button does.
        if not cancelled:
            cancelled.append(result.sku)
            with _client() as client:
                client.set_flow_run_state(UUID(str(flow_run.get_id())), Cancelling(), force=True)

    with progress.listening(cancel_after_the_first):
        state = catalog_run({"catalog": str(catalog), "out": str(out), "presets": PRESETS, "batch_size": 1,
                             "stages": ["segment", "export"]}, return_state=True)
    assert state.is_cancelled(), state
    finished = sorted(p.parent.name for p in out.rglob(".done.json"))
    assert cancelled[0] in finished and f"{len(finished)} finished product(s) kept" in state.message
    unfinished = sorted({f"P{i}" for i in range(4)} - set(finished))
    assert unfinished, "a cancel after the first product let every batch run"
    assert all(sku in state.message for sku in unfinished)  # the rest is listed by SKU
    assert not any(sku in state.message.split("not finished")[-1] for sku in finished)
    with _client() as client:
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
    states = {t.name: t.state.type.value for t in tasks if t.name.startswith("batch")}
    # Not green: every batch whose product did not finish (never started, or stopped) is Cancelled; a
    # batch that finished its product before the cancel reached it may be Completed: that is the truth.
    assert all(states[f"batch {sku.removeprefix('P')}"] == "CANCELLED" for sku in unfinished), states
