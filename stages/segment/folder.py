"""Cut out a folder of images outside any catalog (``packshot segment IMAGES_DIR --out DIR``).

One RGBA PNG per input, named after the input's stem, written atomically (temp file + rename) so
an interrupted job never leaves a half-written cutout. A bad file is reported and skipped; the
rest of the folder still gets done.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image

from packshot.config import LoadSettings
from packshot.errors import ImageLoadError, PackshotError
from packshot.imageio import decode_image
from packshot.storage import atomic_file
from stages.segment import get_segmenter
from stages.segment.settings import SegmentSettings

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".avif", ".heic"}


def list_images(images_dir: Path) -> list[Path]:
    """Image files directly inside ``images_dir``, sorted by name (hidden files skipped)."""
    if not images_dir.is_dir():
        raise ImageLoadError(f"{images_dir} is not a folder: pass the folder that holds the product photos.")
    return sorted(p for p in images_dir.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def write_png_atomic(rgba: np.ndarray, path: Path) -> None:
    """Write ``rgba`` (HxWx4 uint8) to ``path`` through a temp file in the same folder."""
    with atomic_file(path) as fh:
        Image.fromarray(rgba, "RGBA").save(fh, format="PNG")


def segment_folder(
    images_dir: Path,
    out_dir: Path,
    settings: SegmentSettings,
    device: str = "cpu",
    load: LoadSettings | None = None,
) -> list[tuple[str, str | None]]:
    """Cut out every image of ``images_dir`` into ``out_dir/<stem>.png``.

    Returns (input file name, error message or None) per input, in name order. The backend (and its
    model) is created once for the whole folder; ``load`` bounds decoding (size, pixel count).
    """
    images_dir, out_dir = Path(images_dir), Path(out_dir)
    load = load or LoadSettings()
    files = list_images(images_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    segmenter = get_segmenter(settings, device)
    results: list[tuple[str, str | None]] = []
    taken: dict[str, str] = {}
    for path in files:
        name = path.name
        if path.stem in taken:
            results.append((name, f"{path.stem}.png is already the cutout of {taken[path.stem]}; rename one"))
            continue
        taken[path.stem] = name
        try:
            loaded = decode_image(path.read_bytes(), name, load)
            cutout = segmenter.segment(loaded.rgb)
            write_png_atomic(cutout.rgba, out_dir / f"{path.stem}.png")
        except PackshotError as exc:
            results.append((name, str(exc)))
            continue
        except OSError as exc:
            results.append((name, f"could not read or write it: {exc.strerror or exc}"))
            continue
        except Exception as exc:  # one odd image must not stop the folder; the message is kept
            log.exception("segmenting %s failed", name)
            results.append((name, f"segmentation failed ({type(exc).__name__}: {exc})"))
            continue
        for note in cutout.notes:
            log.info("%s: %s", name, note)
        for reason in cutout.review_reasons:  # written, but a person should look at it
            log.warning("%s needs review: %s", name, reason)
        results.append((name, None))
    return results
