"""Shared fixtures. Prefect runs against its real ephemeral API in a throwaway PREFECT_HOME,
one harness per test session (the first start runs database migrations, ~20 s)."""

from __future__ import annotations

import os
import tempfile

_prefect_home = tempfile.mkdtemp(prefix="packshot-prefect-")
os.environ.setdefault("PREFECT_HOME", _prefect_home)
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# colour-science (used by the recolor tests) puts a spec-less mock into sys.modules["matplotlib"]
# when matplotlib is absent; diffusers and transformers probe optional packages with find_spec and
# fail on it. Importing them first, before any test imports colour, keeps the order irrelevant.
import diffusers  # noqa: E402,F401
import pytest  # noqa: E402
import transformers  # noqa: E402,F401


@pytest.fixture(scope="session")
def prefect_api():
    """Prefect's real API for the session (ephemeral SQLite server in a temp home)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch):
    """Settings are cached per process; tests that change PACKSHOT_* env vars get a fresh read."""
    from orchestrator import clear_contexts, settings

    settings.get_settings.cache_clear()
    clear_contexts()
    yield
    settings.get_settings.cache_clear()
    clear_contexts()


@pytest.fixture(autouse=True)
def _log_streams_stay_open():
    """A `packshot run` under CliRunner lets Prefect (re)build its console log handler on CliRunner's
    stderr, which is closed once that test ends; later tests that log at INFO would then fail inside
    logging. Point such handlers back at this process's stderr (a real command's stderr stays open)."""
    import logging
    import sys

    yield
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in logging.root.manager.loggerDict)]
    for handler in {h for lg in loggers for h in getattr(lg, "handlers", [])}:
        stream = getattr(handler, "stream", None)
        if stream is not None and getattr(stream, "closed", False):
            handler.stream = sys.stderr  # not setStream: it would flush the closed stream first
            if getattr(handler, "console", None) is not None:
                handler.console.file = sys.stderr
