"""Incremental reruns, the stage cache, the GPU lock, inbox intake, the nightly schedule and the UI form."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from tests.studio import studio_shot, write_catalog

HERE = Path(__file__).parent
PRESETS = ["test-white", "test-shop"]
BRAND = """name: acme
scene_prompts: ["{title} on a kitchen table"]
scenes_per_product: 2
presets: [test-shop]
palette: ["{color}"]
"""


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("PACKSHOT_EXPORT__PRESETS_FILE", str(HERE / "small_presets.yaml"))
    monkeypatch.setenv("PACKSHOT_SEGMENT__BACKEND", "classic")
    monkeypatch.setenv("PACKSHOT_GENERATIVE__BACKEND", "classic")
    monkeypatch.setenv("PACKSHOT_BRAND_STYLES_DIR", str(tmp_path / "brands"))
    (tmp_path / "brands").mkdir()
    (tmp_path / "brands" / "acme.yaml").write_text(BRAND.replace("{color}", "#D9CBB5"))
    return tmp_path


class CountingSegmenter:
    """The real segmenter, counting how often the model runs."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def segment(self, image, box=None):
        self.calls += 1
        return self.inner.segment(image, box)


def _run(catalog: Path, out: Path):
    """One run as a fresh worker process would do it: new context, counting model calls."""
    import orchestrator as pipeline
    from packshot.catalog import load_catalog

    pipeline.clear_contexts()
    options = pipeline.RunOptions(catalog=str(catalog), out=str(out), presets=PRESETS,
                                  stages=["segment", "background", "lifestyle", "export"])
    ctx = pipeline.get_context(options)
    ctx.segmenter = CountingSegmenter(ctx.segmenter)
    results = {r.sku: r for r in pipeline.process_batch(load_catalog(catalog).products, options)}
    stats = {stage: (s.hits, s.misses) for stage, s in ctx.cache.stats.items()}
    return results, ctx.segmenter.calls, stats


def test_reruns_redo_only_what_changed(env):
    catalog = write_catalog(env / "cat", [{"sku": "A", "brand_style": "acme"},
                                          {"sku": "B", "shape": "mug", "brand_style": "acme"}])
    out = env / "out"
    first, calls, stats = _run(catalog, out)
    assert {r.status for r in first.values()} == {"done"} and calls == 2
    assert stats == {"cutout": (0, 2)}  # classic backdrops are not cached: drawing one is cheaper
    assert {o.kind for o in first["A"].outputs} == {"cutout", "packshot", "background", "scene"}
    # Without a model, scene 1 would be byte-identical to the background: not rendered, and said so.
    assert [o.key for o in first["A"].outputs if o.kind == "scene"] == ["A/scene2-test-shop.jpg"]
    assert any("scene 1 for test-shop not rendered" in n for n in first["A"].notes)

    # Nothing changed: no model work at all, every product reused.
    again, calls, stats = _run(catalog, out)
    assert {r.status for r in again.values()} == {"skipped"} and calls == 0 and stats == {}

    # A new brand style: backgrounds and scenes are redone, the cutouts come from the cache.
    (env / "brands" / "acme.yaml").write_text(BRAND.replace("{color}", "#203040"))
    restyled, calls, stats = _run(catalog, out)
    assert {r.status for r in restyled.values()} == {"done"} and calls == 0
    assert stats == {"cutout": (2, 0)}
    scene = {o.key: o.sha256 for o in restyled["A"].outputs if o.kind == "scene"}
    assert scene != {o.key: o.sha256 for o in first["A"].outputs if o.kind == "scene"}
    cutout = [o.sha256 for o in restyled["A"].outputs if o.kind == "cutout"]
    assert cutout == [o.sha256 for o in first["A"].outputs if o.kind == "cutout"]

    # A new photo for B: only B is redone, from segmentation on.
    rgb, _ = studio_shot(shape="disc", color=(200, 40, 40), seed=9)
    Image.fromarray(rgb).save(env / "cat" / "images" / "B.jpg", quality=92)
    changed, calls, stats = _run(catalog, out)
    assert changed["A"].status == "skipped" and changed["B"].status == "done" and calls == 1
    assert stats == {"cutout": (0, 1)}


def test_progress_reports_each_product_in_order_as_it_finishes(env):
    import orchestrator as pipeline
    from packshot import progress
    from packshot.catalog import load_catalog

    catalog = write_catalog(env / "cat", [{"sku": f"P{i}"} for i in range(5)])
    options = pipeline.RunOptions(catalog=str(catalog), out=str(env / "out"), presets=PRESETS,
                                  stages=["segment", "export"])
    seen = []

    def on_result(result):
        seen.append((result.sku, (env / "out" / result.sku / ".done.json").is_file()))

    with progress.listening(on_result):
        results = pipeline.process_batch(load_catalog(catalog).products, options)
    assert [r.sku for r in results] == [f"P{i}" for i in range(5)]
    assert seen == [(f"P{i}", True) for i in range(5)]  # reported only once its files are written


def test_nightly_schedule_uses_the_merchant_timezone(monkeypatch):
    monkeypatch.setenv("PACKSHOT_ORCHESTRATION__TIMEZONE", "Europe/Berlin")
    monkeypatch.setenv("PACKSHOT_ORCHESTRATION__NIGHTLY_CATALOG", "catalogs/shop.csv")
    from prefect.server.schemas.schedules import CronSchedule

    from flows.deployments import deployment_specs
    from orchestrator.settings import get_settings

    specs = deployment_specs(get_settings())
    (schedule,) = specs["nightly"]["schedules"]
    assert (schedule.cron, schedule.timezone) == ("0 2 * * *", "Europe/Berlin")
    assert specs["nightly"]["parameters"]["options"]["catalog"] == "catalogs/shop.csv"
    # Prefect's own cron evaluation: 02:00 in Berlin is 01:00 UTC in winter and 00:00 UTC in summer.
    berlin, utc = ZoneInfo("Europe/Berlin"), ZoneInfo("UTC")
    server_schedule = CronSchedule(cron=schedule.cron, timezone=schedule.timezone)
    winter, summer = datetime(2026, 1, 10, 12, tzinfo=berlin), datetime(2026, 7, 10, 12, tzinfo=berlin)
    for day, utc_hour in ((winter, 1), (summer, 0)):
        (fire,) = asyncio.run(server_schedule.get_dates(n=1, start=day))
        assert (fire.astimezone(berlin).hour, fire.astimezone(utc).hour) == (2, utc_hour)


def test_on_demand_form_is_the_typed_run_options():
    from prefect.utilities.callables import parameter_schema

    from flows.catalog_run import catalog_run

    schema = parameter_schema(catalog_run.fn).model_dump()
    assert schema["properties"]["options"]["$ref"] == "#/definitions/RunOptions"
    options = schema["definitions"]["RunOptions"]
    assert options["required"] == ["catalog"]
    assert options["properties"]["stages"]["items"]["enum"][:2] == ["segment", "background"]
    for name in ("catalog", "out", "brand", "presets", "video"):
        assert options["properties"][name].get("description"), name
    video = schema["definitions"]["VideoOptions"]["properties"]
    assert video["duration_s"]["maximum"] == 20 and video["provider"]["default"] == "none"


def test_local_inbox_claims_each_file_once_under_concurrency(tmp_path):
    from orchestrator.inbox import open_inbox

    box = open_inbox(str(tmp_path / "inbox"))
    (tmp_path / "inbox" / "shop.csv").write_text("sku,title,image\n")
    (item,) = box.new_files(settle_s=0)
    wins = []
    threads = [threading.Thread(target=lambda: wins.append(box.claim(item))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 7 + [True]
    assert box.new_files(settle_s=3600) == []  # still being written (changed just now): left alone


def test_intake_runs_each_new_csv_exactly_once(prefect_api, env):
    from flows.intake import intake_inbox

    inbox = env / "inbox"
    write_catalog(inbox, [{"sku": "GOOD-1"}, {"sku": "GOOD-2", "shape": "mug"}], name="spring.csv")
    (inbox / "broken.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00 not a csv at all")
    (inbox / "norows.csv").write_text("sku,title,image\n,,\n")
    kwargs = {"inbox": str(inbox), "out": str(env / "out"), "stages": ["segment", "export"],
              "presets": PRESETS, "settle_s": 0}

    state = intake_inbox(**kwargs, return_state=True)
    handled = {h["file"]: h for h in state.result(raise_on_failure=False)}
    assert {f: h["outcome"] for f, h in handled.items()} == {
        "spring.csv": "processed", "broken.csv": "failed", "norows.csv": "failed"}
    # Rejected uploads turn the intake run red, naming each file and why.
    assert state.is_failed() and "2 upload(s) need attention" in state.message
    assert "broken.csv: " in state.message and "norows.csv: no valid product" in state.message
    assert handled["spring.csv"]["counts"]["done"] == 2
    manifest = json.loads((env / "out" / "spring" / "manifest.json").read_text())
    assert sorted(p["sku"] for p in manifest["products"]) == ["GOOD-1", "GOOD-2"]
    assert not list(inbox.glob("*.csv"))

    (moved,) = (inbox / "processed").glob("*spring.csv")
    assert "2 products ready" in Path(f"{moved}.validation.txt").read_text()
    assert json.loads(Path(f"{moved}.validation.json").read_text())["skus"] == ["GOOD-1", "GOOD-2"]
    (broken,) = (inbox / "failed").glob("*broken.csv")
    assert "broken.csv" in Path(f"{broken}.validation.txt").read_text()
    (norows,) = (inbox / "failed").glob("*norows.csv")
    assert json.loads(Path(f"{norows}.validation.json").read_text())["products"] == 0

    assert intake_inbox(**kwargs) == []  # nothing new: nothing runs

    # The merchant uploads the very same file again, under a new name: recognised, filed, no second run.
    (inbox / "spring (1).csv").write_bytes(moved.read_bytes())
    (dup,) = intake_inbox(**kwargs)
    assert dup["outcome"] == "duplicate"
    assert "processed:" in Path(f"{dup['moved_to']}.validation.txt").read_text()
    rerun = json.loads((env / "out" / "spring" / "manifest.json").read_text())
    assert rerun["started"] == manifest["started"]


def _result(i: int, status: str = "done", note: str | None = None):
    from packshot.schemas.results import OutputRecord, ProductResult

    out = OutputRecord(sku=f"P{i}", kind="packshot", preset="test-white", key=f"P{i}/packshot.png",
                       uri=f"P{i}/packshot.png", format="PNG", width=8, height=8, bytes=10, sha256="0" * 64,
                       checks=["too small"] if i % 7 == 0 else [], source_file="cat.csv", source_line=i + 2)
    return ProductResult(sku=f"P{i}", status=status, outputs=[out] if status == "done" else [],
                         error="image missing" if status == "failed" else None,
                         notes=[note or f"note {i}", "unchanged since the last run"],
                         source_file="cat.csv", source_line=i + 2)


def test_manifest_and_report_stream_from_the_result_spool(tmp_path):
    """Batches spool their results; the manifest is streamed from the spool in catalog order, byte for
    byte what the in-memory manifest would be, and the run keeps only bounded counters."""
    from datetime import UTC

    from orchestrator.manifest import (
        MAX_RUN_NOTES,
        TABLE_ROWS,
        ManifestWriter,
        ResultSpool,
        RunTally,
        manifest_csv,
    )
    from orchestrator.report import ReportWriter
    from packshot.schemas.results import RunManifest
    from packshot.storage import LocalStorage

    storage = LocalStorage(tmp_path / "out")
    results = [_result(i, "failed" if i % 3 == 0 else "done") for i in range(600)]
    spool = ResultSpool(storage, "run-1")
    parts = [spool.write(b, results[b * 100 : (b + 1) * 100]) for b in (5, 0, 3, 1, 4, 2)]  # any finish order
    parts.sort()
    assert len(spool.read(parts[0])) == 100

    header = RunManifest(catalog="cat.csv", catalog_format="packshot", output=storage.uri,
                         started=datetime(2026, 1, 1, tzinfo=UTC), stages=["segment"], presets=["test-white"],
                         products=[])
    tally = RunTally()
    with ManifestWriter(storage) as manifest, ReportWriter(storage) as report:
        for result in spool.stream(parts):
            tally.add(result)
            manifest.add(result)
            report.add(result)
        header.notes = tally.note_list()
        manifest.publish(header)
        report.publish(header, tally.counts())
    spool.remove()

    full = header.model_copy(update={"products": results})
    assert (tmp_path / "out" / "manifest.json").read_text() == full.model_dump_json(indent=2)
    assert (tmp_path / "out" / "manifest.csv").read_bytes().decode() == manifest_csv(full)
    recount = RunTally()
    for result in results:
        recount.add(result)
    assert tally.counts() == recount.counts() == {"done": 400, "needs_review": 0, "failed": 200, "skipped": 0,
                                                  "invalid": 0, "outputs": 400, "failed_checks": 57}
    assert len(header.notes) == MAX_RUN_NOTES + 1 and header.notes[-1].startswith("and 550 more")
    assert not any(n.startswith("unchanged") for n in header.notes)
    # The Prefect table: the first products, then failures only, never the whole catalog.
    assert [r["sku"] for r in tally.rows[:TABLE_ROWS]] == [f"P{i}" for i in range(TABLE_ROWS)]
    assert {r["status"] for r in tally.rows[TABLE_ROWS:]} == {"failed"} and len(tally.rows) < 600
    html = (tmp_path / "out" / "report.html").read_text()
    assert html.count("<tr><td>cat.csv:") == 200 and html.count('<div class="sku done"') == 400
    assert html.index("<h2>Failures</h2>") < html.index("<h2>Products</h2>") and html.endswith("</html>")
    left = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert left == ["manifest.csv", "manifest.json", "report.html"]  # the spool is gone
