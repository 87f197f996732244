"""Marketplace presets: compose white-background packshots, encode files, validate them.

``compose_packshot(cutout, preset)`` -> :class:`Rendered`; ``encode(rendered, preset)`` -> bytes (sRGB
profile, provenance XMP for generated images, within the byte limit); ``check(data, preset,
product_alpha, generated)`` -> list of rule violations (empty when the file passes);
``order_for_listing(items, preset)`` puts real packshots first; ``check_files`` checks files on disk.
"""

from packshot.schemas.presets import Preset, get_preset, load_presets
from packshot.schemas.provenance import provenance_xmp
from stages.export.listing import ListingOrderError, check_files, order_for_listing
from stages.export.render import compose_packshot, encode, encode_checked
from stages.export.validate import Violation, check, estimate_product

__all__ = [
    "Preset", "get_preset", "load_presets", "compose_packshot", "encode", "encode_checked", "provenance_xmp",
    "check",
    "Violation", "estimate_product", "order_for_listing", "check_files", "ListingOrderError",
]
