"""Export presets, encoding (sRGB, byte cap, provenance) and the validator's rules."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image, ImageCms

from packshot.errors import ConfigError
from packshot.schemas.presets import Preset, get_preset, load_presets
from packshot.types import Cutout, Rendered
from stages.export import ListingOrderError, check, check_files, compose_packshot, encode, order_for_listing
from stages.export.validate import source_type

sys.path.insert(0, str(Path(__file__).parent))
from studio import studio_shot  # noqa: E402

WHITE = Preset(name="white", width=256, height=256, fill_fraction=0.88, min_fill_fraction=0.85,
               pure_white_background=True, quality=95, subsampling="4:4:4", min_long_side=200,
               max_long_side=300, allow_generated=False)
SHOP = Preset(name="shop", width=256, height=256, fill_fraction=0.8, quality=90, max_bytes=400_000)


def _cutout(shape="bottle", color=(40, 90, 170)):
    rgb, alpha = studio_shot(160, shape, color)
    return Cutout(np.dstack([rgb, alpha]), backend="test")


def _rules(violations):
    return {v.rule for v in violations}


def test_builtin_presets_cover_the_marketplaces():
    names = set(load_presets())
    assert {"amazon-main", "amazon-additional", "shopify", "etsy", "google-merchant", "ebay"} <= names
    main = get_preset("amazon-main")
    assert main.pure_white_background and main.min_fill_fraction == 0.85 and not main.allow_generated
    assert get_preset("etsy").first_image_real


def test_custom_yaml_preset_with_size_aspect_and_named_background(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("presets:\n  look:\n    size: 1600\n    aspect: '4:5'\n    background: Off-White\n"
                 "    format: WEBP\n    quality: 85\n    max_bytes: 500000\n    color_profile: sRGB\n")
    p = get_preset("look", f)
    assert (p.width, p.height, p.background, p.format) == (1280, 1600, (245, 243, 238), "WEBP")


def test_bad_custom_preset_names_file_and_preset(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("presets:\n  bad:\n    size: 100\n    format: GIF\n")
    with pytest.raises(ConfigError, match="preset 'bad'"):
        load_presets(f)
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        get_preset("nope")


def test_packshot_passes_every_rule_with_its_matte():
    for shape in ("bottle", "mug", "ball"):
        for color in ((40, 90, 170), (12, 12, 12), (250, 200, 30)):
            r = compose_packshot(_cutout(shape, color), WHITE)
            data = encode(r, WHITE)
            assert check(data, WHITE, r.product_alpha, False) == [], (shape, color)
            assert check(data, WHITE) == [], (shape, color)  # estimated product region


def test_builtin_amazon_main_packshot_passes():
    p = get_preset("amazon-main")
    r = compose_packshot(_cutout("mug"), p)
    assert check(encode(r, p), p, r.product_alpha, False) == []


def test_jpeg_has_srgb_profile_and_no_alpha():
    data = encode(compose_packshot(_cutout(), SHOP), SHOP)
    img = Image.open(io.BytesIO(data))
    assert img.format == "JPEG" and img.mode == "RGB"
    profile = ImageCms.ImageCmsProfile(io.BytesIO(img.info["icc_profile"])).profile
    assert "sRGB" in profile.profile_description


def test_jpeg_byte_cap_lowers_quality():
    r = compose_packshot(_cutout(), SHOP)
    rng = np.random.default_rng(0)
    r.rgb = np.clip(r.rgb.astype(int) + rng.integers(-20, 20, r.rgb.shape), 0, 255).astype(np.uint8)
    full = encode(r, SHOP)
    capped = SHOP.model_copy(update={"max_bytes": len(full) * 2 // 3, "min_quality": 20})
    data = encode(r, capped)
    assert len(data) <= capped.max_bytes < len(full)
    assert check(data, capped, r.product_alpha, False) == []
    impossible = SHOP.model_copy(update={"max_bytes": 2000, "min_quality": 80})
    assert "max-bytes" in _rules(check(encode(r, impossible), impossible, r.product_alpha, False))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_provenance_metadata_present_only_for_generated(fmt):
    preset = SHOP.model_copy(update={"format": fmt, "max_bytes": None})
    r = compose_packshot(_cutout(), preset)
    plain = encode(r, preset)
    assert source_type(Image.open(io.BytesIO(plain))) is None
    assert check(plain, preset, r.product_alpha, False) == []
    scene = Rendered(r.rgb, r.product_alpha, kind="scene", preset="shop", generated=True)
    made = encode(scene, preset)
    assert source_type(Image.open(io.BytesIO(made))).endswith("/trainedAlgorithmicMedia")
    assert check(made, preset, r.product_alpha, True) == []
    # seeded violations: a generated image without the claim, a packshot with it
    assert "provenance" in _rules(check(plain, preset, r.product_alpha, True))
    assert "provenance" in _rules(check(made, preset, r.product_alpha, False))


def test_generated_image_on_preset_that_forbids_it():
    r = compose_packshot(_cutout(), WHITE)
    scene = Rendered(r.rgb, r.product_alpha, kind="scene", preset="white", generated=True)
    assert "provenance" in _rules(check(encode(scene, WHITE), WHITE, r.product_alpha, True))
    assert "provenance" in _rules(check(encode(scene, WHITE), WHITE))  # from the file's own metadata


def test_off_white_background_is_caught():
    r = compose_packshot(_cutout(), WHITE)
    r.rgb[r.product_alpha == 0] = 250
    violations = check(encode(r, WHITE), WHITE, r.product_alpha, False)
    assert "white-background" in _rules(violations)
    assert "white-background" in _rules(check(encode(r, WHITE), WHITE))


def test_single_stray_pixel_far_from_product_is_caught():
    r = compose_packshot(_cutout(), WHITE)
    r.rgb[3:5, 3:5] = 252
    assert "white-background" in _rules(check(encode(r, WHITE), WHITE, r.product_alpha, False))


def test_shadow_next_to_product_is_caught_despite_ringing_allowance():
    r = compose_packshot(_cutout(), WHITE)
    ys, xs = np.nonzero(r.product_alpha)
    y = ys.max() + 2
    r.rgb[y : y + 3, xs.min() : xs.max()] = 200  # a grey shadow line just under the product
    assert "white-background" in _rules(check(encode(r, WHITE), WHITE, r.product_alpha, False))


def test_png_white_rule_is_exact():
    png = WHITE.model_copy(update={"format": "PNG"})
    r = compose_packshot(_cutout(), png)
    assert check(encode(r, png), png, r.product_alpha, False) == []
    r.rgb[0, 0] = 254
    assert "white-background" in _rules(check(encode(r, png), png, r.product_alpha, False))


def test_fill_fraction_rule():
    small = WHITE.model_copy(update={"fill_fraction": 0.5, "min_fill_fraction": None})
    r = compose_packshot(_cutout(), small)
    violations = check(encode(r, small), WHITE, r.product_alpha, False)
    assert _rules(violations) == {"fill"}


def test_pixel_limits_and_aspect():
    r = compose_packshot(_cutout(), SHOP)
    data = encode(r, SHOP)
    strict = SHOP.model_copy(update={"min_long_side": 300, "min_short_side": 300, "max_megapixels": 0.05,
                                     "check_aspect": True, "height": 200})
    assert {"min-size", "min-short-side", "megapixels", "aspect"} <= _rules(check(data, strict))
    assert "max-size" in _rules(check(data, SHOP.model_copy(update={"max_long_side": 200})))
    assert check(data, SHOP, r.product_alpha, False) == []


def _raw(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_format_mode_and_profile_rules():
    r = compose_packshot(_cutout(), SHOP)
    img = Image.fromarray(r.rgb)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    assert _rules(check(_raw(img, "PNG", icc_profile=srgb), SHOP)) == {"format"}
    assert "color-mode" in _rules(check(_raw(img.convert("CMYK"), "JPEG"), SHOP))
    assert "color-mode" in _rules(check(_raw(img.convert("RGBA"), "PNG", icc_profile=srgb),
                                        SHOP.model_copy(update={"format": "PNG"})))
    assert "color-profile" in _rules(check(_raw(img, "JPEG"), SHOP))
    lab_profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    assert "color-profile" in _rules(check(_raw(img, "JPEG", icc_profile=lab_profile), SHOP))
    assert _rules(check(b"not an image", SHOP)) == {"readable"}


def test_check_files_without_matte(tmp_path):
    r = compose_packshot(_cutout("mug"), WHITE)
    good = tmp_path / "good.jpg"
    good.write_bytes(encode(r, WHITE))
    r.rgb[r.product_alpha == 0] = 247
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(encode(r, WHITE))
    presets = tmp_path / "p.yaml"
    body = WHITE.model_dump(exclude={"name", "background"})
    presets.write_text(yaml.safe_dump({"presets": {"white": body}}))
    report = check_files([good, bad, tmp_path / "missing.jpg"], "white", presets)
    assert report[good] == []
    assert "white-background" in _rules(report[bad])
    assert _rules(report[tmp_path / "missing.jpg"]) == {"readable"}


def test_listing_order_puts_real_packshots_first_and_etsy_refuses_generated_only():
    rgb, alpha = np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8)
    scene = Rendered(rgb, alpha, kind="scene", preset="etsy", generated=True, scene=0)
    variant = Rendered(rgb, alpha, kind="packshot", preset="etsy", variant="navy")
    packshot = Rendered(rgb, alpha, kind="packshot", preset="etsy")
    etsy = get_preset("etsy")
    assert order_for_listing([scene, variant, packshot], etsy) == [packshot, variant, scene]
    with pytest.raises(ListingOrderError, match="first listing image"):
        order_for_listing([scene], etsy)
    assert order_for_listing([scene], get_preset("shopify")) == [scene]


def test_amazon_main_raises_quality_when_ringing_would_break_pure_white():
    """A saturated red edge on white rings past the tolerance at the preset's quality; the encoder
    must notice and spend bytes rather than ship a file Amazon rejects."""
    import cv2

    from stages.export.render import _SUBSAMPLING, _save

    preset = get_preset("amazon-main")
    size = 1000
    alpha = np.zeros((size, size), np.uint8)
    cv2.circle(alpha, (size // 2, size // 2), size * 9 // 20, 255, -1, cv2.LINE_AA)  # fills 90%
    a = alpha[..., None] / 255.0
    rgb = (np.array([192, 57, 43]) * a + 255 * (1 - a)).round().astype(np.uint8)
    plain = _save(Image.fromarray(rgb), "JPEG", None, quality=preset.quality,
                  subsampling=_SUBSAMPLING[preset.subsampling])
    assert any(v.rule == "white-background" for v in check(plain, preset, alpha))  # the trap is real

    data = encode(Rendered(rgb, alpha, kind="packshot", preset=preset.name), preset)
    assert check(data, preset, alpha) == []
    assert len(data) <= preset.max_bytes


def _count_saves(monkeypatch):
    from stages.export import render

    calls = []
    real = render._save

    def counting(img, fmt, xmp, **kw):
        if img.size[1] > 300 or fmt == "PNG":  # full-size files, not the byte-cap row sample
            calls.append(kw.get("quality"))
        return real(img, fmt, xmp, **kw)

    monkeypatch.setattr(render, "_save", counting)
    return calls


def test_encoder_finds_the_quality_in_at_most_two_more_tries(monkeypatch):
    import cv2

    preset = get_preset("amazon-main")
    alpha = np.zeros((1000, 1000), np.uint8)
    cv2.circle(alpha, (500, 500), 450, 255, -1, cv2.LINE_AA)
    a = alpha[..., None] / 255.0
    rgb = (np.array([192, 57, 43]) * a + 255 * (1 - a)).round().astype(np.uint8)
    calls = _count_saves(monkeypatch)
    data = encode(Rendered(rgb, alpha, kind="packshot", preset=preset.name), preset)
    assert check(data, preset, alpha) == [] and 2 <= len(calls) <= 3, calls  # first try rang: raised

    r = compose_packshot(_cutout(), SHOP)
    rng = np.random.default_rng(0)
    r.rgb = np.clip(r.rgb.astype(int) + rng.integers(-20, 20, r.rgb.shape), 0, 255).astype(np.uint8)
    r.rgb = cv2.resize(r.rgb, (1024, 1024))
    r.product_alpha = cv2.resize(r.product_alpha, (1024, 1024))
    big = SHOP.model_copy(update={"width": 1024, "height": 1024, "max_bytes": None})
    full = encode(r, big)
    capped = big.model_copy(update={"max_bytes": len(full) // 2, "min_quality": 20})
    calls.clear()
    data = encode(r, capped)
    assert len(data) <= capped.max_bytes and len(calls) <= 3, calls
    assert len(data) > capped.max_bytes * 0.8  # and not needlessly small


@pytest.mark.parametrize("preset", [WHITE, SHOP, WHITE.model_copy(update={"format": "PNG"})],
                         ids=["white-jpeg", "shop-jpeg", "white-png"])
def test_validator_from_header_and_arrays_agrees_with_a_full_decode(preset):
    r = compose_packshot(_cutout(color=(200, 30, 30)), preset)
    r.rgb[4:20, 4:20] = 235  # a grey patch far from the product: a white-background violation
    data = encode(r, preset)
    fast = check(data, preset, r.product_alpha, False, rgb=r.rgb)
    assert fast == check(data, preset, r.product_alpha, False)
    assert ("white-background" in _rules(fast)) == preset.pure_white_background


# --- encoding that does not block (issue 22) ---------------------------------------------------------


def test_blockiness_metric_sees_8x8_steps_and_not_noise():
    from stages.export.blocking import blockiness

    rng = np.random.default_rng(0)
    noise = np.clip(rng.normal(128, 3, (256, 256, 3)), 0, 255).astype(np.uint8)
    steps = np.repeat(np.repeat(rng.integers(100, 106, (32, 32, 1)), 8, 0), 8, 1)
    blocky = np.clip(steps + rng.normal(0, 0.6, (256, 256, 3)), 0, 255).astype(np.uint8)
    assert 0.95 < blockiness(noise) < 1.05
    assert blockiness(blocky) > 1.5
    region = np.zeros((256, 256), bool)
    region[64:192, 64:192] = True
    assert blockiness(np.where(region[..., None], blocky, noise), ~region) < 1.05  # only the region counts


def _shaded_disc(size=1024, color=(34, 139, 34)):
    """A smoothly shaded, saturated disc (a flat-colored product under soft light), dithered as the
    recolor stage leaves it. Returns (rgb, alpha)."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    alpha = ((((xx - 0.5) ** 2 + (yy - 0.5) ** 2) < 0.16) * 255).astype(np.uint8)
    shade = 0.55 + 0.45 * (1 - 0.8 * xx - 0.4 * yy)
    rng = np.random.default_rng(1)
    noise = rng.random((size, size, 1)) - rng.random((size, size, 1))
    rgb = np.asarray(color) * shade[..., None] + noise
    rgb = np.where(alpha[..., None] > 0, rgb, 255)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8), alpha


def test_smooth_saturated_colors_are_encoded_without_blocks_within_the_byte_limit():
    import cv2

    from stages.export.blocking import blockiness
    from stages.export.render import BLOCKING_MARGIN, _save

    rgb, alpha = _shaded_disc()
    region = cv2.erode((alpha >= 250).view(np.uint8), np.ones((9, 9), np.uint8)) > 0
    allowed = blockiness(rgb, region) + BLOCKING_MARGIN
    preset = get_preset("shopify").model_copy(update={"width": 1024, "height": 1024})
    old = _save(Image.fromarray(rgb), "JPEG", None, quality=preset.quality, subsampling=2)  # 4:2:0 as before
    decoded = np.asarray(Image.open(io.BytesIO(old)).convert("RGB"))
    assert blockiness(decoded, region) > allowed  # the trap is real

    data = encode(Rendered(rgb, alpha, kind="packshot", preset=preset.name), preset)
    img = Image.open(io.BytesIO(data))
    assert {s[1:3] for s in img.layer} == {(1, 1)}  # 4:4:4: chroma kept whole
    assert blockiness(np.asarray(img.convert("RGB")), region) <= allowed
    assert len(data) <= preset.max_bytes and check(data, preset, alpha) == []


def test_auto_subsampling_falls_back_to_420_only_when_444_does_not_fit():
    from stages.export.render import _save

    rgb, alpha = _shaded_disc(512)
    rng = np.random.default_rng(0)
    rgb = np.clip(rgb.astype(int) + rng.integers(-25, 25, rgb.shape), 0, 255).astype(np.uint8)  # costly
    item = Rendered(rgb, alpha, kind="packshot", preset="shop")
    roomy = SHOP.model_copy(update={"width": 512, "height": 512, "max_bytes": None, "min_quality": 80})
    assert {s[1:3] for s in Image.open(io.BytesIO(encode(item, roomy))).layer} == {(1, 1)}
    img = Image.fromarray(rgb)
    at_min = {sub: len(_save(img, "JPEG", None, quality=80, subsampling=sub)) for sub in (0, 2)}
    tight = roomy.model_copy(update={"max_bytes": (at_min[0] + at_min[2]) // 2})  # 4:4:4 cannot fit
    data = encode(item, tight)
    assert len(data) <= tight.max_bytes
    assert (2, 2) in {s[1:3] for s in Image.open(io.BytesIO(data)).layer}  # so 4:2:0, rather than too big
