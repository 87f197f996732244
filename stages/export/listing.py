"""Listing order and checking files from disk."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from packshot.errors import PackshotError
from packshot.schemas.presets import Preset, get_preset
from packshot.types import Cutout, Rendered
from stages.export.validate import Violation, check

MANIFEST_DEPTH = 3  # a run's packshot lies at <run>/<SKU>/[<variant>/]packshot-<preset>.<ext>


class ListingOrderError(PackshotError):
    """A listing cannot start with a permitted image (e.g. Etsy with only generated scenes)."""


def order_for_listing(items: list[Rendered], preset: Preset) -> list[Rendered]:
    """Listing order: real packshots first (original color before variants), then other real
    images, then generated ones. Raises :class:`ListingOrderError` when the preset wants a
    non-generated first image (Etsy) and every image is generated."""

    def key(item: Rendered) -> tuple:
        return (item.generated, item.kind != "packshot", item.variant is not None, item.variant or "",
                item.scene if item.scene is not None else -1)

    ordered = sorted(items, key=key)
    if preset.first_image_real and ordered and ordered[0].generated:
        raise ListingOrderError(
            f"{preset.name}: the first listing image must be a real photo or a cutout packshot, but every "
            f"image is generated; add '{preset.name}' to the run's presets so a packshot is made for it"
        )
    return ordered


def check_files(
    paths: list[Path], preset_name: str, extra_file: Path | None = None
) -> dict[Path, list[Violation]]:
    """Check files from disk. A packshot of a packshot run (its ``manifest.json`` names it, and the
    product's ``cutout.png`` is in the run) is checked with the matte the run placed in it, exactly as
    the run checked it; any other file with an estimated product region (see :mod:`validate`)."""
    preset = get_preset(preset_name, extra_file)
    report: dict[Path, list[Violation]] = {}
    for path in paths:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            report[path] = [Violation(rule="readable", message=f"cannot read {path}: {exc.strerror or exc}")]
            continue
        report[path] = check(data, preset, product_alpha=run_matte(path, preset))
    return report


def run_matte(path: Path, preset: Preset) -> np.ndarray | None:
    """``HxW uint8``: the product matte the run placed in the packshot ``path`` for ``preset``, made
    again from the product's cutout as the run made it; None when ``path`` is not such a packshot."""
    try:
        resolved = path.resolve()
    except OSError:
        return None
    for folder in list(resolved.parents)[:MANIFEST_DEPTH]:
        if (folder / "manifest.json").is_file():
            break
    else:
        return None
    cutouts = _packshot_cutouts(str(folder / "manifest.json"))
    cutout_key = cutouts.get((resolved.relative_to(folder).as_posix(), preset.name))
    if cutout_key is None:
        return None
    try:
        from PIL import Image

        with Image.open(folder / cutout_key) as img:
            rgba = np.asarray(img.convert("RGBA"))
    except (OSError, ValueError):
        return None
    from stages.export.render import compose_packshot

    return compose_packshot(Cutout(rgba, backend="run"), preset).product_alpha


@lru_cache(maxsize=4)
def _packshot_cutouts(manifest_path: str) -> dict[tuple[str, str], str]:
    """(packshot key, preset) -> the product's cutout key, for every packshot a run's manifest lists."""
    from pydantic import ValidationError

    from packshot.schemas.results import RunManifest

    try:
        manifest = RunManifest.model_validate_json(Path(manifest_path).read_bytes())
    except (OSError, ValidationError, ValueError):
        return {}
    found = {}
    for product in manifest.products:
        cutout = next((o.key for o in product.outputs if o.kind == "cutout" and o.variant is None), None)
        if cutout is None or ".." in cutout.split("/"):
            continue
        for o in product.outputs:
            if o.kind == "packshot" and o.preset:
                found[(o.key, o.preset)] = cutout
    return found
