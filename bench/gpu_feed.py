"""How busy the pipeline keeps the GPU, and what it costs in CPU per product.

    PYTHONPATH=. .venv/bin/python bench/gpu_feed.py --catalog catalogs/demo/catalog.csv --products 10 \
        --gpu-seconds 2.5 [--seg-seconds 0.1]
    PYTHONPATH=. .venv/bin/python bench/gpu_feed.py --catalog catalogs/demo/catalog.csv --classic

Runs the real pipeline (``orchestrator.process_batch`` over the catalog's products, cycled to ``--products``
with unique SKUs, into a fresh output folder) with a stand-in generator whose ``fill`` holds the GPU for
``--gpu-seconds`` per generated image, and a stand-in segmenter that holds it for ``--seg-seconds`` per
cutout (it returns the classic cutout of the photo, computed once before the clock starts, so both sides
of a comparison get the same cutouts for free). The stand-ins sleep; they hold the real lock because
the run's device is set to ``cuda:0`` (``packshot.gpu.gpu_lock``: an ``flock`` in a temporary folder),
and the seconds the lock is held are measured with ``gpu.set_extra_guard`` (entered right after the lock
is taken, left right before it is released; without CUDA the stand-in card gets a fixed UUID).
``--classic`` keeps the configured classic backends (no stand-in, no lock) to measure CPU cost and
throughput.

The last line: ``gpu_busy=<stand-in model s / wall s> wall_s=... products=... core_s_per_product=...
lock_busy=<lock-held s / wall s>``. The two shares differ when CPU work runs while the lock is held (the
GPU is reserved but idle): ``gpu_busy`` counts only the seconds the stand-in models work, which is what a
GPU-hour buys. Core seconds are user + system CPU of this process and every child process (pool workers
included).
Works against any checkout that has ``orchestrator.process_batch`` and ``RunContext.gpu`` (run it with
``PYTHONPATH`` pointing at the checkout to measure an older commit). Where the checkout has a CPU pool
(``RunContext.cpu_pool``), its worker processes are started before the clock, like models are loaded
before it: a worker starts them once and keeps them for every batch.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("PACKSHOT_SEGMENT__BACKEND", "classic")
os.environ.setdefault("PACKSHOT_GENERATIVE__BACKEND", "classic")
os.environ.setdefault("PACKSHOT_DEVICE", "cpu")
os.environ["PACKSHOT_ORCHESTRATION__GPU_LOCK_DIR"] = tempfile.mkdtemp(prefix="packshot-gpu-feed-lock-")

import numpy as np  # noqa: E402
import psutil  # noqa: E402


class GpuClock:
    """Sums the seconds the GPU lock is held (installed as the lock's extra guard)."""

    def __init__(self):
        self.held, self.model, self._lock = 0.0, 0.0, threading.Lock()
        self.spans: list[tuple[float, float]] = []  # (start, end) of each stand-in model call

    @contextmanager
    def guard(self, slot: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            with self._lock:
                self.held += time.perf_counter() - start

    def worked(self, seconds: float) -> None:
        end = time.perf_counter()
        with self._lock:
            self.model += seconds
            self.spans.append((end - seconds, end))

    def idle(self, start: float, stop: float) -> str:
        """Where the GPU waited: before the first call, after the last, and the largest gaps between."""
        if not self.spans:
            return "idle: no model calls"
        spans = sorted(self.spans)
        gaps = sorted((b[0] - a[1] for a, b in zip(spans, spans[1:], strict=False)), reverse=True)
        return (f"idle_s: before first call {spans[0][0] - start:.1f}, after last {stop - spans[-1][1]:.1f}, "
                f"between calls {sum(gaps):.1f} (largest {', '.join(f'{g:.2f}' for g in gaps[:4])})")


class StandInGenerator:
    """Looks like a generative backend to the pipeline; ``fill`` sleeps ``seconds`` (the GPU's time)."""

    name = "standin"
    generated = True
    licence = "stand-in (benchmark only)"
    model_identity = identity = "standin:v1"

    def __init__(self, settings, seconds: float, clock: GpuClock):
        self.settings, self.seconds, self.clock, self.notes = settings, seconds, clock, []

    def generation_size(self, width: int, height: int) -> tuple[int, int]:
        from stages.background.compose import generation_size

        return generation_size(width, height, 1024)

    def use_brand(self, brand) -> list[str]:
        return []

    def fill(self, image: np.ndarray, mask: np.ndarray, prompt: str, seed: int) -> np.ndarray:
        time.sleep(self.seconds)
        self.clock.worked(self.seconds)
        out = image.copy()
        out[mask] = (out[mask].astype(np.int16) * 7 // 8 + seed % 32).clip(0, 255).astype(np.uint8)
        return out


class StandInSegmenter:
    """Holds the GPU ``seconds`` per cutout and returns the photo's precomputed classic cutout."""

    name = "standin-sam"
    identity = "standin-sam:v1"
    licence = "stand-in (benchmark only)"
    generated = False

    def __init__(self, cutouts: dict, seconds: float, clock: GpuClock):
        self.cutouts, self.seconds, self.clock = cutouts, seconds, clock

    def segment(self, image: np.ndarray, box=None):
        from packshot.types import Cutout

        time.sleep(self.seconds)
        self.clock.worked(self.seconds)
        cut = self.cutouts[(image.shape, image[::97, ::89].tobytes(), box)]
        return Cutout(cut.rgba.copy(), backend=self.name, notes=list(cut.notes))

    def segment_batch(self, images, boxes):
        return [self.segment(im, b) for im, b in zip(images, boxes, strict=True)]


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _standin_card_uuid(device: str) -> str | None:
    from packshot import gpu

    return "GPU-standin-bench" if gpu.device_index(device) is not None else None


def cycled(products: list, n: int) -> list:
    out = []
    for i in range(n):
        p = products[i % len(products)]
        round_ = i // len(products)
        out.append(p if round_ == 0 else p.model_copy(update={"sku": f"{p.sku}-r{round_}"}))
    return out


def precomputed_cutouts(products: list, ctx) -> dict:
    from packshot.imageio import load_image
    from stages.segment.classic import ClassicSegmenter

    classic, cutouts = ClassicSegmenter(ctx.settings.segment), {}
    for p in products:
        loaded = load_image(p.images[0], ctx.base_dir, ctx.settings.load)
        key = (loaded.rgb.shape, loaded.rgb[::97, ::89].tobytes(), p.bbox)
        if key not in cutouts:
            cutouts[key] = classic.segment(loaded.rgb, p.bbox)
    return cutouts


def core_seconds(proc: psutil.Process) -> float:
    """CPU seconds of this process, its reaped children and its live children."""
    t = proc.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for child in proc.children(recursive=True):
        try:
            c = child.cpu_times()
            total += c.user + c.system
        except psutil.NoSuchProcess:
            pass
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--catalog", default="catalogs/demo/catalog.csv")
    parser.add_argument("--products", type=int, default=10)
    parser.add_argument("--gpu-seconds", type=float, default=2.5, help="stand-in GPU s per generated image")
    parser.add_argument("--seg-seconds", type=float, default=0.1, help="stand-in GPU seconds per cutout")
    parser.add_argument("--classic", action="store_true", help="classic backends, no stand-in, no GPU lock")
    parser.add_argument("--out", default=None, help="output folder (default: a fresh temporary one)")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="packshot-gpu-feed-"))

    import orchestrator
    from packshot import gpu
    from packshot.catalog import load_catalog

    catalog = load_catalog(args.catalog)
    products = cycled(catalog.products, args.products)
    options = orchestrator.RunOptions(catalog=args.catalog, out=str(out))
    ctx = orchestrator.get_context(options)
    clock = GpuClock()
    if not args.classic:
        ctx.device = "cuda:0"  # the stand-ins hold the real lock file (in a temporary folder, see below)
        if not _has_cuda():  # the lock is keyed by the card's UUID: name the stand-in card on a CPU machine
            gpu.card_uuid = _standin_card_uuid
        ctx.generator = StandInGenerator(ctx.settings.generative, args.gpu_seconds, clock)
        ctx.segmenter = StandInSegmenter(precomputed_cutouts(catalog.products, ctx), args.seg_seconds, clock)
        gpu.set_extra_guard(clock.guard)
    if hasattr(ctx, "cpu_pool"):  # start the worker processes before the clock, as models load before it
        pool = ctx.cpu_pool()
        for f in [pool.submit(os.getpid) for _ in range(2 * pool.size)]:
            f.result()
    proc = psutil.Process()
    cpu0, start = core_seconds(proc), time.perf_counter()
    assert orchestrator.get_context(options) is ctx, "the run must use the context with the stand-ins"
    results = orchestrator.process_batch(products, options)
    stop = time.perf_counter()
    wall = stop - start
    core = core_seconds(proc) - cpu0
    gpu.set_extra_guard(None)
    statuses = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed")}
    files = sum(len(r.outputs) for r in results)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"out={out} statuses={statuses} files={files} cores={os.cpu_count()} loadavg_after={load}")
    per_hour = 3600 * len(results) / wall
    print(f"model_s={clock.model:.1f} lock_held_s={clock.held:.1f} products_per_hour={per_hour:.0f}")
    print(clock.idle(start, stop))
    for r in results:
        if r.status == "failed":
            print(f"failed {r.sku}: {r.error}", file=sys.stderr)
    print(f"gpu_busy={clock.model / wall:.2f} wall_s={wall:.1f} products={len(results)} "
          f"core_s_per_product={core / max(1, len(results)):.2f} lock_busy={clock.held / wall:.2f}")


if __name__ == "__main__":
    main()
