"""Prefect flows, tasks and deployments: thin wiring around :mod:`orchestrator`."""

from flows import secrets as _secrets  # noqa: F401  (registers Prefect Secret blocks as the secret store)
