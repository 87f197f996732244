"""The command line as a merchant uses it: messages, exit codes, no tracebacks."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def test_validate_names_every_bad_row_of_the_demo_error_catalog():
    result = runner.invoke(app, ["validate", str(ROOT / "catalogs/demo/catalog_with_errors.csv")])
    assert result.exit_code == 1
    reported = {int(m) for m in re.findall(r"catalog_with_errors\.csv:(\d+)", result.output)}
    assert reported == set(range(7, 18))  # lines 7-17 are the deliberately bad rows
    assert "does not exist" in result.output and "not an image" in result.output
    assert "Bluish Mauve Thing" in result.output
    assert "Traceback" not in result.output


def test_validate_passes_the_demo_catalog():
    result = runner.invoke(app, ["validate", str(ROOT / "catalogs/demo/catalog.csv")])
    assert result.exit_code == 0, result.output
    assert "10 products ready" in result.output


def test_unreadable_catalog_is_one_clear_error(tmp_path):
    missing = tmp_path / "nope.csv"
    result = runner.invoke(app, ["validate", str(missing)])
    assert result.exit_code == 2
    assert "nope.csv" in result.output and "Traceback" not in result.output


def test_estimate_prices_clips_without_submitting(monkeypatch):
    monkeypatch.setenv("PACKSHOT_VIDEO__PROVIDER", "runway")
    monkeypatch.setenv("RUNWAYML_BASE_URL", "http://127.0.0.1:9")  # nothing listens: any request would fail
    result = runner.invoke(app, ["estimate", str(ROOT / "catalogs/demo/catalog.csv"), "--limit", "3",
                                 "--duration", "5"])
    assert result.exit_code == 0, result.output
    assert result.output.count("runway/gen4_turbo") == 3
    assert "$0.75 for 3 clips" in result.output  # 3 clips x 5 s x $0.05/s


def test_check_reports_broken_rules(tmp_path):
    import numpy as np
    from PIL import Image

    img = np.full((600, 600, 3), 255, np.uint8)
    img[100:500, 100:500] = (30, 60, 120)
    img[0:5, :] = (250, 250, 250)  # a grey line along the top: not pure white, and too small for Amazon
    Image.fromarray(img).save(tmp_path / "small.jpg", quality=95)
    result = runner.invoke(app, ["check", str(tmp_path / "small.jpg"), "--preset", "amazon-main"])
    assert result.exit_code == 1
    assert "FAIL" in result.output and "1000" in result.output

    result = runner.invoke(app, ["check", str(tmp_path / "small.jpg"), "--preset", "no-such-preset"])
    assert result.exit_code == 2 and "amazon-main" in result.output


def test_run_prints_where_results_are_and_why_products_failed(prefect_api, tmp_path, monkeypatch):
    from tests.studio import write_catalog

    monkeypatch.setenv("PACKSHOT_EXPORT__PRESETS_FILE", str(ROOT / "tests/small_presets.yaml"))
    rows = [{"sku": "OK-1"}, {"sku": "GONE-2", "image": "images/gone.jpg"}]
    catalog = write_catalog(tmp_path / "cat", rows)
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(catalog), "--out", str(out), "--presets", "test-shop",
                                 "--stages", "segment,export"])
    assert result.exit_code == 1  # something failed: a script or CI can tell
    assert "done 1" in result.output and "failed 1" in result.output
    assert "catalog.csv:3 GONE-2" in result.output and "gone.jpg" in result.output
    assert str(out / "report.html") in result.output.replace("\n", "")
    assert (out / "OK-1" / "packshot-test-shop.jpg").is_file()
