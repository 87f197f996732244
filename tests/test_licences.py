"""Model licences: declared per backend, shown by the run, ``packshot plan`` and the manifest, and
enforced at the start of a commercial run."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from orchestrator.licences import check_licences, run_models
from orchestrator.settings import Settings, get_settings
from packshot.licences import LicenceError, LicenceSettings
from stages.background.generators import BACKENDS as GENERATORS
from stages.segment import BACKENDS as SEGMENTERS
from stages.video.providers import PROVIDERS
from tests.studio import write_catalog

STAGES = ["segment", "background", "lifestyle", "recolor", "export"]


def flat(text: str) -> str:
    """Terminal output with its line wrapping undone (assertions read meaning, not layout)."""
    return re.sub(r"\s+", " ", text)


def flux_settings(**licences) -> Settings:
    return Settings(generative={"backend": "auto", "flux_model": "/models/flux-fill"},
                    segment={"backend": "classic"}, licences=LicenceSettings(**licences))


def test_every_backend_of_every_stage_declares_a_licence():
    for table in (SEGMENTERS, GENERATORS, PROVIDERS):
        for name in table.names():
            spec = table.spec(name)
            settings = Settings()
            group = {"segment": settings.segment, "background": settings.generative,
                     "video": settings.video}[table.stage]
            licence = spec.licence_of(group)
            assert licence.title and licence.commercial in {"allowed", "agreement", "service", "none"}
    assert GENERATORS.spec("flux").licence_of(Settings().generative).commercial == "agreement"
    assert GENERATORS.spec("flux2-klein").licence_of(Settings().generative).commercial == "allowed"


def test_a_commercial_run_with_flux_dev_and_no_declared_licence_is_refused_with_one_line():
    with pytest.raises(LicenceError) as refused:
        check_licences(flux_settings(), STAGES)
    message = str(refused.value)
    assert "\n" not in message
    assert "'flux'" in message and "FLUX.1 [dev] Non-Commercial License" in message
    assert "PACKSHOT_LICENCES__HELD" in message and "PACKSHOT_GENERATIVE__BACKEND" in message
    # declared agreement, or a non-commercial deployment: allowed
    held = check_licences(flux_settings(held=["flux-1-dev"]), STAGES)
    assert [m.backend for m in held] == ["classic", "flux"]
    check_licences(flux_settings(use="non-commercial"), STAGES)
    # a segment-only run loads no generator, so FLUX's licence does not matter
    check_licences(flux_settings(), ["segment", "export"])


def test_local_video_model_licence_follows_the_model():
    wan = Settings(video={"provider": "local", "local_model": "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",
                          "local_pipeline": "WanImageToVideoPipeline"}, segment={"backend": "classic"})
    ltx = Settings(video={"provider": "local", "local_model": "Lightricks/LTX-Video"},
                   segment={"backend": "classic"})
    assert run_models(wan, ["segment", "video"])[-1].licence.key == "apache-2.0"
    assert run_models(ltx, ["segment", "video"])[-1].licence.key == "ltxv-open-weights"
    with pytest.raises(LicenceError, match="LTX-Video"):
        check_licences(ltx, ["segment", "video"])


def test_packshot_run_stops_before_any_work_naming_model_licence_and_setting(tmp_path, monkeypatch):
    from cli.main import app

    monkeypatch.setenv("COLUMNS", "60")
    monkeypatch.setenv("PACKSHOT_SEGMENT__BACKEND", "classic")
    monkeypatch.setenv("PACKSHOT_GENERATIVE__BACKEND", "flux")
    monkeypatch.setenv("PACKSHOT_GENERATIVE__FLUX_MODEL", str(tmp_path / "flux-fill"))
    catalog = write_catalog(tmp_path / "cat", [{"sku": "A-1"}])
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(catalog), "--out", str(out)])
    assert result.exit_code == 2, result.output
    text = flat(result.output)
    assert "FLUX.1 [dev] Non-Commercial License" in text and "PACKSHOT_LICENCES__HELD" in text
    assert "Traceback" not in result.output and not out.exists()  # nothing was processed or written


def test_packshot_plan_lists_each_model_licence_and_flags_a_refused_one(monkeypatch):
    from cli.main import app

    monkeypatch.setenv("PACKSHOT_SEGMENT__BACKEND", "classic")
    monkeypatch.setenv("PACKSHOT_GENERATIVE__FLUX_MODEL", "/m/flux")
    refused = CliRunner().invoke(app, ["plan", "--gpu-memory", "80"])
    text = flat(refused.output)
    assert refused.exit_code == 1 and "background:flux: FLUX.1 [dev] Non-Commercial License" in text
    assert "refused for this deployment" in text
    monkeypatch.setenv("PACKSHOT_GENERATIVE__KLEIN_MODEL", "/m/klein")
    get_settings.cache_clear()
    clean = CliRunner().invoke(app, ["plan", "--gpu-memory", "24"])
    text = flat(clean.output)
    assert clean.exit_code == 0, clean.output
    assert "background:flux2-klein: Apache-2.0: commercial use allowed" in text
    assert "FLUX.2 [klein] 4B" in text and "image phase: plan full" in text  # fits a 24 GiB card whole
