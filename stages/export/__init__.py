"""Marketplace presets: compose white-background packshots, encode files, validate them.

``compose_packshot(cutout, preset)`` -> :class:`Rendered`; ``encode(rendered, preset)`` -> bytes;
``check(data, preset, product_alpha)`` -> list of rule violations (empty when the file passes).
"""

from stages.export.presets import Preset, get_preset, load_presets
from stages.export.render import compose_packshot, encode
from stages.export.validate import Violation, check

__all__ = ["Preset", "get_preset", "load_presets", "compose_packshot", "encode", "check", "Violation"]
