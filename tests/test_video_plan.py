"""Planning clips without network: prices, budget, provider rules, framing, prompts."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from packshot.errors import ConfigError
from stages.video import BrandVideoStyle, ClipRequest, format_estimate, plan_clips
from stages.video.framing import choose_size, data_uri, fit_to_frame
from stages.video.prompts import CAMERA_MOTIONS, build_prompt
from stages.video.providers.runway import RunwayProvider
from tests.fakes.clips import fast_settings, product_image


def disc_aspect(frame: np.ndarray) -> float:
    """Width / height of the dark disc drawn by ``product_image``."""
    ys, xs = np.nonzero(frame.mean(axis=2) < 220)
    return (xs.max() - xs.min() + 1) / (ys.max() - ys.min() + 1)


def test_estimate_prices_each_clip_from_the_providers_rates():
    settings = fast_settings(provider="runway", max_spend_usd=100)
    items = [
        ClipRequest("A1", product_image(1), "Leather tote"),
        ClipRequest("A2", product_image(2), model="gen4.5", duration_s=10),
        ClipRequest("A3", product_image(3), provider="sora", duration_s=7),
        ClipRequest(
            "A4", product_image(4), provider="sora", model="sora-2-pro", ratio="1792:1024", duration_s=12
        ),
    ]
    estimate = plan_clips(items, settings)
    costs = [line.cost_usd for line in estimate.lines]
    assert costs == [0.25, 1.2, 0.8, 6.0]  # 5 s x $0.05; 10 s x $0.12; 8 s x $0.10; 12 s x $0.50 (1792x1024)
    assert estimate.lines[2].duration_s == 8 and "7 s is not offered" in estimate.lines[2].notes[0]
    assert estimate.lines[3].size == "1792x1024"
    assert estimate.total_usd == pytest.approx(8.25)
    text = format_estimate(estimate)
    assert "runway/gen4_turbo" in text and "$0.25" in text and "$8.25" in text and "credits" in text


def test_budget_cap_marks_the_clips_that_would_be_skipped():
    settings = fast_settings(provider="runway", max_spend_usd=0.5)
    items = [ClipRequest(f"S{i}", product_image(i)) for i in range(3)]
    estimate = plan_clips(items, settings)
    assert [line.within_budget for line in estimate.lines] == [True, True, False]
    assert "OVER CAP" in format_estimate(estimate)
    resumed = plan_clips(items, settings, committed_usd=0.25)
    assert [line.within_budget for line in resumed.lines] == [True, False, False]


def test_unpriced_model_is_flagged_not_guessed():
    estimate = plan_clips(
        [ClipRequest("X", product_image(0), model="gen9")], fast_settings(provider="runway")
    )
    line = estimate.lines[0]
    assert line.cost_usd is None and not line.within_budget
    assert "PACKSHOT_VIDEO__PRICES_USD_PER_S" in line.notes[0]


def test_request_overrides_beat_the_brand_which_beats_settings():
    settings = fast_settings(provider="runway", model="gen4_turbo", duration_s=5)
    brand = BrandVideoStyle(provider="sora", prompt="calm premium mood", camera_motion="orbit", duration_s=8)
    from_brand = plan_clips([ClipRequest("B", product_image(0), "Mug", brand=brand)], settings).lines[0]
    assert (from_brand.provider, from_brand.model, from_brand.duration_s) == ("sora", "sora-2", 8)
    overridden = ClipRequest("B", product_image(0), brand=brand, provider="runway", duration_s=10)
    line = plan_clips([overridden], settings).lines[0]
    assert (line.provider, line.model, line.duration_s) == ("runway", "gen4_turbo", 10)


def test_brand_video_mapping_rejects_unknown_keys():
    with pytest.raises(ValidationError):
        BrandVideoStyle.model_validate({"provider": "runway", "camera": "orbit"})


def test_no_provider_is_a_config_error():
    with pytest.raises(ConfigError, match="PACKSHOT_VIDEO__PROVIDER"):
        plan_clips([ClipRequest("X", product_image(0))], fast_settings(provider="none"))


def test_auto_ratio_picks_the_providers_closest_frame():
    sizes = RunwayProvider(fast_settings()).sizes("gen4_turbo")
    assert choose_size(sizes, "auto", (300, 200, 3))[0] == "832:1104"  # portrait 2:3
    assert choose_size(sizes, "auto", (100, 240, 3))[0] == "1584:672"  # wide banner
    assert choose_size(sizes, "9:16", (100, 100, 3))[0] == "720:1280"


@pytest.mark.parametrize("fit", ["pad", "crop"])
def test_framing_pads_or_crops_but_never_stretches(fit):
    image = product_image(5, width=160, height=240)  # portrait into a landscape frame
    frame = fit_to_frame(image, (320, 180), fit)
    assert frame.shape == (180, 320, 3) and frame.dtype == np.uint8
    if fit == "pad":
        assert disc_aspect(frame) == pytest.approx(1.0, abs=0.05)
        assert (frame[:, :10] == 245).all()  # padded with the photo's own background
    else:
        # the disc is wider than the frame is tall after cover-scaling, so it is cut top and bottom,
        # but its width matches its true diameter: 0.35*2*160 px scaled by 2 = 224 px
        ys, xs = np.nonzero(frame.mean(axis=2) < 220)
        assert xs.max() - xs.min() + 1 == pytest.approx(224, abs=3)


def test_data_uri_stays_under_the_providers_limit():
    noisy = np.random.default_rng(0).integers(0, 256, (672, 1584, 3), dtype=np.uint8)
    uri = data_uri(noisy, 1_000_000)
    assert len(uri) <= 1_000_000 and uri.startswith("data:image/jpeg;base64,")
    small = data_uri(product_image(0), 5 * 1024 * 1024)
    assert small.startswith("data:image/png;base64,")


def test_encoded_image_bytes_are_accepted_as_input():
    buf = io.BytesIO()
    Image.fromarray(product_image(7)).save(buf, format="JPEG")
    line = plan_clips([ClipRequest("J", buf.getvalue())], fast_settings(provider="runway")).lines[0]
    assert line.size == "1104:832" and line.cost_usd == 0.25  # 3:2 photo
    broken = plan_clips([ClipRequest("K", b"not an image")], fast_settings(provider="runway")).lines[0]
    assert broken.cost_usd is None and "could not be decoded" in broken.notes[0]


def test_prompt_has_product_brand_and_motion_and_respects_the_length_limit():
    text = build_prompt("Oak chair", "warm Scandinavian light", "orbit")
    assert text.startswith("Oak chair. warm Scandinavian light.") and CAMERA_MOTIONS["orbit"] in text
    long_text = build_prompt("x" * 2000, "", "static", max_chars=1000)
    assert len(long_text) == 1000 and long_text.endswith("first frame.")
    with pytest.raises(ConfigError, match="slow-push-in"):
        build_prompt("Oak chair", "", "zoom-blast")
