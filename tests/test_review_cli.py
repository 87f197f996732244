"""`packshot run --fail-on-review`, `--sku` and `packshot review` at the command line."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from cli.main import app
from tests.test_review_loop import DoubtingSegmenter

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def test_fail_on_review_exits_1_and_names_the_products(prefect_api, tmp_path, monkeypatch):
    import stages.segment
    from tests.studio import write_catalog

    real = stages.segment.get_segmenter
    monkeypatch.setattr(stages.segment, "get_segmenter", lambda *a, **k: DoubtingSegmenter(real(*a, **k)))
    monkeypatch.setenv("PACKSHOT_EXPORT__PRESETS_FILE", str(ROOT / "tests/small_presets.yaml"))
    monkeypatch.setenv("PACKSHOT_SEGMENT__BACKEND", "classic")
    rows = [{"sku": "DOUBT-1"}, {"sku": "BOXED-2", "bbox": "30,10,130,150"}]  # a box: no doubt
    catalog = write_catalog(tmp_path / "cat", rows)
    out = tmp_path / "out"
    args = ["run", str(catalog), "--out", str(out), "--presets", "test-shop", "--stages", "segment,export"]
    plain = runner.invoke(app, args)
    assert plain.exit_code == 0, plain.output  # needs review is not a failure by default
    assert "done 1" in plain.output and "needs review 1" in plain.output
    assert "DOUBT-1: needs review: the photo does not look like a studio shot" in plain.output
    assert f"packshot review {out}" in plain.output.replace("\n", "")

    strict = runner.invoke(app, [*args, "--fail-on-review", "--sku", "DOUBT-1", "--force"])
    assert strict.exit_code == 1 and "needs review 1" in strict.output
    assert "skipped (unchanged) 1" in strict.output  # BOXED-2 was not chosen


def test_review_needs_a_run_folder(tmp_path):
    result = runner.invoke(app, ["review", str(tmp_path)])
    assert result.exit_code == 2 and "has no manifest.json" in " ".join(result.output.split())
    assert "Traceback" not in result.output
