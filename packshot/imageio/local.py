"""Catalog-relative files: one path jail for every local file a catalog names.

Hostile files are refused with a message, never a hang or a traceback: a FIFO or device is never
opened for reading (it could block forever), a folder is named as a folder, and a path longer than
the file system allows is named as such.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from packshot.errors import ImageLoadError


def resolve_local(ref: str, base_dir: Path) -> Path:
    """The real path of the catalog-relative file ``ref``; :class:`ImageLoadError` when it (or a
    symlink on the way) points outside ``base_dir``. Every local file a catalog names goes through here."""
    base = Path(base_dir).resolve()
    candidate = Path(ref).expanduser() if ref.startswith("~") else Path(ref)
    try:
        resolved = (base / candidate).resolve()  # follows symlinks, so a link to /etc is seen as /etc
    except OSError as exc:  # a symlink loop, a name over the file system's limit ...
        raise ImageLoadError(f"{_short(ref)}: cannot resolve the path ({_reason(exc)}).") from exc
    except RuntimeError as exc:  # Python < 3.13 reports symlink loops this way
        raise ImageLoadError(f"{_short(ref)}: cannot resolve the path (symlink loop).") from exc
    if not resolved.is_relative_to(base):
        raise ImageLoadError(
            f"{ref!r}: refused, it points outside the catalog folder {base} (resolved to {resolved}). "
            "Copy the file into the catalog folder and reference it relative to it."
        )
    return resolved


def regular_file(ref: str, path: Path, what: str = "Image") -> os.stat_result:
    """``stat`` of ``path`` when it is a regular file; :class:`ImageLoadError` saying what it is
    instead (missing, a folder, a FIFO or device, a name too long). Never opens the file."""
    try:
        info = os.stat(path)
    except FileNotFoundError as exc:
        raise ImageLoadError(f"{what} {_short(ref)}: file not found, it does not exist (looked for "
                             f"{_short(str(path))}); check the path and its case (paths are relative to "
                             "the catalog's folder).") from exc
    except OSError as exc:
        raise ImageLoadError(f"{what} {_short(ref)}: cannot read it ({_reason(exc)}).") from exc
    if stat.S_ISDIR(info.st_mode):
        raise ImageLoadError(f"{what} {_short(ref)}: {path} is a folder, not an image file.")
    if not stat.S_ISREG(info.st_mode):
        raise ImageLoadError(
            f"{what} {_short(ref)}: {path} is not a regular file (a pipe, socket or device); "
            "reference the image file itself."
        )
    return info


def read_regular_file(ref: str, path: Path, what: str = "Image", *, nofollow: bool = True) -> bytes:
    """The bytes of ``path``, opened without blocking (a FIFO swapped in after the ``stat`` cannot
    hang the read) and checked again on the open descriptor."""
    regular_file(ref, path, what)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | (getattr(os, "O_NOFOLLOW", 0) if nofollow else 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise ImageLoadError(
            f"{what} {_short(ref)}: cannot open {path} ({_reason(exc)}); check permissions."
        ) from exc
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise ImageLoadError(f"{what} {_short(ref)}: {path} is not a regular file; reference the image.")
        try:
            return fh.read()
        except OSError as exc:
            raise ImageLoadError(f"{what} {_short(ref)}: cannot read {path} ({_reason(exc)}).") from exc


def read_local(ref: str, base_dir: Path) -> bytes:
    """The bytes of the catalog-relative file ``ref`` (see :func:`resolve_local`).

    O_NOFOLLOW: the last component cannot be swapped for a symlink after the check."""
    return read_regular_file(ref, resolve_local(ref, base_dir))


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENAMETOOLONG:
        return "the path is longer than the file system allows; shorten the file or folder names"
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    return exc.strerror or str(exc)


def _short(text: str, limit: int = 120) -> str:
    """A reference for a message: quoted, and cut in the middle when very long."""
    return repr(text if len(text) <= limit else f"{text[:60]}…{text[-40:]}")
