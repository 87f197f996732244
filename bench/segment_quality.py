"""Segmentation quality and edge-refinement speed, per backend, on the studio evaluation set.

Metrics per method (mean over the set):
- IoU of ``alpha >= 128`` against the ground truth's;
- boundary F-score: outline pixels within 2 px of the true outline (precision and recall);
- halo: mean absolute RGB error (0-255) in the edge band (5 px either side of the true outline) when
  the cutout and the ground truth are both composited onto a dark and a saturated background.

Methods: ``threshold`` (color distance to the border color, binary), ``grabcut`` (GrabCut seeded
by that threshold, soft edges by blurring, no color correction: the skeleton's first sketch),
``classic`` (this project's backend with edge refinement), ``classic-norefine`` (the same mask
without refinement), and ``tiny`` (random-weight SAM, only to show the code path runs; its masks
are meaningless).

Speed: CPU time of :func:`stages.segment.refine.refine_edges` on 2-megapixel images (1632x1224),
one core (numba and BLAS limited to one thread), numba compilation excluded.

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 python bench/segment_quality.py --eval /tmp/segment-eval

Per category, before and after, with review flags (the hard set; ``--baseline`` is any git revision):

    python bench/segment_quality.py --eval /tmp/segment-hard --hard 6 --categories --baseline c23a95d
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.make_segment_evalset import make_sample, write_evalset  # noqa: E402
from stages.segment import get_segmenter  # noqa: E402
from stages.segment.classic import classic_mask  # noqa: E402
from stages.segment.cleanup import clean_mask  # noqa: E402
from stages.segment.refine import refine_edges, warm_up  # noqa: E402
from stages.segment.settings import SegmentSettings  # noqa: E402

HALO_BACKGROUNDS = [(18, 18, 24), (0, 150, 70)]  # dark, saturated green


def threshold_alpha(image: np.ndarray) -> np.ndarray:
    """Plain thresholding: Lab distance to the median border color > 18."""
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    border = np.concatenate([lab[:4].reshape(-1, 3), lab[-4:].reshape(-1, 3),
                             lab[:, :4].reshape(-1, 3), lab[:, -4:].reshape(-1, 3)])
    dist = np.linalg.norm(lab - np.median(border, axis=0), axis=2)
    return np.where(dist > 18, 255, 0).astype(np.uint8)


def grabcut_alpha(image: np.ndarray) -> np.ndarray:
    """Uncorrected GrabCut seeded by thresholds, edges softened by a 3x3 blur (the first sketch)."""
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    border = np.concatenate([lab[:4].reshape(-1, 3), lab[-4:].reshape(-1, 3),
                             lab[:, :4].reshape(-1, 3), lab[:, -4:].reshape(-1, 3)])
    dist = np.linalg.norm(lab - np.median(border, axis=0), axis=2)
    mask = np.full(dist.shape, cv2.GC_PR_BGD, np.uint8)
    mask[dist > 18] = cv2.GC_PR_FGD
    mask[dist > 40] = cv2.GC_FGD
    mask[dist < 6] = cv2.GC_BGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(np.ascontiguousarray(image[..., ::-1]), mask, None, bgd, fgd, 3, cv2.GC_INIT_WITH_MASK)
    fg = np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8) * 255
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    return cv2.GaussianBlur(fg, (3, 3), 0)


def outline(mask: np.ndarray) -> np.ndarray:
    m = mask.astype(np.uint8)
    return (m - cv2.erode(m, np.ones((3, 3), np.uint8))) > 0


def boundary_f(pred: np.ndarray, truth: np.ndarray, tol: int = 2) -> float:
    bp, bt = outline(pred), outline(truth)
    if not bp.any() or not bt.any():
        return float(bp.any() == bt.any())
    dt_t = cv2.distanceTransform((~bt).astype(np.uint8), cv2.DIST_L2, 3)
    dt_p = cv2.distanceTransform((~bp).astype(np.uint8), cv2.DIST_L2, 3)
    precision = (dt_t[bp] <= tol).mean()
    recall = (dt_p[bt] <= tol).mean()
    return float(2 * precision * recall / max(precision + recall, 1e-9))


def halo(rgba: np.ndarray, alpha_true: np.ndarray, fg_true: np.ndarray) -> float:
    """Mean |RGB error| in the true edge band after compositing on dark and saturated colors."""
    truth = alpha_true >= 128
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (11, 11))
    band = (cv2.dilate(truth.astype(np.uint8), kernel) > 0) & ~(cv2.erode(truth.astype(np.uint8), kernel) > 0)
    a_pred = rgba[..., 3:].astype(np.float32) / 255
    a_true = alpha_true[..., None].astype(np.float32) / 255
    errors = []
    for color in HALO_BACKGROUNDS:
        bg = np.array(color, np.float32)
        pred = a_pred * rgba[..., :3] + (1 - a_pred) * bg
        true = a_true * fg_true + (1 - a_true) * bg
        errors.append(np.abs(pred - true)[band].mean())
    return float(np.mean(errors))


def score(rgba: np.ndarray, alpha_true: np.ndarray, fg_true: np.ndarray) -> dict[str, float]:
    """IoU, boundary F and halo of one cutout ``HxWx4`` against its truth."""
    truth, pred = alpha_true >= 128, rgba[..., 3] >= 128
    union = (pred | truth).sum()
    return {"iou": float((pred & truth).sum() / union) if union else 1.0, "bf": boundary_f(pred, truth),
            "halo": halo(rgba, alpha_true, fg_true)}


def _load(eval_dir: Path, name: str):
    image = np.asarray(Image.open(eval_dir / "images" / f"{name}.png").convert("RGB"))
    alpha_true = np.asarray(Image.open(eval_dir / "truth" / f"{name}_alpha.png"))
    fg_true = np.asarray(Image.open(eval_dir / "truth" / f"{name}_fg.png")).astype(np.float32)
    return image, alpha_true, fg_true


def evaluate(eval_dir: Path, methods: dict) -> dict[str, dict[str, float]]:
    """Mean metrics per method; ``methods`` map a name to ``image -> rgba``."""
    names = sorted(p.stem for p in (eval_dir / "images").glob("*.png"))
    results: dict[str, dict[str, list[float]]] = {
        m: {"iou": [], "bf": [], "halo": [], "s": []} for m in methods
    }
    for name in names:
        image, alpha_true, fg_true = _load(eval_dir, name)
        for method, run in methods.items():
            start = time.process_time()
            rgba = run(image)
            elapsed = time.process_time() - start
            r = results[method]
            for key, value in score(rgba, alpha_true, fg_true).items():
                r[key].append(value)
            r["s"].append(elapsed)
            if method == "classic" and r["iou"][-1] < 0.97:
                print(f"  {name}: classic IoU {r['iou'][-1]:.3f}")
    return {m: {k: float(np.mean(v)) for k, v in r.items()} | {"min_iou": float(np.min(r["iou"]))}
            for m, r in results.items()}


def refine_speed(band_px: int, repeats: int = 4) -> list[float]:
    """CPU seconds of refine_edges per 2 MP image, for several products (compilation excluded)."""
    warm_up()
    times = []
    for seed in range(repeats):
        photo, alpha, _ = make_sample(100 + seed, size=(1632, 1224))
        mask = clean_mask(classic_mask(photo))
        start = time.process_time()
        refine_edges(photo, mask, band_px=band_px)
        times.append(time.process_time() - start)
    return times


def categories(args: argparse.Namespace) -> None:
    """Per-category IoU before (``--baseline REV``) and after, and flagging recall and false flags."""
    import tempfile

    from bench.make_segment_evalset import category_of
    from bench.segment_compare import (
        baseline_alphas,
        category_table,
        compare,
        dump,
        flagging,
        flagging_per_check,
    )

    warm_up()
    with tempfile.TemporaryDirectory(prefix="segment-before-") as scratch:
        baseline_dir = baseline_alphas(args.baseline, args.eval, Path(scratch)) if args.baseline else None
        segmenter = get_segmenter(SegmentSettings(backend="classic"))
        rows = compare(args.eval, segmenter, baseline_dir, category_of)
    if args.dump:
        dump(rows, args.dump)
    print()
    print(category_table(rows))
    print()
    print(flagging(rows))
    print()
    print(flagging_per_check(rows))
    print(f"CPU s/image (after): mean {np.mean([r['s'] for r in rows]):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", type=Path, default=Path("/tmp/segment-eval"))
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--hard", type=int, default=0, help="when generating: seeds per hard category")
    parser.add_argument("--skip-tiny", action="store_true")
    parser.add_argument("--categories", action="store_true",
                        help="classic only: IoU per category and review flags (bench/segment_compare.py)")
    parser.add_argument("--baseline", metavar="REV", help="with --categories: also run commit REV's classic")
    parser.add_argument("--dump", type=Path, help="with --categories: write the per-sample rows as JSON")
    args = parser.parse_args()
    if not (args.eval / "images").is_dir():
        write_evalset(args.eval, args.count, hard_per_category=args.hard)
    if args.categories:
        categories(args)
        return

    start = time.perf_counter()
    warm_up()
    print(f"numba warm-up (pymatting compile or cache load): {time.perf_counter() - start:.1f} s")
    settings = SegmentSettings(backend="classic")
    classic = get_segmenter(settings)
    plain = SegmentSettings(backend="classic", refine_edges=False)
    methods = {
        "threshold": lambda im: np.dstack([im, threshold_alpha(im)]),
        "grabcut": lambda im: np.dstack([im, grabcut_alpha(im)]),
        "classic-norefine": get_segmenter(plain).segment,
        "classic": classic.segment,
    }
    methods = {k: (v if k in ("threshold", "grabcut") else (lambda im, f=v: f(im).rgba))
               for k, v in methods.items()}
    if not args.skip_tiny:
        tiny = get_segmenter(SegmentSettings(backend="tiny"))
        methods["tiny"] = lambda im: tiny.segment(im).rgba
    results = evaluate(args.eval, methods)
    print("\n| method | mean IoU | min IoU | boundary F (2 px) | halo (mean abs RGB error, edge band) "
          "| CPU s/image |")
    print("|---|---|---|---|---|---|")
    for method, r in results.items():
        print(f"| {method} | {r['iou']:.4f} | {r['min_iou']:.4f} | {r['bf']:.4f} | {r['halo']:.2f} "
              f"| {r['s']:.2f} |")
    for band_px in sorted({SegmentSettings().edge_band_px, 4}, reverse=True):
        times = refine_speed(band_px)
        print(f"\nedge refinement, 2 MP, one core, band {band_px} px: mean {np.mean(times):.3f} s, "
              f"max {np.max(times):.3f} s ({', '.join(f'{t:.3f}' for t in times)})")


if __name__ == "__main__":
    main()
