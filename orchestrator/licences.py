"""Which models a run would use, with their licences, checked against the deployment's declared use
before anything loads (:mod:`packshot.licences`). ``packshot plan``, the manifest and the run report
show the same list."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.settings import Settings
from packshot.licences import Licence, check_use
from stages.background.generators import BACKENDS as GENERATORS
from stages.segment import BACKENDS as SEGMENTERS
from stages.video.providers import PROVIDERS

GENERATIVE_STAGES = {"background", "lifestyle"}


@dataclass(frozen=True)
class RunModel:
    """One backend a run uses: its stage, its name in the stage's table and its licence."""

    stage: str
    backend: str
    licence: Licence

    @property
    def label(self) -> str:
        return f"{self.stage}:{self.backend}"


def run_models(settings: Settings, stages: list[str]) -> list[RunModel]:
    """The backends ``stages`` would use under ``settings`` (``auto`` resolved; nothing loaded)."""
    chosen = []
    if "segment" in stages or GENERATIVE_STAGES & set(stages):
        spec, _ = SEGMENTERS.choose(settings.segment.backend, settings.segment)
        chosen.append(RunModel("segment", spec.name, spec.licence_of(settings.segment)))
    if GENERATIVE_STAGES & set(stages):
        spec, _ = GENERATORS.choose(settings.generative.backend, settings.generative)
        chosen.append(RunModel("background", spec.name, spec.licence_of(settings.generative)))
    if "video" in stages and settings.video.provider != "none":
        spec = PROVIDERS.spec(settings.video.provider)
        chosen.append(RunModel("video", spec.name, spec.licence_of(settings.video)))
    return chosen


def check_licences(settings: Settings, stages: list[str]) -> list[RunModel]:
    """:func:`run_models`, refusing (:class:`~packshot.licences.LicenceError`, one line) a model whose
    licence forbids the declared use (``PACKSHOT_LICENCES__USE``) unless its agreement is declared."""
    chosen = run_models(settings, stages)
    for model in chosen:
        spec_setting = {"segment": "PACKSHOT_SEGMENT__BACKEND", "background": "PACKSHOT_GENERATIVE__BACKEND",
                        "video": "PACKSHOT_VIDEO__PROVIDER"}[model.stage]
        check_use(f"The {model.stage} model '{model.backend}' ({spec_setting})", model.licence,
                  settings.licences)
    return chosen
