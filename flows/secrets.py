"""Prefect Secret blocks as packshot's secret store: registered when the flows are imported, so a
provider key named by ``PACKSHOT_VIDEO__RUNWAY_SECRET_BLOCK`` (...) is read from Prefect."""

from __future__ import annotations

from packshot import secrets
from packshot.errors import ConfigError


def load_prefect_secret(block_name: str, setting: str) -> str:
    from prefect.blocks.system import Secret

    try:
        secret = Secret.load(block_name)
    except Exception as exc:  # Prefect raises ValueError or HTTP errors; their text never holds the value
        raise ConfigError(
            f"could not load the Prefect Secret block '{block_name}' ({setting}): {type(exc).__name__}. "
            f"Create it with `prefect block create secret` or set the environment variable instead"
        ) from None
    value = secret.get()
    return str(value).strip() if value is not None else ""


secrets.set_block_reader(load_prefect_secret)
