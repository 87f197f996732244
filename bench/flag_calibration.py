"""Review flags per check: how often each classic check fires, on which cutouts, and with what cost.

A flag is right when the cutout is damaged: "precision" counts the photos a check flagged whose IoU
is under 0.97, "recall share" the photos under 0.85 (badly damaged) that the check caught, "false
alarms" the photos at IoU >= 0.97 it flagged ("alone": with no other check flagging them too).
The totals line gives the targets of issue 20: recall (flagged among IoU < 0.85) and false alarms
(flagged among IoU >= 0.97).

Measure (classic backend, one row per photo with every check's value, written as JSON):

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 PYTHONPATH=. python bench/flag_calibration.py \\
        --eval /tmp/seg20/hard /tmp/seg20/new --dump /tmp/seg20/flags.json

Report a saved dump as it was judged when measured (``--report``), or judge its saved values again
with this tree's thresholds without cutting out again (``--rescore``; checks whose values the saved
run did not measure are missing there):

    PYTHONPATH=. python bench/flag_calibration.py --rescore /tmp/seg20/flags.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.segment_compare import HIGH_IOU, LOW_IOU  # noqa: E402


def measure(eval_dirs: list[Path], alphas: Path | None = None) -> list[dict]:
    """Cut out every photo of ``eval_dirs`` with the classic backend; rows with IoU, reasons, values.

    ``alphas``: also save each cutout's alpha there (``<set>/<name>.png``), to look at.
    """
    import stages.segment.classic as classic
    from bench.make_segment_evalset import category_of
    from bench.segment_quality import _load, score
    from stages.segment import get_segmenter
    from stages.segment.refine import warm_up
    from stages.segment.settings import SegmentSettings

    seen: list[dict[str, float]] = []
    judge = classic.judge

    def recording_judge(values, *args, **kwargs):  # the values the checks measured, kept for the table
        seen.append(dict(values))
        return judge(values, *args, **kwargs)

    classic.judge = recording_judge
    warm_up()
    segmenter = get_segmenter(SegmentSettings(backend="classic"))
    rows = []
    for eval_dir in eval_dirs:
        for png in sorted((eval_dir / "images").glob("*.png")):
            image, alpha_true, fg_true = _load(eval_dir, png.stem)
            seen.clear()
            start = time.process_time()
            cutout = segmenter.segment(image)
            if alphas is not None:
                (alphas / eval_dir.name).mkdir(parents=True, exist_ok=True)
                Image.fromarray(cutout.alpha).save(alphas / eval_dir.name / png.name)
            rows.append({"set": eval_dir.name, "name": png.stem, "category": category_of(png.stem),
                         "iou": score(cutout.rgba, alpha_true, fg_true)["iou"],
                         "s": time.process_time() - start, "reasons": list(cutout.review_reasons),
                         "values": seen[-1] if seen else {}})
            print(f"  {eval_dir.name}/{png.stem}: IoU {rows[-1]['iou']:.3f} "
                  f"{'REVIEW ' + '; '.join(cutout.review_reasons) if cutout.review_reasons else 'done'}",
                  flush=True)
    classic.judge = judge
    return rows


def rescore(rows: list[dict]) -> list[dict]:
    """The same rows, judged again from their saved values by this tree's checks."""
    from stages.segment.classic import ADVICE, CLASSIC_CHECKS, judge

    return [{**row, "reasons": judge(row["values"], CLASSIC_CHECKS, ADVICE)[1]} for row in rows]


def all_checks() -> dict:
    """This tree's classic checks and the retired ones, whose reasons older dumps still carry."""
    from stages.segment.confidence import CLASSIC_CHECKS, Check

    retired = {  # replaced in issue 20 (see stages/segment/confidence.py); sentences as they were
        "border_noise": Check(2.0, 6.0, "the backdrop at the photo's edges is textured or uneven "
                              "(wood, tiles, fabric?): {value:.1f} Lab units from a smooth fit"),
        "faint_outline": Check(0.01, 0.05, "{value:.1%} of the product's outline is barely distinct from "
                               "the backdrop: light parts (laces, a white upper, a pale rim) may be cut off "
                               "there"),
    }
    return CLASSIC_CHECKS | {k: v for k, v in retired.items() if k not in CLASSIC_CHECKS}


def fired(row: dict) -> set[str]:
    """Names of the checks whose reason is among ``row``'s reasons."""
    checks = all_checks()
    return {name for reason in row["reasons"] if (name := _check_of_reason(reason, checks))}


def _check_of_reason(reason: str, checks: dict) -> str | None:
    """The name of the check whose sentence ``reason`` is, or None (a box-edge reason)."""
    import re

    for name, check in checks.items():
        parts = [re.escape(part) for part in re.split(r"\{[^}]*\}", check.reason)]
        if re.match("segment: " + ".*?".join(parts), reason):
            return name
    return None


def totals(rows: list[dict]) -> str:
    low = [r for r in rows if r["iou"] < LOW_IOU]
    high = [r for r in rows if r["iou"] >= HIGH_IOU]
    caught = sum(bool(r["reasons"]) for r in low)
    false = sum(bool(r["reasons"]) for r in high)
    flagged = sum(bool(r["reasons"]) for r in rows)
    return (f"{len(rows)} photos, {flagged} flagged: recall {caught}/{len(low)} "
            f"({caught / max(len(low), 1):.0%}) of IoU < {LOW_IOU}; false alarms {false}/{len(high)} "
            f"({false / max(len(high), 1):.0%}) of IoU >= {HIGH_IOU}")


def per_check(rows: list[dict]) -> str:
    """Markdown table: per check that fired, flagged, precision, recall share, false alarms (alone)."""
    low = [r for r in rows if r["iou"] < LOW_IOU]
    lines = ["| check | flagged | IoU < 0.97 (precision) | IoU < 0.85 caught (recall share) "
             "| false alarms (alone) |", "|---|---|---|---|---|"]
    names = {n for r in rows for n in fired(r)}
    for name in [n for n in all_checks() if n in names]:
        hit = [r for r in rows if name in fired(r)]
        bad = sum(r["iou"] < HIGH_IOU for r in hit)
        very_bad = sum(r["iou"] < LOW_IOU for r in hit)
        false = [r for r in hit if r["iou"] >= HIGH_IOU]
        alone = sum(fired(r) == {name} for r in false)
        lines.append(f"| {name} | {len(hit)} | {bad} ({bad / len(hit):.0%}) | {very_bad}/{len(low)} "
                     f"({very_bad / max(len(low), 1):.0%}) | {len(false)} ({alone}) |")
    return "\n".join(lines)


def missed_and_false(rows: list[dict]) -> str:
    """The photos behind the totals: bad ones not flagged, good ones flagged (with their checks)."""
    out = []
    for r in rows:
        if r["iou"] < LOW_IOU and not r["reasons"]:
            out.append(f"  missed: {r['set']}/{r['name']} IoU {r['iou']:.3f}")
        elif r["iou"] >= HIGH_IOU and r["reasons"]:
            checks = ", ".join(sorted(fired(r)))
            out.append(f"  false alarm: {r['set']}/{r['name']} IoU {r['iou']:.3f} ({checks})")
    return "\n".join(out)


def report(rows: list[dict]) -> None:
    for name in sorted({r["set"] for r in rows}) + ["all"]:
        sel = [r for r in rows if name in ("all", r["set"])]
        print(f"\n{name}: {totals(sel)}")
        print(per_check(sel))
    non_studio = [r for r in rows if r["category"] == "non_studio"]
    if non_studio:
        print(f"\nnon_studio: {totals(non_studio)}")
    print(missed_and_false(rows))
    print(f"CPU s/image: mean {np.mean([r.get('s', 0.0) for r in rows]):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", type=Path, nargs="*", default=[], help="evaluation set folders")
    parser.add_argument("--dump", type=Path, help="write the rows (with every check's value) as JSON")
    parser.add_argument("--alphas", type=Path, help="also save every cutout's alpha in this folder")
    parser.add_argument("--rescore", type=Path, help="judge a saved dump again instead of cutting out")
    parser.add_argument("--report", type=Path, nargs="+", help="report saved dumps as they were judged then")
    args = parser.parse_args()
    if args.report:
        rows = [row for path in args.report for row in json.loads(path.read_text())]
    elif args.rescore:
        rows = rescore(json.loads(args.rescore.read_text()))
    else:
        rows = measure(args.eval, args.alphas)
        if args.dump:
            args.dump.write_text(json.dumps(rows, indent=1))
    report(rows)


if __name__ == "__main__":
    main()
