"""Which memory plan each configured model gets on a card, without loading anything.

A run has up to two phases on the GPU, one after the other: the image phase (SAM and FLUX Fill resident
together, taking turns under the card lock) and the video phase (the local video model, after every
batch). When both phases fit on the card together the video model is loaded at the start; otherwise the
registry frees the image models before the video model loads (the model switch) and only the video
model's files are checked at the start. ``packshot plan`` prints :func:`describe`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.settings import Settings
from packshot import memory
from packshot.extras import installed
from packshot.memory import FOOTPRINTS, Footprint, PhasePlan, gib


@dataclass
class RunPlan:
    card: str  # what the free memory figure describes
    free_bytes: int | None  # None: not a CUDA device
    image: PhasePlan | None = None
    video: PhasePlan | None = None
    together: bool = False  # both phases stay resident at once
    notes: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return all(p.fits for p in (self.image, self.video) if p is not None)


# the memory footprint (packshot.memory.FOOTPRINTS) of each generator backend that loads a model
GENERATOR_FOOTPRINTS = {"flux": "flux-fill", "flux2-klein": "flux2-klein", "tiny": "tiny",
                        "tiny-klein": "tiny"}


def image_footprints(settings: Settings, stages: list[str], device: str = "cuda"
                     ) -> tuple[list[Footprint], dict[str, int]]:
    """The image phase's models and the working-memory multipliers (SAM's batch size on ``device``)."""
    from stages.segment.settings import embed_batch_size

    out, scale = [], {}
    seg = settings.segment
    if seg.backend == "sam" or (seg.backend == "auto" and seg.sam_checkpoint):
        fp = FOOTPRINTS[f"sam-{seg.sam_model_type}"]
        out.append(fp)
        scale[fp.name] = embed_batch_size(seg, device)
    elif seg.backend == "tiny":
        out.append(FOOTPRINTS["tiny"])
    gen = settings.generative
    if {"background", "lifestyle"} & set(stages):
        from stages.background.generators import BACKENDS

        spec, _notes = BACKENDS.choose(gen.backend, gen)
        footprint = GENERATOR_FOOTPRINTS.get(spec.name)
        if footprint:
            out.append(FOOTPRINTS[footprint])
    return out, scale


def video_footprints(settings: Settings, stages: list[str]) -> list[Footprint]:
    video = settings.video
    if "video" not in stages or video.provider != "local" or not video.local_model:
        return []
    return [memory.video_footprint(video.local_model, video.local_pipeline)]


def plan_run(settings: Settings, stages: list[str], device: str, free_bytes: int | None = None,
             card: str | None = None) -> RunPlan:
    """The plans of both phases on ``device`` (or on a card with ``free_bytes`` free)."""
    free = free_bytes if free_bytes is not None else memory.card_free_bytes(device)
    run = RunPlan(card or (f"{device}, {gib(free)} free now" if free is not None else device), free)
    images, scale = image_footprints(settings, stages, device)
    videos = video_footprints(settings, stages)
    if images:
        run.image = memory.resolve_plan("image", settings.generative.memory_plan, images, device, scale, free)
    if videos:
        run.video = memory.resolve_plan("video", settings.video.memory_plan, videos, device, None, free)
    host = memory.host_total_bytes()
    for phase in (p for p in (run.image, run.video) if p is not None):
        phase.load_host_bytes = load_host_bytes(phase)
        if host and phase.load_host_bytes > host:
            run.notes.append(f"loading the {phase.phase} models at plan {phase.plan} needs about "
                             f"{gib(phase.load_host_bytes)} of host memory; this machine has {gib(host)}")
    if run.image and run.video and free is not None:
        weights = [sum(m.card_bytes for m in p.models) for p in (run.image, run.video)]
        work = max(run.image.peak_bytes - weights[0], run.video.peak_bytes - weights[1])  # includes context
        both = sum(weights) + work
        run.together = both <= free
        names = " + ".join(m.footprint.name for m in [*run.image.models, *run.video.models])
        if run.together:
            run.notes.append(f"{names} stay resident together ({gib(both)} of {gib(free)})")
        else:
            run.notes.append(
                f"{names} cannot stay resident together on this card (they need {gib(both)} at these plans, "
                f"{gib(free)} free): the image models are freed before the video model loads, so each run "
                "loads both again from disk")
    else:  # nothing to share the card with, or not a CUDA device
        run.together = True
    return run


def load_host_bytes(phase: PhasePlan) -> int:
    """Host memory at the peak of loading ``phase``'s models, one after the other (each placed before the
    next loads): the denoisers are read straight into their plan (quantised at load where torchao is
    installed), so host memory holds about the text encoders, not the whole model."""
    quantise = installed("torchao")
    return max((m.footprint.load_host_bytes(m.plan, quantise) for m in phase.models), default=0)


class KeptPlans:
    """The image phase's memory plan, chosen once per process and card from the free memory and kept.

    A later run's free memory is lower than the first run's for reasons that are no shortage: this
    process's cached blocks, the LoRA hot-swap slot and the prompt cache are not in ``mem_get_info``. So
    a plan chosen later could fall to a lighter one and load the pipeline a second time. A run whose
    settings name another plan gets it, and says so."""

    def __init__(self) -> None:
        self._plans: dict[str, str] = {}  # device and models -> the plan its image models were loaded with
        self.chosen = 0  # plans chosen from the free memory (counter: tests, logs)

    def apply(self, run: RunPlan, settings: Settings, stages: list[str], device: str) -> list[str]:
        """Replace ``run.image`` by the kept plan where one is kept; returns what the run should say."""
        if run.image is None or run.free_bytes is None:  # nothing to plan off CUDA
            return []
        images, scale = image_footprints(settings, stages, device)
        key = f"{device}:{'+'.join(f.name for f in images)}"
        kept, setting = self._plans.get(key), settings.generative.memory_plan
        if kept is None or setting not in ("auto", kept):
            self._plans[key] = run.image.plan
            self.chosen += 1
            if kept is None:
                return []
            return [f"this run asks for memory plan {setting} ({memory.PLAN_SETTING['image']}); the image "
                    f"models on {device} were loaded with plan {kept}: they are loaded again with {setting}"]
        if run.image.plan == kept:
            return []
        now = run.image.plan
        run.image = memory.resolve_plan("image", kept, images, device, scale, run.free_bytes)
        run.image.fits = True  # its models are loaded already and ran
        run.image.load_host_bytes = load_host_bytes(run.image)
        run.image.why = f"kept from this process's first run on {device}"
        return [f"memory plan {kept} kept for {device} (the free memory now would choose {now}: it does not "
                "count what this process caches for its own models)"]

    def demote(self, device: str, plan: str) -> None:
        """An out-of-memory retry moved ``device``'s image models to the lighter ``plan``: keep that."""
        for key in self._plans:
            if key.startswith(f"{device}:"):
                self._plans[key] = plan


kept_plans = KeptPlans()


def describe(run: RunPlan) -> str:
    """A plain-text table: per phase and model, the plan, expected card and host memory, and why."""
    lines = [f"card: {run.card}"]
    where = "on the card" if run.free_bytes is not None else "in host memory"
    if run.image is None and run.video is None:
        lines.append("no GPU model is configured (classic cutouts and backgrounds): nothing to plan")
    for phase in (run.image, run.video):
        if phase is None:
            continue
        lines.append(f"\n{phase.phase} phase: plan {phase.plan}, expected peak {gib(phase.peak_bytes)} "
                     f"(weights + largest call + {gib(memory.CONTEXT_BYTES)} context)")
        for m in phase.models:
            host = f", {gib(m.host_bytes)} in host memory" if m.host_bytes else ""
            lines.append(f"  {m.footprint.name:<16} {m.plan:<14} {gib(m.card_bytes):>9} {where}{host}")
        lines.append(f"  why: {phase.why}")
        if phase.load_host_bytes:
            lines.append(f"  loading: about {gib(phase.load_host_bytes)} of host memory at most (each model "
                         "read straight into its plan)")
        if not phase.fits:
            setting = memory.PLAN_SETTING[phase.phase]
            lines.append(f"  CANNOT FIT: use a larger card, a smaller model, or check {setting}")
        elif phase.plan == "group-offload":
            lines.append("  note: group offload streams every block per step (about 3.5x slower per pass)")
    lines += [f"\n{note}" for note in run.notes]
    lines.append("\nSizes and working memory are arithmetic from parameter counts, not measurements.")
    return "\n".join(lines)
