"""Per-category IoU of the classic cutout, before (an older commit) and after (this tree), and flagging.

"truth smoothed 1 px" is the IoU the true alpha itself reaches after a 1 px Gaussian blur: the
ceiling for any mask that does not follow single hairs (furry edges are far below 1 there).

The "before" code is not kept in this tree: ``git archive REV packshot stages`` is unpacked to a
temporary folder and run there in a subprocess, which writes one alpha PNG per sample. Both sides
see the same photos. Flagging compares ``Cutout.needs_review`` with the IoU each cutout reached:
recall = share of cutouts under ``LOW_IOU`` that were flagged, false flags = share of cutouts over
``HIGH_IOU`` that were flagged.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
LOW_IOU, HIGH_IOU = 0.85, 0.97

_RUNNER = """
import sys
from pathlib import Path
import cv2
import numpy as np
from PIL import Image
tree, eval_dir, out = map(Path, sys.argv[1:4])
sys.path.insert(0, str(tree))
try:
    from stages.segment.settings import SegmentSettings
except ImportError:
    from packshot.config import SegmentSettings
from stages.segment import get_segmenter
segmenter = get_segmenter(SegmentSettings(backend="classic"))
for png in sorted((eval_dir / "images").glob("*.png")):
    rgba = segmenter.segment(np.asarray(Image.open(png).convert("RGB"))).rgba
    Image.fromarray(rgba[..., 3]).save(out / png.name)
"""


def baseline_alphas(rev: str, eval_dir: Path, out_dir: Path) -> Path:
    """Cut out each sample of ``eval_dir`` with ``rev``'s classic backend; alpha PNGs in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="segment-baseline-") as tree:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "packshot", "stages"],
                                 check=True, capture_output=True).stdout
        with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
            tar.extractall(tree, filter="data")
        subprocess.run([sys.executable, "-c", _RUNNER, tree, str(eval_dir), str(out_dir)], check=True,
                       cwd=tree)
    return out_dir


def compare(eval_dir: Path, segmenter, baseline_dir: Path | None, category_of) -> list[dict]:
    """One row per sample: name, category, IoU after (and before), confidence, reasons, CPU s."""
    from bench.segment_quality import _load, score

    rows = []
    for png in sorted((eval_dir / "images").glob("*.png")):
        name = png.stem
        image, alpha_true, fg_true = _load(eval_dir, name)
        start = time.process_time()
        cutout = segmenter.segment(image)
        row = {"name": name, "category": category_of(name), "s": time.process_time() - start,
               "iou": score(cutout.rgba, alpha_true, fg_true)["iou"], "confidence": cutout.confidence,
               "reasons": list(cutout.review_reasons)}
        if baseline_dir is not None:
            before = np.asarray(Image.open(baseline_dir / f"{name}.png"))
            truth, pred = alpha_true >= 128, before >= 128
            row["iou_before"] = float((pred & truth).sum() / max((pred | truth).sum(), 1))
        blurred = cv2.GaussianBlur(alpha_true.astype(np.float32), (0, 0), 1.0) >= 127.5
        truth = alpha_true >= 128
        row["ceiling"] = float((blurred & truth).sum() / max((blurred | truth).sum(), 1))
        rows.append(row)
        before = f" (before {row['iou_before']:.3f})" if baseline_dir else ""
        confidence = cutout.confidence if cutout.confidence is not None else float("nan")
        review = f" REVIEW: {'; '.join(row['reasons'])}" if row["reasons"] else ""
        print(f"  {name}: IoU {row['iou']:.3f}{before} confidence {confidence:.2f}{review}", flush=True)
    return rows


def category_table(rows: list[dict]) -> str:
    """Markdown: per category, mean and min IoU before and after, and how many were flagged."""
    has_before = "iou_before" in rows[0]
    head = "| category | n | " + ("mean IoU before | min before | " if has_before else "")
    lines = [head + "mean IoU after | min after | flagged for review | truth smoothed 1 px |",
             "|---|---|" + ("---|---|" if has_before else "") + "---|---|---|---|"]
    categories = sorted({r["category"] for r in rows}, key=lambda c: (c != "studio", c))
    for category in [*categories, "all", "all but glass and non_studio"]:
        sel = [r for r in rows if category == "all" or r["category"] == category
               or (category.startswith("all but") and r["category"] not in ("glass", "non_studio"))]
        after = np.array([r["iou"] for r in sel])
        cells = [category, str(len(sel))]
        if has_before:
            before = np.array([r["iou_before"] for r in sel])
            cells += [f"{before.mean():.4f}", f"{before.min():.4f}"]
        cells += [f"{after.mean():.4f}", f"{after.min():.4f}", f"{sum(bool(r['reasons']) for r in sel)}",
                  f"{np.mean([r['ceiling'] for r in sel]):.4f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def flagging(rows: list[dict]) -> str:
    """Recall of flags on bad cutouts and the false-flag rate on good ones, as a sentence."""
    low = [r for r in rows if r["iou"] < LOW_IOU]
    high = [r for r in rows if r["iou"] > HIGH_IOU]
    caught = sum(bool(r["reasons"]) for r in low)
    false = sum(bool(r["reasons"]) for r in high)
    recall = caught / len(low) if low else float("nan")
    false_rate = false / len(high) if high else float("nan")
    flagged = [r for r in rows if r["reasons"]]
    precision = sum(r["iou"] < HIGH_IOU for r in flagged) / len(flagged) if flagged else float("nan")
    return (f"flagging: {caught}/{len(low)} cutouts under IoU {LOW_IOU} flagged (recall {recall:.0%}); "
            f"{false}/{len(high)} over {HIGH_IOU} flagged (false flags {false_rate:.0%}); "
            f"{len(flagged)} flagged in all, {precision:.0%} of them under {HIGH_IOU}")


def flagging_per_check(rows: list[dict]) -> str:
    """Per classic check: how many cutouts its reason flagged, and how many of those were bad
    (IoU < 0.97: precision; IoU < 0.85) and good (IoU >= 0.97: its false alarms), as a table."""
    import re

    from stages.segment.confidence import CLASSIC_CHECKS

    patterns = {name: re.compile("segment: " + ".*?".join(re.escape(part) for part in
                                 re.split(r"\{[^}]*\}", check.reason)))
                for name, check in CLASSIC_CHECKS.items()}
    lines = ["| check | flagged | IoU < 0.97 (precision) | IoU < 0.85 | IoU >= 0.97 (false alarms) |",
             "|---|---|---|---|---|"]
    for name, pattern in patterns.items():
        hit = [r for r in rows if any(pattern.match(reason) for reason in r["reasons"])]
        if not hit:
            continue
        bad = sum(r["iou"] < HIGH_IOU for r in hit)
        very_bad = sum(r["iou"] < LOW_IOU for r in hit)
        share = f"{bad} ({bad / len(hit):.0%})"
        lines.append(f"| {name} | {len(hit)} | {share} | {very_bad} | {len(hit) - bad} |")
    return "\n".join(lines)


def dump(rows: list[dict], path: Path) -> None:
    path.write_text(json.dumps(rows, indent=1))
