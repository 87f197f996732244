"""Which images of a run may go to a store: only what is safe.

An image is sent when it was made for the store's preset, passed its marketplace checks, and either a
review approved it or (with ``--all``, or no review required) nobody rejected it. A product the run
marked ``needs_review`` (a doubtful cutout) or ``failed`` is held back even with ``--all``, unless a
review approved it; every image held back is listed with its reason, so ``--dry-run`` says what
stays out and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.publish.plan import PublishError
from packshot.schemas.results import OutputRecord, ProductResult, RunManifest

REVIEW_NAME = "review.json"
PUBLISHED_KINDS = ("packshot", "background", "scene")
_SAFE_STATUSES = ("done", "skipped")


@dataclass
class Selection:
    chosen: dict[str, list[OutputRecord]] = field(default_factory=dict)  # sku -> outputs in listing order
    held: list[str] = field(default_factory=list)  # one line per product held back, with the reason


def select(
    manifest: RunManifest, review: dict | None, preset: str, *, approved_only: bool = True, all_: bool = False
) -> Selection:
    """What to send and what is held back. Raises PublishError when no review was done and neither
    ``all_`` nor ``approved_only=False`` says to publish everything that is safe."""
    if review is None and approved_only and not all_:
        raise PublishError(
            f"the run has no {REVIEW_NAME}: review its images first, or pass --all to publish every image "
            "that passed the marketplace checks"
        )
    picked = Selection()
    for product in manifest.products:
        candidates = [o for o in product.outputs if o.kind in PUBLISHED_KINDS and o.preset == preset]
        if not candidates:
            continue
        reasons: dict[str, int] = {}
        for output in candidates:
            reason = _held_reason(product, output, review or {}, approved_only=approved_only and not all_)
            if reason is None:
                picked.chosen.setdefault(output.sku, []).append(output)
            else:
                reasons[reason] = reasons.get(reason, 0) + 1
        if reasons:
            text = "; ".join(f"{n} image(s) {reason}" for reason, n in reasons.items())
            picked.held.append(f"held back: {product.sku}: {text}")
    for outputs in picked.chosen.values():
        outputs.sort(key=lambda o: (o.photo, o.position if o.position is not None else 10**6, o.key))
    return picked


def select_outputs(
    manifest: RunManifest, review: dict | None, preset: str, *, approved_only: bool = True, all_: bool = False
) -> dict[str, list[OutputRecord]]:
    """sku -> its outputs to publish, in listing order (see :func:`select`)."""
    return select(manifest, review, preset, approved_only=approved_only, all_=all_).chosen


def _held_reason(
    product: ProductResult, output: OutputRecord, review: dict, *, approved_only: bool
) -> str | None:
    verdict = decision_of(review, product, output)
    if output.checks:
        return f"failed the marketplace checks ({output.checks[0]})"
    if verdict == "rejected":
        return "rejected in the review"
    if verdict == "approved":
        return None
    if product.status not in _SAFE_STATUSES:
        why = "; ".join(product.review_reasons) or product.error or "no reason recorded"
        return f"not approved, and the product is {product.status} ({why}); approve it in packshot review"
    if approved_only:
        return "not approved in the review yet"
    return None


def decision_of(review: dict, product: ProductResult, output: OutputRecord) -> str | None:
    """"approved", "rejected" or None for one output, read from ``review.json``: the review loop's
    format (``outputs`` by output key, else ``products`` by SKU; a decision lapses when its ``basis``,
    the output's sha256 or the product's content key, no longer matches), or a plain ``decisions`` map.
    A damaged entry counts as no decision."""
    by_key = _mapping(review.get("outputs")) or _mapping(review.get("decisions"))
    decision = _mapping(by_key.get(output.key))
    if decision and decision.get("basis") in (None, output.sha256):
        return str(decision.get("status", "")).lower() or None
    decision = _mapping(_mapping(review.get("products")).get(product.sku or ""))
    if decision and decision.get("basis") in (None, product.key):
        return str(decision.get("status", "")).lower() or None
    return None


def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}
