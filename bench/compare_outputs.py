"""Compare two output folders of the same catalog file by file (before/after a change).

    .venv/bin/python bench/compare_outputs.py OUT_BEFORE OUT_AFTER

For every image (``.cache`` excluded): present in both? Same bytes once the embedded sRGB profile's
creation date is ignored (LittleCMS stamps the time a profile is made, so files from two processes
differ in those 12 bytes only)? If not, same decoded pixels? Also the marketplace checks each
product's ``.done.json`` recorded, and a full-decode check of every file from disk (estimated product
region), for both folders.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

IMAGE_SUFFIXES = {".jpg", ".png", ".webp"}


def normalized_sha(data: bytes) -> str:
    """sha256 with the ICC header's date field (profile bytes 24-35) zeroed."""
    buf = bytearray(data)
    for marker in (b"ICC_PROFILE\x00", b"iCCP"):
        at = buf.find(marker)
        if at >= 0 and marker == b"ICC_PROFILE\x00":
            start = at + len(marker) + 2  # sequence number and count
            buf[start + 24 : start + 36] = bytes(12)
    return hashlib.sha256(bytes(buf)).hexdigest()


def images(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in root.rglob("*")
            if p.suffix in IMAGE_SUFFIXES and ".cache" not in p.parts}


def recorded_checks(root: Path) -> dict[str, list[str]]:
    out = {}
    for done in root.glob("*/.done.json"):
        for rec in json.loads(done.read_text())["outputs"]:
            out[rec["key"]] = rec.get("checks") or []
    return out


def disk_checks(files: dict[str, Path]) -> int:
    from stages.export import check, get_preset

    failing = 0
    for path in files.values():
        name = path.stem.split("-", 1)[1] if "-" in path.stem else None
        if name is None:
            continue
        try:
            preset = get_preset(name)
        except Exception:
            continue
        failing += bool(check(path.read_bytes(), preset))
    return failing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args()
    a, b = images(args.before), images(args.after)
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    same, same_pixels, differ = [], [], []
    for rel in sorted(set(a) & set(b)):
        da, db = a[rel].read_bytes(), b[rel].read_bytes()
        if normalized_sha(da) == normalized_sha(db):
            same.append(rel)
        elif np.array_equal(np.asarray(Image.open(a[rel]).convert("RGB")),
                            np.asarray(Image.open(b[rel]).convert("RGB"))):
            same_pixels.append(rel)
        else:
            differ.append(rel)
    print(f"files: before {len(a)}, after {len(b)}; only before {len(only_a)}, only after {len(only_b)}")
    print(f"identical bytes (profile date aside) {len(same)}, same pixels other bytes {len(same_pixels)}, "
          f"different pixels {len(differ)}")
    for label, names in (("only before", only_a), ("only after", only_b), ("same pixels, other bytes",
                         same_pixels), ("different pixels", differ)):
        for rel in names:
            print(f"  {label}: {rel}")
    for label, root, files in (("before", args.before, a), ("after", args.after, b)):
        checks = recorded_checks(root)
        failing = sum(bool(v) for v in checks.values())
        print(f"{label}: {failing} of {len(checks)} files with recorded check failures; "
              f"{disk_checks(files)} of {len(files)} fail a full-decode check from disk")


if __name__ == "__main__":
    main()
