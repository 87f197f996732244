"""Self-hosted image-to-video with a diffusers pipeline on the worker's GPU (LTX-Video by default).

No per-clip fee and no data leaves the merchant's machines. The model is named by
``video.local_model`` (hub id or directory; ``tiny`` builds a random toy model for tests) and loaded
once per process through the model registry.
"""

from __future__ import annotations

import hashlib
import inspect
import threading
import uuid

import numpy as np

from packshot.errors import ModelUnavailableError
from packshot.registry import models
from stages.video.encode import frames_to_mp4
from stages.video.providers.base import ClipFailedError, JobState, VideoProvider
from stages.video.settings import VideoSettings
from stages.video.spec import ClipSpec

ASPECTS = {"16:9": 16 / 9, "3:2": 1.5, "4:3": 4 / 3, "1:1": 1.0, "3:4": 0.75, "2:3": 2 / 3, "9:16": 9 / 16}
NEGATIVE_PROMPT = (
    "worst quality, inconsistent motion, blurry, jittery, distorted, warped product, changed logo"
)


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

    def _pipeline(self, model: str):
        from packshot.config import resolve_device

        device = resolve_device(self.settings.device or "auto")

        def load():
            import diffusers
            import torch

            cls = getattr(diffusers, self.settings.local_pipeline, None)
            if cls is None:
                raise ModelUnavailableError(
                    f"diffusers has no pipeline '{self.settings.local_pipeline}' "
                    "(PACKSHOT_VIDEO__LOCAL_PIPELINE)"
                )
            source = model
            if model == "tiny":
                from stages.video.tiny import tiny_ltx_dir

                source = str(tiny_ltx_dir())
            dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
            try:
                pipe = cls.from_pretrained(source, dtype=dtype)
            except (OSError, ValueError) as exc:
                raise ModelUnavailableError(
                    f"could not load the local video model '{model}' (PACKSHOT_VIDEO__LOCAL_MODEL): {exc}"
                ) from None
            pipe.set_progress_bar_config(disable=True)
            return pipe.to(device)

        return models.get(f"video:{self.settings.local_pipeline}:{model}", load, identity=model)

    def submit(self, spec: ClipSpec, frame: np.ndarray) -> str:
        import torch
        from PIL import Image

        with self._lock:
            pipe = self._pipeline(spec.model)
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
            frames = np.asarray(pipe(**kwargs).frames[0])
        job_id = f"local-{uuid.uuid4().hex[:12]}"
        self._outputs[job_id] = frames_to_mp4(frames, self.settings.local_fps)
        return job_id

    def poll(self, job_id: str) -> JobState:
        if job_id not in self._outputs:
            raise ClipFailedError("the local render was lost (the worker restarted); run again", "LOCAL_LOST")
        return JobState(status="succeeded")

    def download(self, job_id: str, state: JobState) -> bytes:
        return self._outputs.pop(job_id)
