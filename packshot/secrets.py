"""API keys for paid providers: an environment variable first, then a Prefect Secret block.

Prefect is imported lazily and only when a block name is configured, so stages and tests run
without it. Values are returned to the caller and never logged; ``redact`` scrubs them out of any
text (error messages, provider responses) before that text is stored or printed.
"""

from __future__ import annotations

import logging
import os

from packshot.errors import ConfigError

log = logging.getLogger(__name__)

_known_secrets: set[str] = set()


def get_secret(env_var: str, block_name: str | None = None, *, setting: str | None = None) -> str | None:
    """The secret from ``env_var``, else from the Prefect Secret block ``block_name``, else None.

    ``setting`` names the packshot setting that holds ``block_name`` (for error messages).
    """
    value = os.environ.get(env_var, "").strip()
    if not value and block_name:
        value = _load_prefect_secret(block_name, setting or "the secret block setting")
    if value:
        remember_secret(value)
        return value
    return None


def _load_prefect_secret(block_name: str, setting: str) -> str:
    try:
        from prefect.blocks.system import Secret
    except ImportError as exc:
        raise ConfigError(
            f"{setting} names the Prefect Secret block '{block_name}' but Prefect is not installed; "
            "install prefect or set the environment variable instead"
        ) from exc
    try:
        secret = Secret.load(block_name)
    except Exception as exc:  # Prefect raises ValueError or HTTP errors; their text never holds the value
        raise ConfigError(
            f"could not load the Prefect Secret block '{block_name}' ({setting}): {type(exc).__name__}. "
            f"Create it with `prefect block create secret` or set the environment variable instead"
        ) from None
    value = secret.get()
    return str(value).strip() if value is not None else ""


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
