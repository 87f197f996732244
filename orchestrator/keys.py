"""Content keys: what a product's outputs were made from, so a rerun skips unchanged products."""

from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING

from pydantic import ValidationError

from packshot.imageio import regular_file, resolve_local
from packshot.schemas.results import ProductResult
from packshot.storage import Storage
from packshot.types import Product

if TYPE_CHECKING:
    from orchestrator.context import RunContext

# Where the product came from is not what its outputs are made of; nor is a variant's own photo (it is
# a photo of its own, with its own key: orchestrator.photos).
_NOT_IN_KEY = {"source_file": True, "source_line": True, "source_ref": True, "source_version": True,
               "colors": {"__all__": {"image"}}}
PIPELINE_VERSION = "2"  # bump when output-affecting code changes so cached results are redone


def safe_dirname(sku: str) -> str:
    """A folder name for a SKU: the SKU itself when it is safe, else a slug plus a short hash."""
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", sku) and ".." not in sku:
        return sku
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", sku).strip("-.")[:60] or "sku"
    return f"{slug}-{hashlib.sha1(sku.encode()).hexdigest()[:8]}"


def product_key(product: Product, image_sha: str, ctx: RunContext, extra: dict | None = None) -> str:
    """The content key of a product's outputs made from the image with hash ``image_sha``. For one photo
    of several, ``product`` is the product seen through that photo and ``extra`` says which photo it is
    (:func:`orchestrator.photos.photo_key_extra`): the other photos are not part of its key."""
    opts = ctx.options
    brand = ctx.product_brand(product)
    presets = [ctx.presets[n].model_dump() for n in (opts.presets or ctx.settings.export.presets)]
    mask_sha = None
    if product.recolor_mask:
        mask_path = resolve_local(product.recolor_mask, ctx.base_dir)
        regular_file(product.recolor_mask, mask_path, "recolor mask")  # never open a FIFO
        mask_sha = hashlib.sha256(mask_path.read_bytes()).hexdigest()
    payload = {
        "v": PIPELINE_VERSION,
        "image": image_sha,
        "row": product.model_dump(exclude=_NOT_IN_KEY),
        "mask": mask_sha,
        "brand": brand.model_dump() if brand is not None else None,
        "stages": sorted(opts.stages),
        "presets": presets,
        "models": ctx.identity(),
        "settings": ctx.settings.segment.model_dump_json() + ctx.settings.generative.model_dump_json(),
        **(extra or {}),
        "recolor": ctx.settings.recolor.model_dump() if product.colors else None,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def load_previous_result(storage: Storage, done_key: str, notes: list[str]) -> ProductResult | None:
    """The product's last result from its ``.done.json``, or None when there is none. A damaged file
    (truncated, empty, garbage, from an older schema) counts as absent: the product is redone, and a
    note saying so is added to ``notes`` (once)."""
    if not storage.exists(done_key):
        return None
    try:
        return ProductResult.model_validate_json(storage.read_bytes(done_key))
    except (ValidationError, ValueError, UnicodeDecodeError, OSError) as exc:
        reason = str(exc).splitlines()[0][:120]
        note = f"{done_key} was damaged ({type(exc).__name__}: {reason}); the product was made again"
        if note not in notes:
            notes.append(note)
        return None
