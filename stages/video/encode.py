"""Frames to an H.264 MP4 (PyAV), the format ad platforms and browsers play."""

from __future__ import annotations

import io

import numpy as np


def frames_to_mp4(frames: np.ndarray, fps: int, crf: int = 18) -> bytes:
    """``frames``: ``T x H x W x 3`` uint8 RGB (or float in [0, 1]); H and W even. Returns MP4 bytes."""
    from packshot.extras import require

    av = require("av", "video", "writing video clips")

    if frames.dtype != np.uint8:
        frames = (np.clip(frames, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    _, height, width, _ = frames.shape
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium", "movflags": "+faststart"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()
