"""Listing order and checking files from disk."""

from __future__ import annotations

from pathlib import Path

from packshot.errors import PackshotError
from packshot.schemas.presets import Preset, get_preset
from packshot.types import Rendered
from stages.export.validate import Violation, check


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
    """Check files from disk (no matte: the product region is estimated, see :mod:`validate`)."""
    preset = get_preset(preset_name, extra_file)
    report: dict[Path, list[Violation]] = {}
    for path in paths:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            report[path] = [Violation(rule="readable", message=f"cannot read {path}: {exc.strerror or exc}")]
            continue
        report[path] = check(data, preset)
    return report
