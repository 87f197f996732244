"""Every photo of a product: which photos a product has, where each one's files go, and one product
result from its photos' results.

A product's photos are its catalog images in the store's order (photo 1 is the main photo), plus any
variant photo the catalog names only on a variant. Each photo is processed on its own (cutout, the
presets, the brand's scenes, the recolors that apply), with its own content key and ``.done.json``,
so adding a photo to a product makes only that photo; the others are reused.

Where the files go: photo 1 keeps the product's folder (``<SKU>/cutout.png``,
``<SKU>/packshot-amazon-main.jpg``, ``<SKU>/burgundy/...``), so runs made before several photos were
read stay valid; photo n is under ``<SKU>/photo-n/`` with the same names.

Variants: a color variant with its own photo (Shopify ``Variant Image``, a feed item per color, a
WooCommerce variation image) is *photographed*: that photo's outputs carry ``shows_variant`` and no
photo is recolored into it. Every other variant is *recolored* from the main photo and from each photo
that is not a variant's own photo. The catalog's ``bbox`` and ``recolor_mask`` are drawn on the main
photo, so they apply to photo 1 only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from orchestrator.keys import load_previous_result, safe_dirname
from packshot.schemas.results import OutputRecord, PhotoResult, ProductResult, VariantResult
from packshot.storage import Storage
from packshot.types import Product

PHOTO_FOLDER = "photo-{n}"


@dataclass(frozen=True)
class Photo:
    """One photo of a product, as a job processes it. ``product`` is the product seen through this
    photo: ``images`` is ``[ref]``, ``colors`` the variants to recolor it into, ``bbox`` and
    ``recolor_mask`` only on photo 1."""

    position: int  # 1 = the main photo
    ref: str
    folder: str
    product: Product
    shows: str | None = None  # slug of the variant whose own photo this is


def photos_of(product: Product, folder: str) -> list[Photo]:
    """The photos of ``product`` in listing order; ``folder`` is the product's folder."""
    refs = list(dict.fromkeys([*product.images, *(c.image for c in product.colors if c.image)]))
    owner: dict[str, str] = {}  # photo -> the first variant whose own photo it is
    for color in product.colors:
        if color.image:
            owner.setdefault(color.image, color.slug)
    photographed = set(owner.values())
    made = [c for c in product.colors if c.slug not in photographed]
    out = []
    for n, ref in enumerate(refs, start=1):
        shows = owner.get(ref)
        main = n == 1
        view = product.model_copy(update={
            "images": [ref],
            "colors": made if main or shows is None else [],
            "bbox": product.bbox if main else None,
            "recolor_mask": product.recolor_mask if main else None,
        })
        where = folder if main else f"{folder}/{PHOTO_FOLDER.format(n=n)}"
        out.append(Photo(n, ref, where, view, shows))
    return out


def photo_key_extra(photo: Photo) -> dict:
    """What a photo adds to its product's content key: nothing for photo 1 of a product without variant
    photos (its key is the one a single-photo product always had)."""
    extra: dict = {}
    if photo.position != 1:
        extra["photo"] = photo.position
    if photo.shows:
        extra["shows"] = photo.shows
    return extra


def tag_records(records: list[OutputRecord], photo: Photo) -> list[OutputRecord]:
    for rec in records:
        rec.photo, rec.shows_variant = photo.position, photo.shows
    return records


def merge_results(product: Product, photos: list[Photo], results: list[ProductResult]) -> ProductResult:
    """One result for ``product`` from its photos' results (same order): every output, main photo
    first, numbered in listing order per preset across the photos; the worst status; photo 1's
    key, image hash and preview (the product's key is the photos' keys together)."""
    main = results[0]
    outputs = []
    for photo, result in zip(photos, results, strict=True):
        outputs += tag_records([o.model_copy() for o in result.outputs], photo)
    _renumber(outputs)
    summary = [
        PhotoResult(photo=ph.position, image=ph.ref, folder=ph.folder, status=r.status, error=r.error,
                    key=r.key, image_sha256=r.image_sha256, source_preview=r.source_preview,
                    shows_variant=ph.shows)
        for ph, r in zip(photos, results, strict=True)
    ]
    if len(results) == 1:
        return main.model_copy(update={"outputs": outputs, "photos": summary,
                                       "variants": _variants(product, photos, outputs)})
    statuses = [r.status for r in results]
    errors = [f"photo {ph.position} ({ph.ref}): {r.error}" for ph, r in zip(photos, results, strict=True)
              if r.error]
    keys = [r.key for r in results]
    return main.model_copy(update={
        "status": _worst(statuses),
        "error": "; ".join(errors) or None,
        "outputs": outputs,
        "notes": _notes(photos, [r.notes for r in results]),
        "review_reasons": _prefixed(photos, [r.review_reasons for r in results]),
        "key": hashlib.sha256("|".join(keys).encode()).hexdigest() if all(keys) else None,
        "source_image": photos[0].ref,
        "photos": summary,
        "variants": _variants(product, photos, outputs),
        "sku": product.sku, "source_file": product.source_file, "source_line": product.source_line,
    })


def _worst(statuses: list[str]) -> str:
    for status in ("invalid", "failed", "needs_review"):
        if status in statuses:
            return status
    return "skipped" if all(s == "skipped" for s in statuses) else "done"


def _prefixed(photos: list[Photo], texts: list[list[str]]) -> list[str]:
    """Photo 1's lines as they are, the other photos' lines prefixed with "photo n: "."""
    out = list(texts[0])
    for photo, lines in zip(photos[1:], texts[1:], strict=True):
        out += [f"photo {photo.position}: {line}" for line in lines]
    return out


def _notes(photos: list[Photo], texts: list[list[str]]) -> list[str]:
    """A line every photo has once (the run's backends, say), then each photo's own lines prefixed
    with "photo n: " (photo 1 included: "unchanged since the last run" may hold for one photo only)."""
    common = [line for line in dict.fromkeys(texts[0]) if all(line in t for t in texts[1:])]
    out = list(common)
    for photo, lines in zip(photos, texts, strict=True):
        out += [f"photo {photo.position}: {line}" for line in lines if line not in common]
    return out


def _renumber(outputs: list[OutputRecord]) -> None:
    """``position`` in the product's listing per preset: photo 1's images first (in their own listing
    order), then photo 2's, ..."""
    count: dict[str, int] = {}
    for rec in sorted(outputs, key=lambda o: (o.photo, o.position or 0)):
        if rec.preset is not None and rec.position is not None:
            count[rec.preset] = count.get(rec.preset, 0) + 1
            rec.position = count[rec.preset]


def _variants(product: Product, photos: list[Photo], outputs: list[OutputRecord]) -> list[VariantResult]:
    shown = {ph.shows: ph.position for ph in photos if ph.shows}
    out = []
    for color in product.colors:
        base = {"name": color.name, "slug": color.slug, "hex": color.hex}
        if color.slug in shown:
            out.append(VariantResult(**base, made="photographed", photos=[shown[color.slug]]))
            continue
        made = sorted({o.photo for o in outputs if o.variant == color.slug})
        out.append(VariantResult(**base, made="recolored" if made else "none", photos=made))
    return out


def made_by_run(storage: Storage, product: Product, run_id: str) -> ProductResult | None:
    """``product``'s result when run ``run_id`` finished every one of its photos (each ``.done.json``
    names the run), else None: what an attempt of a shard finished before it was lost still counts
    when every later attempt failed. Whether its files are all there is checked by the next run."""
    photos = photos_of(product, safe_dirname(product.sku))
    results = []
    for photo in photos:
        result = load_previous_result(storage, f"{photo.folder}/.done.json", [])
        if result is None or result.run_id != run_id:
            return None
        results.append(result)
    return merge_results(product, photos, results)
