"""Self-hosted clips with a tiny random LTX-Video pipeline (real diffusers classes, no download)."""

from __future__ import annotations

import io

import av
import pytest

from packshot.registry import models
from stages.video import ClipRequest, plan_clips, render_clips
from tests.fakes.clips import MemoryStore, fast_settings, product_image


@pytest.fixture
def settings():
    return fast_settings(
        provider="local", local_model="tiny", local_steps=2, local_fps=8, local_long_side=96, duration_s=1
    )


def decode(data: bytes) -> tuple[int, int, int, str, float]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        return (
            len(frames),
            frames[0].width,
            frames[0].height,
            stream.codec_context.name,
            float(stream.average_rate),
        )


def test_tiny_ltx_renders_an_h264_clip_of_the_planned_size(settings, tmp_path):
    items = [ClipRequest("LAMP", product_image(3, 240, 160), "Brass desk lamp")]
    assert plan_clips(items, settings).lines[0].cost_usd == 0.0  # no per-clip fee

    store = MemoryStore()
    result = render_clips(items, settings, tmp_path, store)[0]
    assert result.status == "succeeded", result.error
    n_frames, width, height, codec, fps = decode(store.files[result.output_uri.removeprefix("mem://")])
    assert (n_frames, codec, fps) == (9, "h264", 8.0)  # 1 s at 8 fps -> 8k+1 = 9 frames for LTX
    assert (width, height) == (96, 64)  # 3:2 photo, long side 96, sides multiples of 32

    loads = dict(models.load_counts)
    again = render_clips(items, settings, tmp_path, MemoryStore())[0]
    # from the ledger, no re-render
    assert again.status == "succeeded" and again.output_uri == result.output_uri
    assert models.load_counts == loads


def test_no_local_model_configured_fails_the_clip_with_the_setting_to_fix(tmp_path):
    settings = fast_settings(provider="local")
    result = render_clips([ClipRequest("X", product_image(0))], settings, tmp_path, MemoryStore())[0]
    assert result.status == "failed" and "PACKSHOT_VIDEO__LOCAL_MODEL" in result.error
