"""A second attempt of the same run (a shard run retried after its worker was lost) finds what the first
attempt finished by the run id in each ``.done.json``: reported done, made once. Another run skips it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.studio import write_catalog

HERE = Path(__file__).parent


def test_a_retried_attempt_reports_the_products_its_run_made_as_done_without_making_them_again(
        tmp_path, monkeypatch):
    import orchestrator as pipeline
    from packshot.catalog import load_catalog

    monkeypatch.setenv("PACKSHOT_EXPORT__PRESETS_FILE", str(HERE / "small_presets.yaml"))
    monkeypatch.setenv("PACKSHOT_SEGMENT__BACKEND", "classic")
    monkeypatch.setenv("PACKSHOT_GENERATIVE__BACKEND", "classic")
    catalog = write_catalog(tmp_path / "cat", [{"sku": "A", "shape": "mug"}, {"sku": "B", "shape": "disc"}])
    options = pipeline.RunOptions(catalog=str(catalog), out=str(tmp_path / "out"), presets=["test-white"],
                                  stages=["segment", "export"], force=True)
    products = load_catalog(catalog).products
    done = tmp_path / "out" / "A" / ".done.json"

    # The lost attempt finished A only (B's turn never came).
    (first,) = pipeline.process_batch(products[:1], options, run_id="run-1")
    assert first.status == "done" and json.loads(done.read_text())["run_id"] == "run-1"
    written = done.stat().st_mtime_ns

    retried = {r.sku: r for r in pipeline.process_batch(products, options, run_id="run-1")}
    assert retried["A"].status == "done"  # this run's work, even with force: not made again
    assert any("earlier attempt of this run" in n for n in retried["A"].notes)
    assert done.stat().st_mtime_ns == written
    assert retried["B"].status == "done" and not any("earlier attempt" in n for n in retried["B"].notes)

    # A later run with force makes everything again and says so in its own records.
    later = {r.sku: r for r in pipeline.process_batch(products, options, run_id="run-2")}
    assert {r.status for r in later.values()} == {"done"}
    assert json.loads(done.read_text())["run_id"] == "run-2" and done.stat().st_mtime_ns != written


def test_what_a_lost_attempt_finished_counts_when_its_shard_fails_every_attempt(tmp_path, monkeypatch):
    """A shard that gives up lists its products as failed, except those an attempt of this run
    finished before it was lost: their records name the run, so they are reported as made."""
    import orchestrator as pipeline
    from orchestrator.photos import made_by_run
    from packshot.catalog import load_catalog
    from packshot.storage import open_storage

    monkeypatch.setenv("PACKSHOT_EXPORT__PRESETS_FILE", str(HERE / "small_presets.yaml"))
    monkeypatch.setenv("PACKSHOT_SEGMENT__BACKEND", "classic")
    monkeypatch.setenv("PACKSHOT_GENERATIVE__BACKEND", "classic")
    catalog = write_catalog(tmp_path / "cat", [{"sku": "A", "shape": "mug"}, {"sku": "B", "shape": "disc"}])
    out = tmp_path / "out"
    options = pipeline.RunOptions(catalog=str(catalog), out=str(out), presets=["test-white"],
                                  stages=["segment", "export"])
    a, b = load_catalog(catalog).products
    pipeline.process_batch([a], options, run_id="run-1")  # the lost attempt finished A only
    storage = open_storage(str(out))
    made = made_by_run(storage, a, "run-1")
    assert made is not None and made.status == "done" and made.sku == "A" and made.outputs
    assert made_by_run(storage, b, "run-1") is None  # never finished
    assert made_by_run(storage, a, "run-2") is None  # another run's work is not this run's
