"""Helpers for the video tests: product images, fast settings, an in-memory output store."""

from __future__ import annotations

import threading

import numpy as np

from packshot.config import LoadSettings
from stages.video.settings import VideoSettings

RUNWAY_KEY = "rwsk_test_5f1e9c0b7a3d4e2f"
OPENAI_KEY = "sk-test-9d8c7b6a5f4e3d2c1b0a"


def product_image(seed: int, width: int = 240, height: int = 160) -> np.ndarray:
    """A packshot-like image: light background, a colored disc (its roundness shows any stretching)."""
    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), 245, np.uint8)
    yy, xx = np.mgrid[:height, :width]
    radius = min(width, height) * 0.35
    disc = (xx - width / 2) ** 2 + (yy - height / 2) ** 2 <= radius**2
    image[disc] = rng.integers(20, 200, 3)
    return image


def fast_settings(**overrides) -> VideoSettings:
    """Short polls and retry waits so the tests run in seconds."""
    values = dict(
        poll_interval_s=0.02,
        poll_max_interval_s=0.05,
        poll_timeout_s=20.0,
        retry_wait_s=0.01,
        retry_max_wait_s=0.05,
        request_timeout_s=3.0,
        max_retries=3,
        # the fakes serve result files over plain http on 127.0.0.1
        download=LoadSettings(allow_http=True, allow_private_addresses=True, download_timeout_s=10.0),
    )
    values.update(overrides)
    return VideoSettings(**values)


class MemoryStore:
    """A ``write_output`` that keeps the bytes; thread-safe like a real store must be."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def __call__(self, relpath: str, data: bytes) -> str:
        with self._lock:
            self.files[relpath] = data
        return f"mem://{relpath}"
