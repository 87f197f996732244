"""API keys for paid providers: an environment variable first, then a named secret block.

Plumbing never imports Prefect: the layer that runs flows registers how a block name is read
(``flows.secrets`` registers Prefect Secret blocks). Values are returned to the caller and never
logged; ``redact`` scrubs them out of any text (error messages, provider responses) before that text
is stored or printed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from packshot.errors import ConfigError

log = logging.getLogger(__name__)

_known_secrets: set[str] = set()
_block_reader: Callable[[str, str], str] | None = None


def set_block_reader(reader: Callable[[str, str], str] | None) -> None:
    """Register how a secret block is read: ``reader(block_name, setting) -> value`` raising
    :class:`ConfigError` with advice when the block cannot be loaded."""
    global _block_reader
    _block_reader = reader


def get_secret(env_var: str, block_name: str | None = None, *, setting: str | None = None) -> str | None:
    """The secret from ``env_var``, else from the secret block ``block_name``, else None.

    ``setting`` names the packshot setting that holds ``block_name`` (for error messages).
    """
    value = os.environ.get(env_var, "").strip()
    if not value and block_name:
        value = _load_block(block_name, setting or "the secret block setting")
    if value:
        remember_secret(value)
        return value
    return None


def _load_block(block_name: str, setting: str) -> str:
    if _block_reader is None:
        raise ConfigError(
            f"{setting} names the secret block '{block_name}', but no secret store is available here "
            "(Prefect Secret blocks are read inside packshot's Prefect flows); set the environment variable"
        )
    return _block_reader(block_name, setting)


def remember_secret(value: str) -> None:
    """Register a value that ``redact`` and ``SecretRedactingFilter`` must hide."""
    if value and len(value) >= 6:
        _known_secrets.add(value)


def redact(text: str, extra: tuple[str, ...] = ()) -> str:
    """``text`` with every known secret (and each of ``extra``) replaced by ``***``."""
    for secret in sorted(_known_secrets.union(s for s in extra if s), key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    return text


class SecretRedactingFilter(logging.Filter):
    """Logging filter that rewrites records so no known secret reaches a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _known_secrets:
            return True
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
