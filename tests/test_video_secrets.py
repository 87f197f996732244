"""API keys never reach logs, ledgers, results or errors; they come from env vars or Prefect blocks."""

from __future__ import annotations

import logging

import pytest

import flows.secrets  # noqa: F401  (Prefect Secret blocks as the secret store)
from packshot import secrets
from packshot.errors import ConfigError
from stages.video import ClipRequest, render_clips
from stages.video.ledger import LEDGER_NAME
from tests.fakes.clips import OPENAI_KEY, RUNWAY_KEY, MemoryStore, fast_settings, product_image
from tests.fakes.openai_videos import FakeOpenAIVideos
from tests.fakes.runway import FakeRunway


@pytest.fixture
def fakes(monkeypatch):
    runway, openai = FakeRunway(RUNWAY_KEY).start(), FakeOpenAIVideos(OPENAI_KEY).start()
    monkeypatch.setenv("RUNWAYML_API_SECRET", RUNWAY_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    yield runway, openai
    runway.stop()
    openai.stop()


def test_keys_never_appear_in_logs_ledger_or_results(fakes, tmp_path, caplog, capfd):
    runway, openai = fakes
    caplog.set_level(logging.DEBUG)  # every logger, SDKs and httpx included
    runway.fail_next("create", 429)
    openai.fail_next("retrieve", 500)
    runway.outcomes["FLAGGED"] = "safety"
    settings = fast_settings(
        provider="runway", runway_base_url=runway.base_url, openai_base_url=f"{openai.base_url}/v1"
    )
    items = [
        ClipRequest("R-OK", product_image(1), "Tote"),
        ClipRequest("R-BAD", product_image(2), "FLAGGED tote"),
        ClipRequest("S-OK", product_image(3), "Tote", provider="sora"),
    ]
    results = render_clips(items, settings, tmp_path / "ok", MemoryStore())
    assert [r.status for r in results] == ["succeeded", "rejected", "succeeded"]

    # Both fakes now expect other keys and echo the key they were given in their 401 answers.
    runway.api_key, openai.api_key = "rotated-runway-key", "rotated-openai-key"
    refused = render_clips(items, settings, tmp_path / "refused", MemoryStore())
    assert [r.error_code for r in refused] == ["HTTP_401", "HTTP_401", "HTTP_401"]
    assert "RUNWAYML_API_SECRET" in refused[0].error and "OPENAI_API_KEY" in refused[2].error

    out, err = capfd.readouterr()
    texts = {
        "logs": caplog.text,
        "stdout": out,
        "stderr": err,
        "ledgers": (tmp_path / "ok" / LEDGER_NAME).read_text()
        + (tmp_path / "refused" / LEDGER_NAME).read_text(),
        "results": "".join(r.model_dump_json() for r in results + refused),
    }
    assert "Bearer" not in caplog.text
    for where, text in texts.items():
        for key in (RUNWAY_KEY, OPENAI_KEY):
            assert key not in text, f"an API key leaked into {where}"
            assert key[-8:] not in text, f"part of an API key leaked into {where}"


def test_a_missing_key_fails_the_clips_with_what_to_set(monkeypatch, tmp_path):
    monkeypatch.delenv("RUNWAYML_API_SECRET", raising=False)
    results = render_clips(
        [ClipRequest("A", product_image(0))], fast_settings(provider="runway"), tmp_path, MemoryStore()
    )
    assert results[0].status == "failed" and results[0].error_code == "NO_API_KEY"
    assert "RUNWAYML_API_SECRET" in results[0].error and "RUNWAY_SECRET_BLOCK" in results[0].error


def test_env_var_wins_and_the_prefect_block_is_read_only_when_needed(monkeypatch):
    from prefect.blocks.system import Secret

    loaded = []

    class FakeSecret:
        def get(self):
            return "block-value-1234567"

    def fake_load(name, *args, **kwargs):
        loaded.append(name)
        if name != "runway-key":
            raise ValueError(f"Unable to find block document named {name}")
        return FakeSecret()

    monkeypatch.setattr(Secret, "load", fake_load)
    monkeypatch.setenv("RUNWAYML_API_SECRET", "env-value-7654321")
    assert secrets.get_secret("RUNWAYML_API_SECRET", "runway-key") == "env-value-7654321"
    assert loaded == []

    monkeypatch.delenv("RUNWAYML_API_SECRET")
    assert secrets.get_secret("RUNWAYML_API_SECRET", "runway-key") == "block-value-1234567"
    assert secrets.get_secret("RUNWAYML_API_SECRET", None) is None
    with pytest.raises(ConfigError, match="video.runway_secret_block") as info:
        secrets.get_secret("RUNWAYML_API_SECRET", "missing-block", setting="video.runway_secret_block")
    assert "prefect block create secret" in str(info.value)


def test_redaction_filter_scrubs_known_secrets_from_any_log_record(caplog):
    secrets.remember_secret("sk-live-abcdef123456")
    logger = logging.getLogger("test.video.redaction")
    logger.addFilter(secrets.SecretRedactingFilter())
    with caplog.at_level(logging.INFO, logger="test.video.redaction"):
        logger.info("calling with %s", "sk-live-abcdef123456")
    assert "sk-live-abcdef123456" not in caplog.text and "calling with ***" in caplog.text
    assert secrets.redact("key=sk-live-abcdef123456;") == "key=***;"
