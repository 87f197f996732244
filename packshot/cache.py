"""Content-addressed cache of the expensive stage results: cutouts and generated images.

Keys are sha256 digests of everything a result depends on (see :func:`content_key`):

- cutout: the source image's sha256, the product box, the segment settings and the segmenter's identity;
- fill (stages ``background`` / ``scenes``): the generator's input image and mask, the prompt, the seed,
  the brand's LoRA, the generative settings and the generator's model identity (id@revision).

A new brand style therefore regenerates backgrounds and scenes but reuses the cutout; a new photo redoes
everything for that product. Classic backdrops are not cached: drawing one costs less than reading it.

Entries live in the run's own storage under ``.cache/<stage>/`` (local folder or S3, shared by every
worker that writes to it) as PNG files at zlib level 1 (lossless, a few tens of ms for 4 MP, far below
the seconds a model takes) with a JSON ``meta`` text chunk holding the notes and a CRC-32 of the pixels.
A cutout entry reuses the PNG the run delivers as ``cutout.png`` (already encoded: the entry costs one
write) with its meta in a ``.json`` beside it. A damaged entry (empty, truncated, corrupted, foreign) is
treated as absent with a note, never a failure, and the recomputed result overwrites it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from packshot.storage import Storage
from packshot.types import Cutout

log = logging.getLogger(__name__)

CACHE_VERSION = "2"  # bump when a cached stage's output format or meaning changes
PNG_LEVEL = 1  # zlib level: lossless either way; level 1 costs a fraction of level 6


def content_key(stage: str, **parts: Any) -> str:
    """sha256 over the stage name and ``parts`` (JSON, sorted keys; pydantic models via ``default=str``)."""
    payload = json.dumps({"stage": stage, "v": CACHE_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def array_sha(array: np.ndarray) -> str:
    """sha256 of an array's shape, dtype and bytes."""
    h = hashlib.sha256(f"{array.shape}{array.dtype}".encode())
    h.update(np.ascontiguousarray(array).data)
    return h.hexdigest()


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0


class StageCache:
    """Get and put cutouts (``HxWx4 uint8``) and generated images (``HxWx3 uint8``) by content key.

    With ``record_events``, ``events`` lists ``(stage, hit)`` per lookup since the last :meth:`drain`
    (pool workers send them to the parent, which adds them to its own ``stats``).
    """

    def __init__(self, storage: Storage, prefix: str = ".cache", record_events: bool = False):
        self.storage, self.prefix, self.record_events = storage, prefix, record_events
        self.stats: dict[str, CacheStats] = {}
        self.events: list[tuple[str, bool]] = []

    def _path(self, stage: str, key: str) -> str:
        return f"{self.prefix}/{stage}/{key[:2]}/{key}.png"

    def count(self, stage: str, hit: bool) -> None:
        stats = self.stats.setdefault(stage, CacheStats())
        if hit:
            stats.hits += 1
        else:
            stats.misses += 1
        if self.record_events:
            self.events.append((stage, hit))

    def drain(self) -> list[tuple[str, bool]]:
        events, self.events = self.events, []
        return events

    def _load(self, stage: str, key: str, mode: str, notes: list[str] | None):
        """``(pixels, meta)`` of an intact entry, else None (a damaged one adds a note to ``notes``)."""
        path = self._path(stage, key)
        try:
            if not self.storage.exists(path):
                self.count(stage, False)
                return None
            sidecar = path[:-4] + ".json"
            meta = json.loads(self.storage.read_bytes(sidecar)) if self.storage.exists(sidecar) else None
            pixels, meta = _decode(self.storage.read_bytes(path), mode, meta)
        except Exception as exc:  # empty, torn, bit-flipped or foreign: recompute and overwrite it
            log.warning("stage cache entry %s unreadable (%s); recomputing", path, exc)
            if notes is not None:
                notes.append(f"stage cache: entry {path} was damaged ({exc}); recomputed it")
            self.count(stage, False)
            return None
        self.count(stage, True)
        return pixels, meta

    def _save(self, stage: str, key: str, pixels: np.ndarray, mode: str, meta: dict) -> None:
        self.storage.write_bytes(self._path(stage, key), _encode(pixels, mode, meta), "image/png")

    def get_cutout(self, key: str, notes: list[str] | None = None) -> Cutout | None:
        got = self._load("cutout", key, "RGBA", notes)
        if got is None:
            return None
        rgba, meta = got
        return Cutout(rgba, backend=meta["backend"], notes=list(meta["notes"]),
                      confidence=meta.get("confidence"), review_reasons=list(meta.get("review_reasons", [])))

    def put_cutout(self, key: str, cutout: Cutout, png: bytes | None = None) -> None:
        """Store ``cutout``; ``png``: its RGBA PNG when already encoded (the delivered ``cutout.png``), so
        the entry costs a write and no encode (the meta then goes into a ``.json`` beside it)."""
        meta = {"backend": cutout.backend, "notes": cutout.notes, "confidence": cutout.confidence,
                "review_reasons": cutout.review_reasons}  # a cached cutout stays as doubtful as it was
        if png is None:
            self._save("cutout", key, cutout.rgba, "RGBA", meta)
            return
        rgba = np.ascontiguousarray(cutout.rgba)
        meta = {**meta, "crc32": zlib.crc32(rgba.data), "shape": list(rgba.shape)}
        self.storage.write_bytes(self._path("cutout", key)[:-4] + ".json", json.dumps(meta).encode(),
                                 "application/json")
        self.storage.write_bytes(self._path("cutout", key), png, "image/png")  # after its meta: complete

    def get_fill(self, stage: str, key: str, notes: list[str] | None = None):
        """``(rgb, notes)``: a generated image (generation size) and what the model call said, or None."""
        got = self._load(stage, key, "RGB", notes)
        return None if got is None else (got[0], list(got[1]["notes"]))

    def put_fill(self, stage: str, key: str, rgb: np.ndarray, notes: list[str]) -> None:
        self._save(stage, key, rgb, "RGB", {"notes": list(notes)})


def _encode(pixels: np.ndarray, mode: str, meta: dict) -> bytes:
    pixels = np.ascontiguousarray(pixels)
    info = PngImagePlugin.PngInfo()
    info.add_text("meta", json.dumps({**meta, "crc32": zlib.crc32(pixels.data), "shape": list(pixels.shape)}))
    buf = io.BytesIO()
    Image.fromarray(pixels, mode).save(buf, "PNG", compress_level=PNG_LEVEL, pnginfo=info)
    return buf.getvalue()


def _decode(data: bytes, mode: str, meta: dict | None = None) -> tuple[np.ndarray, dict]:
    """Pixels and meta of an entry (``meta`` from its sidecar, else from the PNG's ``meta`` chunk);
    raises on anything short of an intact entry of this ``mode``."""
    if not data:
        raise ValueError("empty file")
    with Image.open(io.BytesIO(data)) as img:
        if img.mode != mode:
            raise ValueError(f"mode {img.mode}, expected {mode}")
        img.load()
        meta = meta if meta is not None else json.loads(img.text["meta"])
        pixels = np.asarray(img)
    if list(pixels.shape) != meta["shape"] or zlib.crc32(np.ascontiguousarray(pixels).data) != meta["crc32"]:
        raise ValueError("pixels do not match their checksum")
    return pixels, meta
