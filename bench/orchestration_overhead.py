"""Orchestration overhead per product, and the cost of a nightly rerun over an unchanged catalog.

    .venv/bin/python bench/orchestration_overhead.py            # 1,000 and 10,000 products (a few minutes)
    .venv/bin/python bench/orchestration_overhead.py --sizes 1000 --per-task 100 --rerun 300

1. Overhead: the real ``packshot-catalog`` flow (Prefect's ephemeral API, batches of products as tasks,
   loader/writer threads, content keys, atomic writes, ``.done.json``, manifest, report, artifacts) over
   catalogs of 8x8 px images with a no-op segmenter, so nearly all the time is orchestration. Peak RSS
   is sampled every 50 ms to show whether memory stays flat as the catalog grows.
2. Baseline, same run: one Prefect task per product per stage (load, segment, write) doing the same
   no-op work, on a smaller catalog; per-product times compare directly.
3. Rerun: a catalog of 96 px studio shots through classic segmentation and one export preset, run twice
   into the same output; the second run should find every product unchanged.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
HOME = tempfile.mkdtemp(prefix="packshot-bench-prefect-")
os.environ.update({"PREFECT_HOME": HOME, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
                   "PREFECT_LOGGING_LEVEL": "ERROR",
                   "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
                   "PACKSHOT_SEGMENT__BACKEND": "classic", "PACKSHOT_GENERATIVE__BACKEND": "classic",
                   "PACKSHOT_EXPORT__PRESETS_FILE": str(REPO / "tests" / "small_presets.yaml")})

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from packshot.types import Cutout  # noqa: E402


class NoOpSegmenter:
    """Returns the photo with an opaque alpha: the orchestration runs, the model does not."""

    name = "noop"
    identity = "noop:v1"
    licence = "none (benchmark only)"
    generated = False

    def segment(self, image, box=None):
        return Cutout(np.dstack([image, np.full(image.shape[:2], 255, np.uint8)]), backend="noop")


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class PeakRss:
    def __enter__(self):
        self.start, self.peak, self._stop = rss_mb(), rss_mb(), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


_CATALOG_MB = """
import sys
sys.path.insert(0, sys.argv[2])
from packshot.catalog import load_catalog
def rss_kb():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS:"))
first = load_catalog(sys.argv[1])  # imports and caches warm; kept so the second copy reuses no memory
before = rss_kb()
second = load_catalog(sys.argv[1])
print((rss_kb() - before) / 1024)
"""


def catalog_mb(catalog: Path) -> float:
    """RSS growth from holding ``catalog``'s Product objects (load_catalog's result), in a fresh process."""
    out = subprocess.run([sys.executable, "-c", _CATALOG_MB, str(catalog), str(REPO)], capture_output=True,
                         text=True, check=True)
    return float(out.stdout.split()[-1])


def tiny_catalog(folder: Path, n: int, size: int = 8) -> Path:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = ["sku,title,image"]
    for i in range(n):
        pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "images" / f"{i}.png")
        lines.append(f"P{i:05d},Product {i},images/{i}.png")
    (folder / "catalog.csv").write_text("\n".join(lines) + "\n")
    return folder / "catalog.csv"


def run_flow(catalog: Path, out: Path, stages: list[str], presets: list[str], batch_size: int,
             noop: bool) -> tuple[float, dict, PeakRss]:
    import orchestrator as pipeline
    from flows.catalog_run import catalog_run

    pipeline.clear_contexts()  # a fresh worker process: models and brand styles load again
    options = pipeline.RunOptions(catalog=str(catalog), out=str(out), stages=stages, presets=presets,
                                  batch_size=batch_size)
    if noop:
        pipeline.get_context(options).segmenter = NoOpSegmenter()
    with PeakRss() as mem:
        start = time.perf_counter()
        summary = catalog_run(options)
        seconds = time.perf_counter() - start
    return seconds, summary, mem


def per_task_baseline(catalog: Path, out: Path) -> float:
    """The same no-op work as one Prefect task per product per stage (load, segment, write)."""
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE
    from prefect.task_runners import ThreadPoolTaskRunner

    from orchestrator.settings import get_settings
    from packshot.catalog import load_catalog
    from packshot.imageio import load_image
    from packshot.storage import LocalStorage

    settings, storage, segmenter = get_settings(), LocalStorage(out), NoOpSegmenter()

    @task(cache_policy=NO_CACHE)
    def load(ref: str):
        return load_image(ref, catalog.parent, settings.load).rgb

    @task(cache_policy=NO_CACHE)
    def segment(rgb):
        return segmenter.segment(rgb).rgba

    @task(cache_policy=NO_CACHE)
    def write(sku: str, rgba):
        storage.write_bytes(f"{sku}/cutout.npy", rgba.tobytes())
        storage.write_bytes(f"{sku}/.done.json", b"{}")

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
    def per_task(products):
        futures = []
        for p in products:
            rgb = load.submit(p.images[0])
            futures.append(write.submit(p.sku, segment.submit(rgb)))
        for f in futures:
            f.result()

    products = load_catalog(catalog).products
    start = time.perf_counter()
    per_task(products)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--per-task", type=int, default=200, help="products for the task-per-stage baseline")
    parser.add_argument("--rerun", type=int, default=1000, help="products for the rerun measurement")
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="packshot-bench-"))
    print(f"cpu cores: {os.cpu_count()}, batch size {args.batch_size}, work dir {work}")

    warm = tiny_catalog(work / "warm", 4)
    run_flow(warm, work / "warm-out", ["segment"], ["test-white"], args.batch_size, noop=True)  # API start-up

    print("\n| products | wall s | ms / product | peak RSS growth MB | of which the loaded catalog MB |")
    print("|---|---|---|---|---|")
    per_product = {}
    for n in args.sizes:
        catalog = tiny_catalog(work / f"cat{n}", n)
        seconds, summary, mem = run_flow(catalog, work / f"out{n}", ["segment"], ["test-white"],
                                         args.batch_size, noop=True)
        assert summary["counts"]["done"] == n, summary["counts"]
        per_product[n] = 1000 * seconds / n
        print(f"| {n:,} | {seconds:.1f} | {per_product[n]:.2f} | {mem.peak - mem.start:.0f} | "
              f"{catalog_mb(catalog):.0f} |")

    m = args.per_task
    catalog = tiny_catalog(work / f"task{m}", m)
    seconds = per_task_baseline(catalog, work / f"task-out{m}")
    baseline = 1000 * seconds / m
    print(f"\none Prefect task per product per stage (3 stages), {m} products: {seconds:.1f} s, "
          f"{baseline:.1f} ms / product")
    for n, ms in per_product.items():
        print(f"  batched pipeline at {n:,} products is {baseline / ms:.0f}x cheaper per product")

    from tests.studio import write_catalog

    r = args.rerun
    rows = [{"sku": f"R{i:05d}", "shape": ("bottle", "mug", "disc")[i % 3]} for i in range(r)]
    catalog = write_catalog(work / f"rerun{r}", rows)
    for img in (work / f"rerun{r}" / "images").iterdir():  # studio shots at 96 px: tiny model-sized work
        Image.open(img).resize((96, 96)).save(img, quality=92)
    first, s1, _ = run_flow(catalog, work / f"rerun-out{r}", ["segment", "export"], ["test-white"],
                            args.batch_size, noop=False)
    second, s2, _ = run_flow(catalog, work / f"rerun-out{r}", ["segment", "export"], ["test-white"],
                             args.batch_size, noop=False)
    assert s1["counts"]["done"] == r and s2["counts"]["skipped"] == r, (s1["counts"], s2["counts"])
    print(f"\nnightly rerun, {r:,} products (classic segmentation + one preset, 96 px): first {first:.1f} s, "
          f"unchanged rerun {second:.1f} s = {100 * second / first:.1f}% of the first")


if __name__ == "__main__":
    main()
