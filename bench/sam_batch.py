"""SAM across products: image-encoder calls and seconds under the card lock, before and after batching.

Runs on the CPU with the tiny random-weight SAM (``PACKSHOT_SEGMENT__BACKEND=tiny``): the counters
(encoder calls, lock acquisitions, edge refinements under the lock) are what a GPU run would count;
the seconds are CPU seconds, so only the share of the lock spent on CPU refinement carries over.
The card lock is real: the CPU device is given a stand-in card UUID, so ``gpu_lock`` takes its
``flock`` in a temporary folder, and ``gpu``'s extra guard times how long it is held.

1. ``direct``, side by side on the same photos: the old pipeline's call (one photo per lock; prompts,
   model, mask cleanup and edge refinement all under it) against the new one (``--batch`` photos per
   lock, the model only; prompts made before, drafts finished after the lock is let go).
2. ``pipeline``: ``process_batch`` on a catalog of those photos, stages ``segment`` only, at
   ``--batch`` photos per encoder call: encoder calls, lock held, refinements in the GPU holder's
   process while it held the lock (the pool refines them).

    PYTHONPATH=. .venv/bin/python bench/sam_batch.py --products 6 --side 1600 --batch 4
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

STANDIN_CARD = "GPU-bench-sam-batch"


class LockClock:
    """Counts and times card-lock holds (installed as ``gpu``'s extra guard)."""

    def __init__(self):
        self.holds, self.seconds, self.held = 0, 0.0, False

    @contextmanager
    def guard(self, uuid: str):
        self.holds += 1
        self.held, start = True, time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - start
            self.held = False


def photos(n: int, side: int) -> list[np.ndarray]:
    from tests.studio import studio_shot

    shapes = ["mug", "bottle", "ball"]
    return [studio_shot(size=side, shape=shapes[i % 3], seed=i)[0] for i in range(n)]


def write_catalog(folder: Path, images: list[np.ndarray]) -> Path:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    with open(folder / "catalog.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["sku", "title", "image"])
        writer.writeheader()
        for i, rgb in enumerate(images):
            Image.fromarray(rgb).save(folder / "images" / f"p{i}.png")
            writer.writerow({"sku": f"SAM-{i}", "title": f"Product {i}", "image": f"images/p{i}.png"})
    return folder / "catalog.csv"


def counted_encoder() -> list[int]:
    """Batch sizes of every SAM image-encoder forward in this process, from now on."""
    from stages.segment._torchvision_compat import import_segment_anything

    encoder = import_segment_anything().modeling.ImageEncoderViT
    calls: list[int] = []
    forward = encoder.forward
    encoder.forward = lambda self, x: calls.append(x.shape[0]) or forward(self, x)
    return calls


def watch_refinement(clock: LockClock) -> list[bool]:
    """For each edge refinement in this process: was the card lock held?"""
    from stages.segment import classic

    seen: list[bool] = []
    refine = classic.refine_edges

    def watched(image, mask, band_px=4):
        seen.append(clock.held)
        return refine(image, mask, band_px=band_px)

    classic.refine_edges = watched
    return seen


def direct(images: list[np.ndarray], batch: int, clock: LockClock, calls: list[int], lock_dir: Path) -> None:
    from stages.segment import get_segmenter, model_batch
    from stages.segment.refine import warm_up
    from stages.segment.settings import SegmentSettings

    warm_up()  # numba compiles pymatting's kernels once; not part of either arm
    one = get_segmenter(SegmentSettings(backend="tiny", batch_size=1))
    many = get_segmenter(SegmentSettings(backend="tiny", batch_size=batch))
    rows = []
    for name, run in (("old: 1 photo per lock, CPU work under it", lambda: _old(one, images, lock_dir)),
                      (f"new: {batch} photos per lock, CPU work outside", lambda: _new(many, images, batch,
                                                                                    lock_dir, model_batch))):
        calls.clear()
        clock.holds, clock.seconds = 0, 0.0
        start = time.perf_counter()
        alphas = run()
        wall = time.perf_counter() - start
        rows.append((name, len(calls), clock.holds, clock.seconds, wall, alphas))
    print(f"direct, {len(images)} photos of {images[0].shape[1]}x{images[0].shape[0]} px, tiny SAM, CPU:")
    for name, encoder_calls, holds, held, wall, _ in rows:
        print(f"  {name:44s} encoder calls {encoder_calls:2d}  lock holds {holds:2d}  "
              f"lock held {held:6.2f} s ({held / len(images):.3f} s/photo)  wall {wall:6.2f} s")
    same = max(float((a != b).mean()) for a, b in zip(rows[0][5], rows[1][5], strict=True))
    print(f"  old/new lock-held ratio {rows[0][3] / max(rows[1][3], 1e-9):.1f}x; "
          f"largest share of alpha pixels that differ: {same:.4f}")


def _old(segmenter, images, lock_dir):
    from packshot.gpu import gpu_lock

    out = []
    for image in images:
        with gpu_lock("cuda:0", lock_dir):
            out.append(segmenter.segment_batch([image], [None])[0].alpha)
    return out


def _new(segmenter, images, batch, lock_dir, model_batch):
    from packshot.gpu import gpu_lock
    from stages.segment import model_prompt

    out = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        prompts = [model_prompt(segmenter, image, None) for image in chunk]  # a loader thread's work
        with gpu_lock("cuda:0", lock_dir):
            drafts = model_batch(segmenter, chunk, [None] * len(chunk), prompts)
        out += [draft.finish(image).alpha for draft, image in zip(drafts, chunk, strict=True)]  # the pool's
    return out


def lock_split(segmenter, image: np.ndarray, batch: int, runs: int, device: str, lock_dir: Path,
               sync=lambda: None) -> dict:
    """The pipeline's SAM path on ``batch`` copies of ``image``, ``runs`` times: median seconds per photo
    for the prompts (made before the lock), the model call under the card lock, and the finish (mask
    cleanup and edge refinement, after it). ``sync`` waits for the device (CUDA) before a clock reads."""
    from packshot.gpu import gpu_lock
    from stages.segment import model_batch, model_prompt

    images = [image] * batch
    split: dict[str, list[float]] = {"prompt": [], "model": [], "finish": []}
    for _ in range(runs):
        start = time.perf_counter()
        prompts = [model_prompt(segmenter, im, None) for im in images]
        split["prompt"].append(time.perf_counter() - start)
        start = time.perf_counter()
        with gpu_lock(device, lock_dir):
            drafts = model_batch(segmenter, images, [None] * batch, prompts)
            sync()
        split["model"].append(time.perf_counter() - start)
        start = time.perf_counter()
        for draft, im in zip(drafts, images, strict=True):
            draft.finish(im)
        split["finish"].append(time.perf_counter() - start)
    names = {"prompt": "prompt_seconds_per_image_before_lock",
             "model": f"model_seconds_per_image_under_lock_batch{batch}",
             "finish": "finish_seconds_per_image_after_lock"}
    return {names[k]: round(float(np.median(v)) / batch, 3) for k, v in split.items()}


def pipeline(images: list[np.ndarray], batch: int, clock: LockClock, calls: list[int], work: Path,
             under_lock: list[bool]) -> None:
    import orchestrator
    from packshot.catalog import load_catalog

    os.environ.update({"PACKSHOT_SEGMENT__BACKEND": "tiny", "PACKSHOT_SEGMENT__BATCH_SIZE": str(batch),
                       "PACKSHOT_ORCHESTRATION__GPU_LOCK_DIR": str(work / "locks")})
    catalog = write_catalog(work / "cat", images)
    options = orchestrator.RunOptions(catalog=str(catalog), out=str(work / "out"), stages=["segment"])
    ctx = orchestrator.get_context(options)
    pool = ctx.cpu_pool()  # workers started (and numba warmed in them) before the clock
    for f in [pool.submit(_warm) for _ in range(2 * pool.size)]:
        f.result()
    calls.clear()
    under_lock.clear()
    clock.holds, clock.seconds = 0, 0.0
    start = time.perf_counter()
    results = orchestrator.process_batch(load_catalog(catalog).products, options)
    wall = time.perf_counter() - start
    statuses = sorted({r.status for r in results})
    print(f"pipeline, {len(results)} products, batch {batch}, pool of {pool.size}: statuses {statuses}")
    print(f"  encoder calls {len(calls)} (batches {calls})  lock holds {clock.holds}  lock held "
          f"{clock.seconds:.2f} s ({clock.seconds / len(results):.3f} s/product)  "
          f"refinements under the lock in the GPU holder's process: {under_lock.count(True)}  "
          f"wall {wall:.2f} s")
    orchestrator.clear_contexts()


def _warm() -> int:
    from stages.segment.refine import warm_up

    warm_up()
    return os.getpid()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--products", type=int, default=6)
    parser.add_argument("--side", type=int, default=1600, help="photo side in px (square studio shots)")
    parser.add_argument("--batch", type=int, default=4, help="PACKSHOT_SEGMENT__BATCH_SIZE")
    args = parser.parse_args()

    from packshot import gpu

    gpu.card_uuid = lambda device: STANDIN_CARD  # a real flock on a machine without a card
    clock = LockClock()
    gpu.set_extra_guard(clock.guard)
    calls = counted_encoder()
    under_lock = watch_refinement(clock)
    images = photos(args.products, args.side)
    with tempfile.TemporaryDirectory(prefix="packshot-sam-batch-") as tmp:
        direct(images, args.batch, clock, calls, Path(tmp) / "locks")
        pipeline(images, args.batch, clock, calls, Path(tmp), under_lock)
    gpu.set_extra_guard(None)
    print(f"cores={os.cpu_count()} loadavg={' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
