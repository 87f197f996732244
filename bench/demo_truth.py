"""Every demo cutout against the exact alpha its render left in ``catalogs/demo/truth/``.

The demo photos are rendered by ``scripts/make_demo_images.py``, which writes each one's exact
alpha beside them. Each product is segmented the way a run does it (backend ``auto``, the catalog's
bbox, edge refinement on) and compared on ``alpha >= 128``:

- IoU with the truth;
- the largest missing part: the biggest connected region of product pixels the cutout lost, after
  an opening by a 5 px disc (a one-pixel sliver along the whole outline is an edge's placement, not
  a lost part), as a share of the product's area;
- the cutout's status: ``done`` or ``needs_review`` with its reasons.

A cutout passes when IoU >= 0.98 and its largest missing part <= 0.2% of the product, or when it is
flagged ``needs_review`` (a person looks before it is published). The real photo (the espresso cup)
has no truth and is listed with its status only.

    PYTHONPATH=. python bench/demo_truth.py                      # this checkout
    PYTHONPATH=. python bench/demo_truth.py --baseline 6f14624   # and that revision, side by side
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "catalogs" / "demo"
MIN_IOU = 0.98
Box = tuple[int, int, int, int]
MAX_MISSING = 0.002  # of the product's area


@dataclass
class TruthScore:
    """One demo image's cutout against its truth."""

    sku: str
    image: str
    iou: float | None  # None: no truth (a real photo)
    missing: float | None  # largest missing part, share of the product's area
    reasons: list[str]

    @property
    def undamaged(self) -> bool:
        return self.iou is not None and self.iou >= MIN_IOU and self.missing <= MAX_MISSING

    @property
    def acceptable(self) -> bool:
        """Undamaged, or flagged for review (never a damaged cutout marked done)."""
        return self.undamaged or bool(self.reasons)


def compare(alpha: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(IoU, largest missing part as a share of the product) of ``alpha`` vs ``truth`` (``HxW uint8``)."""
    cut, true = alpha >= 128, truth >= 128
    iou = float((cut & true).sum() / max((cut | true).sum(), 1))
    missing = (true & ~cut).astype(np.uint8)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    missing = cv2.morphologyEx(missing, cv2.MORPH_OPEN, disc)
    count, _, stats, _ = cv2.connectedComponentsWithStats(missing, connectivity=8)
    largest = int(stats[1:, cv2.CC_STAT_AREA].max()) if count > 1 else 0
    return iou, largest / max(int(true.sum()), 1)


def demo_images(catalog_csv: Path = DEMO / "catalog.csv") -> list[tuple[str, str, Box | None]]:
    """(sku, image reference, catalog bbox) for every image of the demo catalog."""
    from packshot.catalog.reading import load_catalog

    catalog = load_catalog(catalog_csv)
    return [(p.sku, ref, p.bbox) for p in catalog.products for ref in p.images]


def load_rgb(ref: str) -> np.ndarray:
    """The demo photo ``ref`` decoded the way a run decodes it (RGB ``HxWx3 uint8``)."""
    from packshot.config import LoadSettings
    from packshot.imageio.decode import decode_image

    return decode_image((DEMO / ref).read_bytes(), ref, LoadSettings()).rgb


def truth_of(ref: str) -> np.ndarray | None:
    """The exact alpha of a rendered demo image (``HxW uint8``), None for the real photo."""
    path = DEMO / "truth" / (Path(ref).stem + ".png")
    if not path.exists():
        return None
    return cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)


def score_demo(only: list[str] | None = None, catalog_csv: Path = DEMO / "catalog.csv") -> list[TruthScore]:
    """Segment the demo images (all, or the skus in ``only``) as a run does and score each."""
    from stages.segment import get_segmenter
    from stages.segment.settings import SegmentSettings

    segmenter = get_segmenter(SegmentSettings())  # "auto": classic here (no model files)
    scores = []
    for sku, ref, bbox in demo_images(catalog_csv):
        if only and sku not in only:
            continue
        cutout = segmenter.segment(load_rgb(ref), bbox)
        truth = truth_of(ref)
        iou, missing = compare(cutout.alpha, truth) if truth is not None else (None, None)
        scores.append(TruthScore(sku, ref, iou, missing, list(cutout.review_reasons)))
    return scores


def _table(scores: list[TruthScore]) -> str:
    lines = []
    for s in scores:
        status = f"needs_review ({'; '.join(r[:70] for r in s.reasons)})" if s.reasons else "done"
        if s.iou is None:
            lines.append(f"{s.sku:14} {Path(s.image).name:18}   (no truth)             {status}")
        else:
            verdict = "ok" if s.undamaged else ("FLAGGED" if s.reasons else "DAMAGED")
            lines.append(f"{s.sku:14} {Path(s.image).name:18} IoU {s.iou:.4f} missing {s.missing:.3%} "
                         f"{verdict:8} {status}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="also score this git revision's stages/ (e.g. 6f14624)")
    parser.add_argument("--only", nargs="*", help="these skus only")
    parser.add_argument("--catalog", type=Path, default=DEMO / "catalog.csv", help="bboxes from this catalog")
    parser.add_argument("--print-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", tmp, args.baseline],
                           check=True, capture_output=True)
            try:
                # the baseline's code and catalog (its bboxes) with this checkout's truth
                only = ["--only", *args.only] if args.only else []
                old_catalog = str(Path(tmp) / "catalogs" / "demo" / "catalog.csv")
                command = [sys.executable, __file__, "--print-only", "--catalog", old_catalog, *only]
                run = subprocess.run(command,
                                     env={"PYTHONPATH": tmp, "PATH": "/usr/bin:/bin"},
                                     capture_output=True, text=True, check=True)
                print(f"== baseline {args.baseline}\n{run.stdout}")
            finally:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", tmp], check=False)
    scores = score_demo(args.only, args.catalog)
    print(("" if args.print_only else "== this checkout\n") + _table(scores))
    if not args.print_only:
        ok = [s for s in scores if s.iou is not None]
        print(f"undamaged {sum(s.undamaged for s in ok)}/{len(ok)}, damaged and not flagged: "
              f"{sum(not s.acceptable for s in ok)}")


if __name__ == "__main__":
    main()
