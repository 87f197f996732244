"""Bad input, round two (issue 16), through real runs: process_batch, the catalog flow and intake."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.studio import write_catalog

HERE = Path(__file__).parent
BRAND = 'name: shop-own\nscene_prompts: ["{title} on a table"]\nscenes_per_product: 1\npresets: [test-shop]\n'


@pytest.fixture
def env(monkeypatch, tmp_path):
    import os

    old = os.umask(0o022)
    monkeypatch.setenv("PACKSHOT_EXPORT__PRESETS_FILE", str(HERE / "small_presets.yaml"))
    monkeypatch.setenv("PACKSHOT_SEGMENT__BACKEND", "classic")
    monkeypatch.setenv("PACKSHOT_GENERATIVE__BACKEND", "classic")
    monkeypatch.delenv("PACKSHOT_BRAND_STYLES_DIR", raising=False)
    yield tmp_path
    os.umask(old)


def test_a_run_refuses_bad_rows_per_product_and_redoes_damaged_state(env, monkeypatch):
    import orchestrator as pipeline
    from packshot.catalog import load_catalog

    folder = env / "shop"
    (folder / "brand_styles").mkdir(parents=True)
    (folder / "brand_styles" / "shop-own.yaml").write_text(BRAND)  # beside the catalog only
    (folder / "masks").mkdir()
    Image.fromarray(np.full((30, 90), 255, np.uint8)).save(folder / "masks" / "wide.png")
    catalog = write_catalog(folder, [
        {"sku": "OK", "brand_style": "shop-own"},
        {"sku": "BOX", "bbox": "100,100,400,400"},
        {"sku": "MASK", "colors": "Navy", "recolor_mask": "masks/wide.png"},
    ])
    monkeypatch.chdir(env)  # neither the project's nor the catalog's folder
    options = pipeline.RunOptions(catalog=str(catalog), out=str(env / "out"), presets=["test-shop"],
                                  stages=["segment", "recolor", "export"])
    results = {r.sku: r for r in pipeline.process_batch(load_catalog(catalog).products, options)}
    assert results["OK"].status == "done", results["OK"].error
    assert results["BOX"].status == "failed" and "outside the 160x160 image" in results["BOX"].error
    assert results["MASK"].status == "failed" and "90x30 px but the photo is 160x160" in results["MASK"].error
    assert "internal error" not in (results["BOX"].error + results["MASK"].error)
    assert (env / "out" / "OK" / "cutout.png").stat().st_mode & 0o777 == 0o644  # umask 022 (the fixture)

    (env / "out" / "OK" / ".done.json").write_text('{"sku": "OK", "stat')  # a kill mid-write elsewhere
    pipeline.clear_contexts()
    again = {r.sku: r for r in pipeline.process_batch(load_catalog(catalog).products, options)}
    assert again["OK"].status == "done" and any("damaged" in n for n in again["OK"].notes)
    pipeline.clear_contexts()
    third = {r.sku: r for r in pipeline.process_batch(load_catalog(catalog).products, options)}
    assert third["OK"].status == "skipped"


def test_a_video_run_that_makes_no_clip_ends_failed_with_the_reason(prefect_api, env, monkeypatch):
    from flows.catalog_run import catalog_run
    from orchestrator.options import RunOptions

    monkeypatch.setenv("PACKSHOT_VIDEO__PROVIDER", "runway")
    monkeypatch.setenv("RUNWAYML_API_SECRET", "key_" + "0" * 60)
    monkeypatch.setenv("PACKSHOT_VIDEO__RUNWAY_BASE_URL", "http://127.0.0.1:9")  # never reached
    catalog = write_catalog(env / "cat", [{"sku": "A"}, {"sku": "B", "shape": "mug"}])
    options = RunOptions(catalog=str(catalog), out=str(env / "out"), presets=["test-shop"],
                         stages=["segment", "export", "video"], video={"max_spend_usd": 0})
    state = catalog_run(options, return_state=True)
    assert state.is_failed() and "no ad clip was made" in state.message
    summary = state.result(raise_on_failure=False)
    assert summary["counts"]["done"] == 2 and Path(summary["manifest"]).is_file()  # published anyway


def test_intake_reports_missing_images_and_ends_failed_when_products_fail(prefect_api, env):
    from flows.intake import intake_inbox

    inbox = env / "inbox"
    write_catalog(inbox, [{"sku": "GOOD"}, {"sku": "GONE", "image": "images/not-there.jpg"}], name="up.csv")
    state = intake_inbox(inbox=str(inbox), out=str(env / "out"), stages=["segment", "export"],
                         presets=["test-shop"], settle_s=0, return_state=True)
    (moved,) = (inbox / "processed").glob("*up.csv")
    report = Path(f"{moved}.validation.txt").read_text()
    assert "No problems found" not in report and "does not exist" in report and "up.csv:3" in report
    assert "Run: done 1" in report
    data = json.loads(Path(f"{moved}.validation.json").read_text())
    assert data["ok"] is False and data["run"]["counts"]["done"] == 1
    assert state.is_failed() and "up.csv: 1 product(s) failed" in state.message


def test_a_full_disk_stops_the_cli_run_with_one_message_and_no_leftovers(prefect_api, env, monkeypatch,
                                                                         capfd):
    import errno
    import os

    from typer.testing import CliRunner

    from cli.main import app

    catalog = write_catalog(env / "cat", [{"sku": "A"}, {"sku": "B", "shape": "mug"}])
    real_fsync = os.fsync
    out = env / "out"

    def fsync(fd):  # every write under the output folder hits a full disk
        if str(out) in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    result = CliRunner().invoke(app, ["run", str(catalog), "--out", str(out), "--presets", "test-shop",
                                      "--stages", "segment,export"])
    logs = capfd.readouterr()
    assert result.exit_code == 2, result.output
    assert "the disk is full" in result.output and result.output.count("error:") == 1, result.output
    assert "| ERROR" not in result.output + logs.err  # one message: no task/flow failure logs on top
    assert "Traceback" not in result.output + logs.out + logs.err
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert not (out / "manifest.json").exists()
