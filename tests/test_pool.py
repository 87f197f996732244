"""The CPU pool and the GPU holder: priorities, model calls on the calling thread only, the same pixels as
in one process, cached generator fills, and damaged stage-cache entries."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from packshot.cache import StageCache
from packshot.storage import LocalStorage
from packshot.types import Cutout
from tests.studio import write_catalog

HERE = Path(__file__).parent
BRAND = """name: acme
scene_prompts: ["{title} on a kitchen table"]
scenes_per_product: 2
presets: [test-shop]
palette: ["#D9CBB5"]
"""


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("PACKSHOT_EXPORT__PRESETS_FILE", str(HERE / "small_presets.yaml"))
    monkeypatch.setenv("PACKSHOT_SEGMENT__BACKEND", "classic")
    monkeypatch.setenv("PACKSHOT_GENERATIVE__BACKEND", "classic")
    monkeypatch.setenv("PACKSHOT_BRAND_STYLES_DIR", str(tmp_path / "brands"))
    (tmp_path / "brands").mkdir()
    (tmp_path / "brands" / "acme.yaml").write_text(BRAND)
    return tmp_path


class FakeFill:
    """A deterministic 'generative model': records which thread called it and when."""

    name = "fake-fill"
    generated = True
    licence = "test"
    model_identity = identity = "fake-fill:v1"

    def __init__(self, settings):
        self.settings, self.notes, self.calls = settings, [], []

    def generation_size(self, width, height):
        from stages.background.compose import generation_size

        return generation_size(width, height, 64)

    def use_brand(self, brand):
        return [f"fake LoRA for {brand.name if brand else None}"]

    def fill(self, image, mask, prompt, seed):
        self.calls.append(threading.current_thread())
        rng = np.random.default_rng(seed)
        out = image.copy()
        out[mask] = rng.integers(0, 255, (int(mask.sum()), 3), dtype=np.uint8)
        return out


def _run(catalog: Path, out: Path, fake: bool = True):
    import orchestrator as pipeline
    from packshot.catalog import load_catalog

    pipeline.clear_contexts()
    options = pipeline.RunOptions(catalog=str(catalog), out=str(out), presets=["test-white", "test-shop"],
                                  stages=["segment", "background", "lifestyle", "recolor", "export"])
    ctx = pipeline.get_context(options)
    if fake:
        ctx.generator = FakeFill(ctx.settings.generative)
    results = {r.sku: r for r in pipeline.process_batch(load_catalog(catalog).products, options)}
    return results, ctx


def test_generated_images_keep_product_pixels_and_model_calls_stay_on_the_calling_thread(env):
    from PIL import Image

    from packshot.imageio import load_image
    from stages.background.render import render_background
    from stages.segment.classic import ClassicSegmenter

    catalog = write_catalog(env / "cat", [{"sku": "A", "brand_style": "acme", "colors": "Navy"},
                                          {"sku": "B", "shape": "mug", "brand_style": "acme"}])
    results, ctx = _run(catalog, env / "out")
    assert {r.status for r in results.values()} == {"done"}, [r.error for r in results.values()]
    assert ctx.generator.calls and set(ctx.generator.calls) == {threading.current_thread()}
    assert len(ctx.generator.calls) == 2 * 3  # per product: 1 background + 2 scenes (generated: no duplicate)

    # The same image rendered in one process, with no pool: identical pixels (the fidelity promise holds
    # because the pipeline's split into plan / fill / finish is the same computation).
    a = results["A"]
    record = next(o for o in a.outputs if o.kind == "background" and o.variant is None)
    loaded = load_image("images/A.jpg", catalog.parent, ctx.settings.load)
    cutout = ClassicSegmenter(ctx.settings.segment).segment(loaded.rgb)
    brand = ctx.brand("acme")
    single = render_background(cutout, a_product(catalog), brand, ctx.presets["test-shop"], ctx.generator)
    assert Image.open(env / "out" / record.key).info.get("xmp") and "fake LoRA for acme" in single.notes
    from stages.export import encode

    assert encode(single, ctx.presets["test-shop"]) == (env / "out" / record.key).read_bytes()

    # Nothing changed: every product is reused, no model call.
    again, ctx2 = _run(catalog, env / "out", fake=True)
    assert {r.status for r in again.values()} == {"skipped"} and ctx2.generator.calls == []


def a_product(catalog: Path):
    from packshot.catalog import load_catalog

    return next(p for p in load_catalog(catalog).products if p.sku == "A")


def test_fills_are_cached_across_runs_of_a_changed_catalog_row(env):
    catalog = write_catalog(env / "cat", [{"sku": "A", "brand_style": "acme"}])
    first, ctx = _run(catalog, env / "out")
    assert first["A"].status == "done" and len(ctx.generator.calls) == 3
    # A new color variant changes the product's key (redo) but not the generator inputs: no model call.
    catalog = write_catalog(env / "cat", [{"sku": "A", "brand_style": "acme", "colors": "Navy"}])
    second, ctx = _run(catalog, env / "out")
    assert second["A"].status == "done" and ctx.generator.calls == []
    assert {s: (v.hits, v.misses) for s, v in ctx.cache.stats.items()} == {
        "cutout": (1, 0), "background": (1, 0), "scenes": (2, 0)}
    assert any(o.variant == "navy" for o in second["A"].outputs)


@pytest.mark.parametrize("damage", ["empty", "truncated", "flipped", "foreign"])
def test_damaged_cache_entries_are_absent_with_a_note(tmp_path, damage):
    rng = np.random.default_rng(1)
    cache = StageCache(LocalStorage(tmp_path))
    rgba = rng.integers(0, 255, (40, 30, 4), dtype=np.uint8)
    cache.put_cutout("k" * 64, Cutout(rgba, backend="classic", notes=["n"]))
    got = cache.get_cutout("k" * 64)
    assert np.array_equal(got.rgba, rgba) and got.notes == ["n"]
    path = next(tmp_path.rglob("*.png"))
    data = path.read_bytes()
    damaged = {"empty": b"", "truncated": data[: len(data) // 2], "foreign": b"not a png at all",
               "flipped": data[:-40] + bytes([data[-40] ^ 0xFF]) + data[-39:]}[damage]
    if damage == "flipped":  # flip a pixel byte inside the compressed data instead of the trailer
        i = data.index(b"IDAT") + 20
        damaged = data[:i] + bytes([data[i] ^ 0x55]) + data[i + 1:]
    path.write_bytes(damaged)
    notes: list[str] = []
    assert cache.get_cutout("k" * 64, notes) is None
    assert len(notes) == 1 and "damaged" in notes[0] and "recomputed" in notes[0]
    assert cache.stats["cutout"].misses == 1


def test_a_damaged_cutout_entry_is_recomputed_in_a_run(env):
    catalog = write_catalog(env / "cat", [{"sku": "A"}])
    first, _ = _run(catalog, env / "out", fake=False)
    for entry in (env / "out" / ".cache" / "cutout").rglob("*.png"):
        entry.write_bytes(entry.read_bytes()[:100])
    (env / "out" / "A" / ".done.json").unlink()  # force a redo
    again, _ = _run(catalog, env / "out", fake=False)
    assert again["A"].status == "done"
    assert any("stage cache: entry" in n and "damaged" in n for n in again["A"].notes)
    cutout = [o.sha256 for o in again["A"].outputs if o.kind == "cutout"]
    assert cutout == [o.sha256 for o in first["A"].outputs if o.kind == "cutout"]


def test_feeding_work_is_dispatched_before_finishing_work():
    from orchestrator.pool import NORMAL, URGENT, CpuPool

    pool = CpuPool(1, _noop_init, ())
    try:
        blocker = pool.submit(time.sleep, 0.5)  # occupies the only worker
        later = [pool.submit(time.time, priority=NORMAL) for _ in range(3)]
        urgent = pool.submit(time.time, priority=URGENT)
        blocker.result(timeout=60)
        assert urgent.result(timeout=60) < min(f.result(timeout=60) for f in later)
    finally:
        pool.shutdown()


def _noop_init() -> None:
    pass


def test_pool_size_follows_the_cpus_this_process_may_use(monkeypatch):
    import os

    from orchestrator import pool

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    monkeypatch.delattr(os, "process_cpu_count", raising=False)
    assert pool.pool_size() == 3


def test_every_product_is_reported_when_all_in_flight_finish_at_once(env, monkeypatch):
    """An unchanged rerun skips products faster than they are admitted: none may be dropped."""
    import orchestrator as pipeline
    from packshot.catalog import load_catalog

    monkeypatch.setenv("PACKSHOT_ORCHESTRATION__PREFETCH", "1")
    catalog = write_catalog(env / "cat", [{"sku": f"P{i:02d}", "image": "images/P00.jpg"} if i else
                                          {"sku": "P00"} for i in range(24)])
    products = load_catalog(catalog).products
    for status in ("done", "skipped", "skipped"):
        pipeline.clear_contexts()
        options = pipeline.RunOptions(catalog=str(catalog), out=str(env / "out"), presets=["test-white"],
                                      stages=["segment"])
        results = pipeline.process_batch(products, options)
        assert [r.sku for r in results] == [p.sku for p in products]
        assert {r.status for r in results} == {status}
