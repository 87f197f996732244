"""Reruns of chosen products: ``--sku``, ``--force`` and ``--from-review``.

A :class:`RerunPlan` is made once per run context from the run options and the review of the run
folder: which SKUs to redo (``None``: every product, as in a plain run) and the corrections that the
reviews gathered per SKU. Corrections hold in every run into the folder, not only in ``--from-review``
ones: a corrected box replaces the catalog's ``bbox`` and a seed offset moves the brand seed, and both
are inputs of the product's content key, so the product is redone exactly when they change.
Products that are not chosen keep their previous outputs (their ``.done.json``), untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.review.decisions import REVIEW_KEY, ProductCorrection, load_review
from packshot.errors import PackshotError
from packshot.schemas.results import ProductResult, RunManifest
from packshot.storage import Storage, open_storage
from packshot.types import Product

NOT_CHOSEN = "not chosen for this run (--sku or --from-review): its previous outputs are kept"


@dataclass
class RerunPlan:
    chosen: set[str] | None = None  # SKUs to redo; None: all
    force: bool = False  # redo chosen products even when their content key is unchanged
    corrections: dict[str, ProductCorrection] = field(default_factory=dict)
    approved: set[str] = field(default_factory=set)  # SKUs whose current outputs were all approved
    notes: list[str] = field(default_factory=list)

    def is_chosen(self, sku: str) -> bool:
        return self.chosen is None or sku in self.chosen

    def status_of_unchanged(self, previous: ProductResult) -> str:
        """A reused product is skipped, unless its cutout was doubtful and nobody approved it yet."""
        doubtful = bool(previous.review_reasons) and previous.sku not in self.approved
        return "needs_review" if doubtful else "skipped"

    def corrected(self, product: Product) -> Product:
        """``product`` with the reviewed box in place of the catalog's and the recolor modes of its
        rejected variants (the same object when none)."""
        c = self.corrections.get(product.sku)
        if c is None or (c.bbox is None and not c.recolor_modes):
            return product
        update = {"bbox": c.bbox} if c.bbox is not None else {}
        if c.recolor_modes:
            update["recolor_modes"] = {**product.recolor_modes, **c.recolor_modes}
        return product.model_copy(update=update)

    def seed_offset(self, sku: str) -> int:
        c = self.corrections.get(sku)
        return c.seed_offset if c is not None else 0


def make_plan(skus: list[str] | None, force: bool, from_review: str | None, out: Storage) -> RerunPlan:
    """The plan for run options ``skus``/``force``/``from_review`` writing into ``out``: corrections
    come from ``from_review``'s review when given, else from ``out``'s own ``review.json``."""
    source = open_storage(from_review) if from_review else out
    review, note = load_review(source)
    plan = RerunPlan(force=force, corrections=dict(review.corrections), notes=[note] if note else [])
    chosen = set(skus or [])
    if from_review and not source.exists(REVIEW_KEY):
        raise PackshotError(f"{from_review} has no {REVIEW_KEY}: review the run first "
                            f"(packshot review {from_review})")
    manifest = None
    if (review.outputs or review.products) and source.exists("manifest.json"):
        manifest = RunManifest.model_validate_json(source.read_bytes("manifest.json"))
        plan.approved = {p.sku for p in manifest.products if p.sku and review.verdict(p) == "approved"}
    if any(c.points for c in plan.corrections.values()):
        plan.notes.append("include/exclude points from the review are kept in review.json, but the "
                          "segmenters do not take points yet: those products are redone without them")
    if from_review:
        redo = review.to_redo(manifest) if manifest is not None else []
        for p in manifest.products if manifest is not None else []:
            for o in p.outputs:
                d = review.decision_for(p, o)
                if d is not None and d.status == "rejected" and (why := review.cannot_redo(p, o)):
                    plan.notes.append(f"{o.key}: rejected, {why}")
        plan.notes.append(f"from the review of {from_review}: {len(redo)} rejected product(s) redone"
                          + (f" ({', '.join(redo[:10])}{' ...' if len(redo) > 10 else ''})" if redo else ""))
        chosen |= set(redo)
    plan.chosen = chosen if (skus or from_review) else None
    return plan


def check_skus(skus: list[str] | None, products: list[Product]) -> None:
    """Every SKU named with ``--sku`` must be in the catalog."""
    known = {p.sku for p in products}
    missing = [s for s in skus or [] if s not in known]
    if missing:
        raise PackshotError(f"--sku {', '.join(missing)}: not in the catalog (check the spelling; "
                            "SKUs are matched exactly)")


def carried_over(product: Product, storage: Storage, folder: str, plan: RerunPlan) -> ProductResult:
    """The result of a product this run does not redo: its last ``.done.json``, as skipped."""
    base = {"sku": product.sku, "source_file": product.source_file, "source_line": product.source_line}
    done_key = f"{folder}/.done.json"
    if storage.exists(done_key):
        try:
            previous = ProductResult.model_validate_json(storage.read_bytes(done_key))
        except ValueError:
            previous = None
        if previous is not None:
            status = plan.status_of_unchanged(previous)
            return previous.model_copy(update={"status": status, "notes": [*previous.notes, NOT_CHOSEN],
                                               "generator_calls": 0, "fills_shared": 0, **base})
    return ProductResult(**base, status="skipped", notes=[NOT_CHOSEN + " (it has none yet)"])


def with_seed_offset(brand, offset: int):
    """``brand`` (a BrandStyle or None) with its seeds moved by ``offset`` (new seed on review)."""
    if brand is None or not offset:
        return brand
    seeds = [s + offset for s in brand.seeds] if brand.seeds else None
    return brand.model_copy(update={"seed": brand.seed + offset, "seeds": seeds})
