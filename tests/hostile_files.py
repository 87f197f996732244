"""Hostile image files for tests: bombs, PNG chunk bombs, truncations, FIFOs, folders, symlinks.

``make_hostile(kind, folder, name)`` writes one into ``folder`` and returns the catalog reference
to it (relative to ``folder``). ``good_jpeg``/``good_png`` are small valid images.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

HOSTILE_KINDS = (
    "bomb", "ztxt-bomb", "iccp-bomb", "truncated-jpeg", "truncated-png", "empty", "garbage", "fifo",
    "folder", "symlink-out", "symlink-loop", "too-long", "missing",
)


def good_jpeg(size: tuple[int, int] = (64, 48)) -> bytes:
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def good_png(size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(buf, "PNG")
    return buf.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _with_chunk_before_idat(png: bytes, chunk: bytes) -> bytes:
    at = png.index(b"IDAT") - 4
    return png[:at] + chunk + png[at:]


def png_bomb(width: int = 60000, height: int = 60000) -> bytes:
    """A small PNG whose header declares ``width`` x ``height`` pixels (a decompression bomb)."""
    png = good_png((8, 8))
    ihdr = png.index(b"IHDR")
    body = struct.pack(">II", width, height) + png[ihdr + 12 : ihdr + 17]
    return png[: ihdr - 4] + _chunk(b"IHDR", body) + png[ihdr + 21 :]


def ztxt_bomb() -> bytes:
    """A PNG with a zTXt chunk that inflates beyond Pillow's text limit."""
    data = zlib.compress(b"a" * (PngImagePlugin.MAX_TEXT_CHUNK * 4), 9)
    return _with_chunk_before_idat(good_png(), _chunk(b"zTXt", b"Comment\x00\x00" + data))


def iccp_bomb() -> bytes:
    """A PNG with an iCCP chunk that inflates beyond Pillow's limit."""
    data = zlib.compress(b"\x00" * (PngImagePlugin.MAX_TEXT_CHUNK * 4), 9)
    return _with_chunk_before_idat(good_png(), _chunk(b"iCCP", b"icc\x00\x00" + data))


def make_hostile(kind: str, folder: Path, name: str) -> str:
    """Write a hostile file of ``kind`` as ``folder/name`` (or a reference that is hostile itself)."""
    path = folder / name
    if kind == "bomb":
        path.write_bytes(png_bomb())
    elif kind == "ztxt-bomb":
        path.write_bytes(ztxt_bomb())
    elif kind == "iccp-bomb":
        path.write_bytes(iccp_bomb())
    elif kind == "truncated-jpeg":
        data = good_jpeg((256, 256))
        path.write_bytes(data[: len(data) // 2])
    elif kind == "truncated-png":
        data = good_png((256, 256))
        path.write_bytes(data[: len(data) - 30])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(os.urandom(256))
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "symlink-out":
        outside = folder.parent / f"outside-{name}"
        outside.write_bytes(good_jpeg())
        path.symlink_to(outside)
    elif kind == "symlink-loop":
        path.symlink_to(folder / f"{name}.loop")
        (folder / f"{name}.loop").symlink_to(path)
    elif kind == "too-long":
        return "x" * 300 + ".jpg"
    elif kind == "missing":
        pass
    else:
        raise ValueError(kind)
    return name
