"""Self-hosted image-to-video with a diffusers pipeline on the worker's GPU (LTX-Video by default).

No per-clip fee and no data leaves the merchant's machines. The model is named by
``video.local_model`` (hub id or directory; ``tiny`` builds a random toy model for tests) and loaded
once per process through the model registry, placed by the memory plan ``video.memory_plan``
(:mod:`packshot.memory`), under the same card lock as the image models (:func:`packshot.gpu.gpu_lock`):
the registry frees image models first when the card's budget needs it. A model that cannot load is
remembered for the life of the process, so later clips fail at once instead of reloading tens of GB.
An out-of-memory error retries the clip once with the next lighter plan.
"""

from __future__ import annotations

import hashlib
import inspect
import threading
import uuid

import numpy as np

from packshot import memory
from packshot.errors import ModelUnavailableError
from packshot.gpu import gpu_lock
from packshot.placement import load_pipeline_for_plan
from packshot.registry import models
from stages.video.encode import frames_to_mp4
from stages.video.providers.base import ClipFailedError, JobState, ProviderUnavailableError, VideoProvider
from stages.video.settings import VideoSettings
from stages.video.spec import ClipSpec

ASPECTS = {"16:9": 16 / 9, "3:2": 1.5, "4:3": 4 / 3, "1:1": 1.0, "3:4": 0.75, "2:3": 2 / 3, "9:16": 9 / 16}
NEGATIVE_PROMPT = (
    "worst quality, inconsistent motion, blurry, jittery, distorted, warped product, changed logo"
)


_failed_loads: dict[str, str] = {}  # registry key -> why it could not load (for this process's life)
PLAN_SETTING = memory.PLAN_SETTING["video"]


def _round32(x: float) -> int:
    return max(32, int(round(x / 32)) * 32)


class LocalProvider(VideoProvider):
    name = "local"
    licence = "the licence on the model card of PACKSHOT_VIDEO__LOCAL_MODEL (LTX-Video: LTXV Open Weights)"
    remote = False

    def __init__(self, settings: VideoSettings):
        super().__init__(settings)
        self.default_model = settings.local_model or ""
        self._outputs: dict[str, bytes] = {}
        self._lock = threading.Lock()  # one clip at a time on the GPU

    def sizes(self, model: str) -> dict[str, tuple[int, int]]:
        long_side = self.settings.local_long_side
        out = {}
        for aspect in ASPECTS.values():
            w, h = (long_side, long_side / aspect) if aspect >= 1 else (long_side * aspect, long_side)
            w, h = _round32(w), _round32(h)
            out[f"{w}x{h}"] = (w, h)
        return out

    def duration(self, model: str, requested_s: int) -> int:
        return max(1, int(requested_s))

    def check_model(self, model: str) -> None:
        if not model:
            raise ClipFailedError(
                "no local video model: set PACKSHOT_VIDEO__LOCAL_MODEL to a diffusers image-to-video model "
                "(hub id or directory, e.g. Lightricks/LTX-Video) or choose the runway provider",
                "NO_LOCAL_MODEL",
            )

    def num_frames(self, duration_s: int) -> int:
        """LTX wants 8k+1 frames (which also satisfies Wan's 4k+1)."""
        return 8 * max(1, round(duration_s * self.settings.local_fps / 8)) + 1

    def device(self) -> str:
        from packshot.config import resolve_device

        return resolve_device(self.settings.device or "auto")

    def plan(self, model: str, setting: str | None = None) -> memory.PhasePlan:
        """The memory plan this model gets on this process's card now (nothing is loaded)."""
        footprint = memory.video_footprint(model, self.settings.local_pipeline)
        return memory.resolve_plan("video", setting or self.settings.memory_plan, [footprint], self.device())

    def held_plan(self, model: str) -> str | None:
        """The plan of the copy of ``model`` this process holds already, if any: the free memory does
        not count that copy, so planning again would pick a lighter plan and load a second one."""
        prefix = f"{self._key(model)}:"
        return next((key[len(prefix):] for key in models.loaded() if key.startswith(prefix)), None)

    def _key(self, model: str) -> str:
        return f"video:{self.settings.local_pipeline}:{model}"

    def check_source(self, model: str) -> None:
        """Read the model's ``model_index.json`` only: a missing folder or a gated hub id without a token
        fails here, at the start of a run, without loading any weights."""
        self.check_model(model)
        if model == "tiny":
            return
        cls = self._pipeline_class()
        try:
            cls.load_config(model)
        except Exception as exc:  # diffusers raises OSError, ValueError or hub errors
            raise ModelUnavailableError(
                f"cannot read the local video model '{model}' (PACKSHOT_VIDEO__LOCAL_MODEL): {exc}"
            ) from None

    def load(self, model: str, plan: str | None = None):
        """The loaded pipeline (once per process, under the card lock); raises
        :class:`ProviderUnavailableError` for a model that could not load before."""
        plan = plan or self.held_plan(model) or self.plan(model).plan
        key = self._key(model)
        if key in _failed_loads:
            raise ProviderUnavailableError(
                f"{_failed_loads[key]} (an earlier load in this process failed; fix the setting, then "
                "restart the worker)", "MODEL_UNAVAILABLE")
        device = self.device()
        footprint = memory.video_footprint(model, self.settings.local_pipeline)
        try:
            with gpu_lock(device):
                return models.get(f"{key}:{plan}", lambda: self._load(model, device, plan), identity=model,
                                  size_hint=footprint.room_bytes(plan) if device.startswith("cuda") else 0)
        except ModelUnavailableError as exc:
            _failed_loads[key] = str(exc)
            raise ProviderUnavailableError(str(exc), "MODEL_UNAVAILABLE") from None

    def _pipeline_class(self):
        import diffusers

        cls = getattr(diffusers, self.settings.local_pipeline, None)
        if cls is None:
            raise ModelUnavailableError(
                f"diffusers has no pipeline '{self.settings.local_pipeline}' (PACKSHOT_VIDEO__LOCAL_PIPELINE)"
            )
        return cls

    def _load(self, model: str, device: str, plan: str):
        import torch

        cls = self._pipeline_class()
        source = model
        if model == "tiny":
            from stages.video.tiny import tiny_ltx_dir

            source = str(tiny_ltx_dir())
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        try:  # the denoiser read straight into the plan (FP8 quantised at load), then the other parts
            pipe, _notes = load_pipeline_for_plan(cls, source, plan=plan, device=device, dtype=dtype)
        except (OSError, ValueError) as exc:
            raise ModelUnavailableError(
                f"could not load the local video model '{model}' (PACKSHOT_VIDEO__LOCAL_MODEL): {exc}"
            ) from None
        pipe.set_progress_bar_config(disable=True)
        if plan != "full" and hasattr(getattr(pipe, "vae", None), "enable_tiling"):
            pipe.vae.enable_tiling()  # the decode of a whole clip is the largest working memory
        return pipe

    def submit(self, spec: ClipSpec, frame: np.ndarray) -> str:
        import torch

        with self._lock:
            plan = self.held_plan(spec.model) or self.plan(spec.model).plan
            try:
                frames = self._render(spec, frame, plan)
            except torch.OutOfMemoryError:  # free everything (the image models too), then a lighter plan
                lighter = memory.lighter_plan(plan)
                models.free_where(lambda key: True)
                if lighter is None:
                    raise self._out_of_memory(plan) from None
                try:
                    frames = self._render(spec, frame, lighter)
                except torch.OutOfMemoryError:
                    models.free_where(lambda key: True)
                    raise self._out_of_memory(lighter) from None
        job_id = f"local-{uuid.uuid4().hex[:12]}"
        self._outputs[job_id] = frames_to_mp4(frames, self.settings.local_fps)
        return job_id

    def _out_of_memory(self, plan: str) -> ProviderUnavailableError:
        lighter = memory.lighter_plan(plan)
        advice = (f"set {PLAN_SETTING}={lighter}" if lighter else
                  "use a smaller model (PACKSHOT_VIDEO__LOCAL_MODEL), a lower "
                  "PACKSHOT_VIDEO__LOCAL_LONG_SIDE or a larger card")
        return ProviderUnavailableError(
            f"the local video model ran out of GPU memory with memory plan {plan}; {advice}", "OUT_OF_MEMORY")

    def _render(self, spec: ClipSpec, frame: np.ndarray, plan: str) -> np.ndarray:
        with gpu_lock(self.device()):  # loading and rendering: one holder of the card
            pipe = self.load(spec.model, plan)
            return np.asarray(pipe(**self._call_kwargs(pipe, spec, frame)).frames[0])

    def _call_kwargs(self, pipe, spec: ClipSpec, frame: np.ndarray) -> dict:
        import torch
        from PIL import Image

        width, height = spec.size
        kwargs = dict(
            image=Image.fromarray(frame),
            prompt=spec.prompt_text,
            negative_prompt=NEGATIVE_PROMPT,
            width=width,
            height=height,
            num_frames=self.num_frames(spec.duration_s),
            num_inference_steps=self.settings.local_steps,
            output_type="np",
            generator=torch.Generator("cpu").manual_seed(
                int(hashlib.sha256(spec.key.encode()).hexdigest()[:8], 16)
            ),
        )
        if "frame_rate" in inspect.signature(pipe.__call__).parameters:
            kwargs["frame_rate"] = self.settings.local_fps
        return kwargs

    def poll(self, job_id: str) -> JobState:
        if job_id not in self._outputs:
            raise ClipFailedError("the local render was lost (the worker restarted); run again", "LOCAL_LOST")
        return JobState(status="succeeded")

    def download(self, job_id: str, state: JobState) -> bytes:
        return self._outputs.pop(job_id)
