"""Errors a user can act on. The CLI prints their message without a traceback."""


class PackshotError(Exception):
    """Base class: the message says what went wrong and what to do."""


class ConfigError(PackshotError):
    """A setting is missing or wrong; the message names the setting."""


class ImageLoadError(PackshotError):
    """An image could not be loaded safely (bad path, bomb, corrupt file, blocked URL)."""


class ModelUnavailableError(PackshotError):
    """Model weights are not configured or cannot be loaded; the message names the setting."""
