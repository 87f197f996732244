"""How far to trust a cutout: a confidence in 0..1 and the reasons a person should look at it.

Each check measures one thing and maps it to a penalty in 0..1 that is 0 up to ``fine`` and 1 from
``bad`` on (linear in between). The cutout's confidence is 1 minus the largest penalty; a check whose
penalty reaches 0.5 (its value is past the midpoint, ``Check.review_at``) adds its reason, so
``Cutout.needs_review`` is the same as confidence < 0.5. The thresholds were calibrated on the
evaluation set of ``bench/make_segment_evalset.py --hard`` (see docs/benchmarks.md).

Classic checks: how studio-like the photo's border is (share of it far from a smooth backdrop,
and how well that fit explains it), whether the product reaches the frame or fills it, whether a
shaded enclosed region was cut out as a hole, how faint the product's edge is, how much of the
product is thin (under 5 working px, about 7 px of a 960 px photo), and whether the settled edge
agrees with the first outline; since issue 20 also how much of the outline is barely distinct from the
backdrop (a light part cut off), whether the base runs into a same-colored deep shadow, backdrop pockets
left open or smooth near-backdrop regions filled between parts, and how much of the outline follows no
edge (a glow). Any backend: a cut along the row's bbox (:func:`box_edge_contact`). SAM checks: its
predicted IoU and the stability of the chosen mask.

Recalibrated in issue 20 (``bench/flag_calibration.py``, per check, with a held-out set): the
checks on the final cut in :mod:`stages.segment.cut_checks` (a second edge outside the cut, edges
left outside it, a cut surrounded by non-backdrop, fine texture along the border) replace
``faint_outline`` and ``border_noise``, whose values are still measured but no longer judged.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from stages.segment.estimate import border_ring, fit_backdrop, working_copy


@dataclass(frozen=True)
class Check:
    """A measured value judged between ``fine`` and ``bad`` (``bad`` may be the smaller end).

    ``reason`` is a sentence with ``{value}`` in it, for the merchant.
    """

    fine: float
    bad: float
    reason: str

    def penalty(self, value: float) -> float:
        return float(np.clip((value - self.fine) / (self.bad - self.fine), 0.0, 1.0))

    @property
    def review_at(self) -> float:
        return (self.fine + self.bad) / 2


CLASSIC_CHECKS = {
    "border_mismatch": Check(0.10, 0.40, "the photo does not look like a studio shot: {value:.0%} of its "
                             "edges differ from a plain backdrop (a table, floor, shelf or room?)"),
    # issue 20: fine detail, not the distance to a quadratic fit ("border_noise", measured still): a
    # seamless sweep's bend misfits a quadratic by 5-9 Lab units on good furniture shots, as much as
    # a wood table, but it is smooth, and wood, tiles and carpet are not
    "border_texture": Check(0.5, 0.9, "the backdrop at the photo's edges is textured (wood, tiles, "
                            "fabric?): {value:.2f} Lab units of fine detail"),
    # issue 20: a product running off one edge by design (apparel, large furniture) is framing, not
    # damage; contact on the other sides is counted, and tight framing (a garment at 60-70% of the
    # photo) is normal: a cutout that took in the background covers far more
    "frame_contact": Check(0.02, 0.10, "the cutout reaches the photo's edge on more than one side, along "
                           "{value:.0%} of those sides: the product may be cut off, or background was taken "
                           "for product"),
    "coverage": Check(0.60, 0.90, "the cutout covers {value:.0%} of the photo: background was probably "
                      "taken for product"),
    "kept_share": Check(0.005, 0.001, "the cutout keeps only {value:.1%} of the photo: the product was "
                        "probably not found"),
    "shaded_hole": Check(1.5, 3.5, "a region inside the product that has the backdrop's color was cut out "
                         "as a hole, but it is shaded like a surface ({value:.1f}x the backdrop's shading): "
                         "check that it is really see-through"),
    "faint_edge": Check(5.5, 2.0, "the product's edge barely differs from the backdrop (median {value:.1f} "
                        "Lab units): parts of a light product may be missing"),
    "thin_parts": Check(0.10, 0.40, "{value:.0%} of the product is thin (wire, stem, frame): the cutout may "
                        "get their width wrong or fill the gaps between them"),
    "shadow_base": Check(0.03, 0.15, "the product's base runs into a dark contact shadow of the same color "
                         "along {value:.0%} of its width: the cutout may keep part of the shadow or floor"),
    "smooth_fill": Check(0.01, 0.05, "enclosed regions as smooth as the backdrop and close to its color "
                         "({value:.1%} of the product) were kept as product: background between parts "
                         "(chair legs, straps, a sleeve) may be filled in"),
    "open_pocket": Check(0.004, 0.02, "the product's outline nearly encloses backdrop-colored pockets "
                         "({value:.1%} of its area) that were left out: background between parts (straps, "
                         "legs, a sleeve) or light parts of the product (laces, a white upper)"),
    "edgeless_outline": Check(0.08, 0.22, "{value:.0%} of the cutout's outline follows no edge in the photo: "
                              "the cut may run through the product or take in a glow or reflection"),
    # issue 20, on the final cut (stages.segment.cut_checks): what a damaged cut leaves outside it.
    # They replace "faint_outline" (measured still): a faint outline is as common on good cuts of
    # light products (a lit ball, a white box) as on damaged ones; what tells them apart is what lies
    # beyond it: plain backdrop, or the rest of the product (its edges, a rim, a garment)
    "outer_edge": Check(0.03, 0.09, "a second edge runs 3-6 px outside the cutout along {value:.0%} of "
                        "its sides and top: a rim or border of the product (mirror steel, piping) may be cut "
                        "off"),
    "stray_edges": Check(0.03, 0.09, "the photo has edges outside the cutout ({value:.2f} px per px of "
                         "its outline): parts of the product (laces, an upper, a garment's seams) may be "
                         "left out"),
    "surrounded": Check(3.5, 5.5, "the photo around the cutout is not the backdrop ({value:.1f} Lab units "
                        "from it, near and 25 px out): the cutout may be only part of the product"),
    "matte_disagreement": Check(3.0, 6.0, "the settled edge lies {value:.1f} px from the first outline on "
                                "average: the product's edge is uncertain"),
}
SAM_CHECKS = {
    "predicted_iou": Check(0.88, 0.70, "SAM rates its own mask low (predicted IoU {value:.2f})"),
    "stability": Check(0.92, 0.75, "SAM's mask changes with the threshold (stability {value:.2f}): the "
                       "product's edge is unclear"),
}
ADVICE = "; give the row a bbox, or configure SAM (PACKSHOT_SEGMENT__SAM_CHECKPOINT)"


def judge(values: dict[str, float], checks: dict[str, Check], advice: str = "") -> tuple[float, list[str]]:
    """(confidence 0..1, reasons) for measured ``values`` (keys of ``checks``; missing ones skipped)."""
    worst, reasons = 0.0, []
    for name, check in checks.items():
        if name not in values:
            continue
        value = values[name]
        penalty = check.penalty(value)
        worst = max(worst, penalty)
        if penalty >= 0.5:
            reasons.append("segment: " + check.reason.format(value=value))
    if reasons and advice:
        reasons[0] += advice  # what to do, said once
    return round(1.0 - worst, 3), reasons


def border_mismatch(image: np.ndarray, far: float = 20.0) -> float:
    """Share of the frame's border (RGB ``HxWx3 uint8`` photo) farther than ``far`` from a smooth backdrop."""
    small, _ = working_copy(image, 256)
    background = fit_backdrop(small)  # robust to a product covering much of one edge, and a sweep's bend
    border = border_ring(small.shape[:2], 0.04)
    residual = np.linalg.norm(small[border].astype(np.float32) - background[border], axis=1)
    return float(np.mean(residual > far))


def mask_checks(mask: np.ndarray, silhouette: np.ndarray, distance: np.ndarray) -> dict[str, float]:
    """Frame contact, coverage, edge contrast, thin share and outline agreement of a working-size ``mask``.

    ``mask``: the final cutout (``HxW`` bool), ``silhouette``: the filled outline it came from,
    ``distance``: Lab distance to the fitted backdrop, all at the same size.
    """
    values: dict[str, float] = {}
    values["frame_contact"] = frame_contact(mask)
    values["coverage"] = values["kept_share"] = float(mask.mean())
    if mask.any():
        m = mask.astype(np.uint8)
        edge = (cv2.dilate(m, np.ones((3, 3), np.uint8)) > 0) & ~(cv2.erode(m, np.ones((7, 7), np.uint8)) > 0)
        inner_edge = edge & mask
        if inner_edge.any():
            values["faint_edge"] = float(np.median(distance[inner_edge]))
        thick = cv2.morphologyEx(m, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
        values["thin_parts"] = float((mask & (thick == 0)).sum() / mask.sum())
        values["faint_outline"] = faint_outline(mask, distance)
        outline_px = (m - cv2.erode(m, np.ones((3, 3), np.uint8))).sum()
        values["matte_disagreement"] = float((mask ^ silhouette).sum() / max(outline_px, 1))
    return values


def frame_contact(mask: np.ndarray) -> float:
    """Share of the frame's edge pixels that ``mask`` (``HxW`` bool) touches, leaving out its most-touched
    side: a product running off one edge is normal studio framing (a garment's hem, a sofa's end, feet
    on a sweep) and leaves the other three clear, while a cutout that took in a table, a floor or a room
    reaches two or more sides.
    """
    sides = [mask[0], mask[-1], mask[:, 0], mask[:, -1]]
    touched = sorted((float(side.sum()), side.size) for side in sides)
    return sum(t for t, _ in touched[:3]) / max(sum(n for _, n in touched[:3]), 1)


def faint_outline(mask: np.ndarray, distance: np.ndarray, faint: float = 2.5) -> float:
    """Share of the sides and top of ``mask``'s outline (``HxW`` bool) closer than ``faint`` Lab units
    to the backdrop (``distance``, same size): where a cut runs through a white upper or along a
    light part lit to the backdrop's level. The lowest 8% of the product is left out (its base
    meets its own shadow), and so is the frame.
    """
    m = mask.astype(np.uint8)
    edge = mask & ~(cv2.erode(m, np.ones((3, 3), np.uint8)) > 0) & ~border_ring(mask.shape, 0.0)
    ys = np.nonzero(mask)[0]
    edge[ys.max() - int(0.08 * (ys.max() - ys.min())) :] = False
    return float((distance[edge] < faint).mean()) if edge.any() else 0.0


def edgeless_outline(mask: np.ndarray, lab_residual: np.ndarray, flat: float = 1.0) -> float:
    """Share of ``mask``'s outline (``HxW`` bool, off the frame) with no edge in the photo within 2 px.

    ``lab_residual``: ``HxWx3`` Lab of the photo minus the fitted backdrop's. An edge is a Lab
    gradient of at least ``flat`` units per pixel; a true outline lies on one (even white on white
    steps by more), a cut through a smooth surface or around a glow does not.
    """
    m = mask.astype(np.uint8)
    ring = mask & ~(cv2.erode(m, np.ones((3, 3), np.uint8)) > 0) & ~border_ring(mask.shape, 0.0)
    if not ring.any():
        return 0.0
    grad = np.zeros(mask.shape, np.float32)
    for c in range(3):
        channel = np.ascontiguousarray(lab_residual[..., c])
        gx, gy = cv2.Sobel(channel, cv2.CV_32F, 1, 0) / 8, cv2.Sobel(channel, cv2.CV_32F, 0, 1) / 8
        grad += gx**2 + gy**2
    near = cv2.dilate(np.sqrt(grad), np.ones((5, 5), np.uint8))
    return float((near[ring] < flat).mean())


def box_edge_contact(mask: np.ndarray, box: tuple[int, int, int, int]) -> dict[str, float]:
    """Per side of ``box`` (x0, y0, x1, y1, exclusive) inside the frame: the share of that edge the
    product mask (``HxW`` bool, same pixels) runs along. A side lying on the photo's own border is
    left out (frame contact is its own check). A cut that follows the box's edge means the product
    continues beyond it: the box was too small.
    """
    h, w = mask.shape
    x0, y0, x1, y1 = max(box[0], 0), max(box[1], 0), min(box[2], w), min(box[3], h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return {}
    t = 3  # px: an upsampled mask may stop a pixel or two short of the line it was cut at
    lines = {
        "left": (x0 > 0, mask[y0:y1, x0 : x0 + t].any(1)),
        "right": (x1 < w, mask[y0:y1, x1 - t : x1].any(1)),
        "top": (y0 > 0, mask[y0 : y0 + t, x0:x1].any(0)),
        "bottom": (y1 < h, mask[y1 - t : y1, x0:x1].any(0)),
    }
    return {side: float(line.mean()) for side, (inside, line) in lines.items() if inside}


def box_edge_reasons(
    contact: dict[str, float], what: str = "the catalog's box", at: float = 0.03
) -> list[str]:
    """One review reason naming the box's edges the cutout runs along (share >= ``at``), or none."""
    sides = [side for side, share in contact.items() if share >= at]
    if not sides:
        return []
    run = max(contact[s] for s in sides)
    edges = f"{' and '.join(sides)} edge{'s' if len(sides) > 1 else ''}"
    return [f"segment: the cutout runs along the {edges} of {what} ({run:.0%} of its length): the product "
            "continues outside the box; widen the row's bbox"]


def sam_values(
    predicted_iou: float, low_res_logits: np.ndarray | None, offset: float = 1.0
) -> dict[str, float]:
    """SAM's predicted IoU and the stability score of one mask's logits (``hxw`` float, or None).

    Stability is SAM's own: IoU of the mask thresholded at +offset and at -offset (a mask whose
    area changes little when the cut-off moves has a clear edge).
    """
    values = {"predicted_iou": float(predicted_iou)}
    if low_res_logits is not None:
        loose = int((low_res_logits > -offset).sum())
        values["stability"] = float((low_res_logits > offset).sum() / loose) if loose else 0.0
    return values
