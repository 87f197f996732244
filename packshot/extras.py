"""Optional dependencies (pyproject extras) and the one-line error when one is missing.

The classic path (catalog, classic cutout, studio backgrounds, export, review) needs only the core
dependencies. Learned and generative backends live in extras and are imported where they are used,
through :func:`require`, so a lean install fails with one line that names the extra to install
instead of a traceback about a module name.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

from packshot.errors import ConfigError

# extra -> what it brings (kept in step with pyproject.toml and the README)
EXTRAS = {
    "rembg": "rembg and onnxruntime: the rembg segment backend (BiRefNet, ISNet, u2net ONNX sessions)",
    "generative": "diffusers, transformers, accelerate, peft, safetensors, segment-anything: FLUX, SAM, "
                  "local image-to-video",
    "video": "runwayml, openai, av: the Runway and Sora clip providers and clip files",
    "gpu": "torchvision, torchao: the real torchvision for SAM and FP8 on NVIDIA cards",
}
# extra -> the top-level modules it installs (an ImportError naming one of them means the extra is missing)
EXTRA_MODULES = {
    "rembg": {"rembg", "onnxruntime", "pooch"},
    "generative": {"diffusers", "transformers", "accelerate", "peft", "safetensors", "segment_anything"},
    "video": {"runwayml", "openai", "av"},
    "gpu": {"torchvision", "torchao"},
}


class MissingExtraError(ConfigError):
    """A chosen backend needs an extra that is not installed; the message names the extra."""


def install_hint(extra: str) -> str:
    return f"pip install 'packshot[{extra}]'"


def missing(extra: str, purpose: str, module: str) -> MissingExtraError:
    """The error for ``purpose`` needing ``module`` from ``extra``."""
    which = f"the '{extra}' extras" if "," in extra else f"the '{extra}' extra"
    return MissingExtraError(f"{purpose} needs {which} ({module} is not installed): {install_hint(extra)}")


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming ``extra``.

    Only a missing package of that extra counts as a missing extra; any other ImportError (a broken
    install) propagates unchanged, so it is not misreported.
    """
    ours = EXTRA_MODULES.get(extra, set()) | {module.split(".")[0]}
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        name = (exc.name or "").split(".")[0]
        if name not in ours:
            raise
        raise missing(extra, purpose, name) from None


def loaded(module: str) -> ModuleType | None:
    """``module`` if this process has imported it already, else None (never imports it).

    A torch error (out of memory) can only come from a process that imported torch: checks for one
    use this, so a lean install without torch never imports it to ask.
    """
    return sys.modules.get(module)


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it; a dotted name such as ``google.genai``
    is checked whole, since another package may provide its namespace)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a meta-path hook that blocks the package, or a broken spec
        return False
