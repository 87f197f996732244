"""Catalog-relative files: one path jail for every local file a catalog names."""

from __future__ import annotations

import os
from pathlib import Path

from packshot.errors import ImageLoadError


def resolve_local(ref: str, base_dir: Path) -> Path:
    """The real path of the catalog-relative file ``ref``; :class:`ImageLoadError` when it (or a
    symlink on the way) points outside ``base_dir``. Every local file a catalog names goes through here."""
    base = Path(base_dir).resolve()
    candidate = Path(ref).expanduser() if ref.startswith("~") else Path(ref)
    resolved = (base / candidate).resolve()  # follows symlinks, so a link to /etc is seen as /etc
    if not resolved.is_relative_to(base):
        raise ImageLoadError(
            f"{ref!r}: refused, it points outside the catalog folder {base} (resolved to {resolved}). "
            "Copy the file into the catalog folder and reference it relative to it."
        )
    return resolved


def read_local(ref: str, base_dir: Path) -> bytes:
    """The bytes of the catalog-relative file ``ref`` (see :func:`resolve_local`)."""
    base = Path(base_dir).resolve()
    resolved = resolve_local(ref, base)
    try:
        # O_NOFOLLOW: the last component cannot be swapped for a symlink after the check above.
        fd = os.open(resolved, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError as exc:
        raise ImageLoadError(
            f"Image {ref!r}: file not found at {resolved} (paths are relative to the catalog folder {base})."
        ) from exc
    except IsADirectoryError as exc:
        raise ImageLoadError(f"Image {ref!r}: {resolved} is a folder, not an image file.") from exc
    except OSError as exc:
        raise ImageLoadError(f"Image {ref!r}: cannot open {resolved} ({exc.strerror}); check permissions.") \
            from exc
    with os.fdopen(fd, "rb") as fh:
        try:
            return fh.read()
        except IsADirectoryError as exc:
            raise ImageLoadError(f"Image {ref!r}: {resolved} is a folder, not an image file.") from exc
