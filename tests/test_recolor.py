"""Color variants: targets hit on shaded synthetic objects, labels and background untouched."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
from PIL import Image

from packshot.colors import parse_color
from packshot.errors import PackshotError
from packshot.types import Product, Rendered
from stages.recolor import find_main_material, load_material_mask, recolor, recolor_variants
from stages.recolor.material import WORK_SIDE

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import colour


def _to_linear(c):
    c = np.asarray(c, np.float64) / 255
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _to_srgb(lin):
    lin = np.clip(lin, 0, 1)
    return np.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055) * 255


def shaded_object(base, size=160, seed=0, label_color=(240, 238, 230)):
    """A lit, textured sphere with a highlight and a flat label, on white.

    Returns (rgb HxWx3 uint8, alpha HxW uint8, material bool HxW, label bool HxW)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    r = 0.4
    d2 = ((xx - 0.5) ** 2 + (yy - 0.5) ** 2) / r**2
    inside = d2 < 1
    nz = np.sqrt(np.clip(1 - d2, 0, 1))
    light = np.array([-0.4, -0.5, 0.77]) / np.linalg.norm([-0.4, -0.5, 0.77])
    diffuse = np.clip((xx - 0.5) / r * light[0] + (yy - 0.5) / r * light[1] + nz * light[2], 0, 1)
    shade = (0.35 + 0.65 * diffuse) * (1 + 0.05 * np.sin(xx * size) * np.sin(yy * size)
                                       + rng.normal(0, 0.02, (size, size)))
    lin = _to_linear(base) * shade[..., None]
    half = light + [0, 0, 1]
    half /= np.linalg.norm(half)
    spec = np.clip((xx - 0.5) / r * half[0] + (yy - 0.5) / r * half[1] + nz * half[2], 0, 1) ** 60 * 0.5
    lin += spec[..., None]
    label = inside & (np.abs(xx - 0.5) < 0.1) & (np.abs(yy - 0.65) < 0.06)
    lin[label] = _to_linear(label_color) * shade[label][:, None]
    rgb = np.where(inside[..., None], _to_srgb(lin), 255).round().astype(np.uint8)
    alpha = inside.astype(np.uint8) * 255
    return rgb, alpha, inside & ~label, label


def _lab(rgb_uint8):
    return colour.XYZ_to_Lab(colour.sRGB_to_XYZ(np.asarray(rgb_uint8, np.float64) / 255))


def _median_delta_e(rgb, region, target_rgb):
    median = np.median(_lab(rgb[region]), axis=0)
    return float(colour.delta_E(median, _lab(target_rgb), method="CIE 2000"))


@pytest.mark.parametrize("base", [(178, 40, 40), (40, 60, 150), (200, 180, 140)])
@pytest.mark.parametrize("name", ["Navy", "Forest Green", "Mustard", "Dusty Rose", "Heather Grey"])
def test_recolor_hits_target_and_keeps_label_and_background(base, name):
    rgb, alpha, material, label = shaded_object(base)
    color = parse_color(name)
    item = Rendered(rgb, alpha, kind="packshot", preset="shopify")
    out = recolor(item, color)
    assert _median_delta_e(out.rgb, material, color.rgb) < 3.0
    assert np.array_equal(out.rgb[label], rgb[label]), "the label must stay byte-identical"
    assert np.array_equal(out.rgb[alpha == 0], rgb[alpha == 0]), "outside the product nothing changes"
    assert out.variant == color.slug and out.kind == "packshot" and out.preset == "shopify"
    assert not out.generated and out.rgb is not rgb


@pytest.mark.parametrize("name", ["Sage", "Navy"])
def test_shading_structure_is_preserved(name):
    from skimage.metrics import structural_similarity

    rgb, alpha, material, _ = shaded_object((178, 40, 40))
    out = recolor(Rendered(rgb, alpha, kind="packshot", preset="x"), parse_color(name))
    region = material & (find_main_material(rgb, alpha) == 255)  # the recolored pixels
    before, after = _lab(rgb)[..., 0], _lab(out.rgb)[..., 0]
    rel_before = np.where(region, before / np.median(before[region]), 0)
    rel_after = np.where(region, after / np.median(after[region]), 0)
    _, ssim_map = structural_similarity(rel_before, rel_after, data_range=2.5, full=True)
    assert ssim_map[region].mean() >= 0.95


def test_highlight_stays_brighter_than_the_shade():
    rgb, alpha, material, _ = shaded_object((40, 60, 150))
    out = recolor(Rendered(rgb, alpha, kind="packshot", preset="x"), parse_color("Burgundy"))
    light = _lab(out.rgb)[..., 0]
    assert np.percentile(light[material], 99) - np.percentile(light[material], 5) > 30


def test_generated_scene_keeps_its_flags_and_unmatted_pixels():
    rgb, alpha, material, _ = shaded_object((40, 60, 150))
    rgb[alpha == 0] = (90, 120, 60)  # a "scene" around the product
    scene = Rendered(rgb, alpha, kind="scene", preset="shopify", generated=True, scene=2)
    out = recolor(scene, parse_color("Coral"))
    assert out.generated and out.kind == "scene" and out.scene == 2
    assert np.array_equal(out.rgb[alpha == 0], rgb[alpha == 0])


def test_auto_material_excludes_label_of_other_hue():
    rgb, alpha, material, label = shaded_object((40, 60, 150), label_color=(220, 40, 40))
    mask = find_main_material(rgb, alpha)
    assert (mask[label] == 0).all()
    assert (mask[material] >= 128).mean() > 0.95


@pytest.mark.parametrize("label_color", [(240, 238, 230), (20, 20, 20)])
def test_large_image_keeps_label_edges_exact(label_color):
    """Above WORK_SIDE the material is found on a pyramid level and upsampled: the label's edge
    pixels must still stay out of the mask, and the material's rim must still be recolored."""
    rgb, alpha, material, label = shaded_object((178, 40, 40), size=1100, label_color=label_color)
    assert max(rgb.shape[:2]) * 0.8 > WORK_SIDE  # the product's box is downscaled
    item = Rendered(rgb, alpha, kind="packshot", preset="x")
    out = recolor(item, parse_color("Forest Green"))
    assert np.array_equal(out.rgb[label], rgb[label])
    rim = material & (cv2.erode(alpha, np.ones((9, 9), np.uint8)) == 0)
    changed = np.any(out.rgb != rgb, axis=-1)
    assert changed[rim].mean() > 0.95
    assert _median_delta_e(out.rgb, material, parse_color("Forest Green").rgb) < 3.0


def test_merchant_mask_limits_the_recolor(tmp_path):
    rgb, alpha, material, _ = shaded_object((178, 40, 40))
    left = np.zeros_like(alpha)
    left[:, : alpha.shape[1] // 2] = 255
    out = recolor(Rendered(rgb, alpha, kind="packshot", preset="x"), parse_color("Navy"), left)
    right = material.copy()
    right[:, : alpha.shape[1] // 2 + 1] = False
    assert np.array_equal(out.rgb[right], rgb[right])
    assert _median_delta_e(out.rgb, material & (left > 0), parse_color("Navy").rgb) < 3.0


def test_recolor_variants_matches_single_calls():
    rgb, alpha, _, _ = shaded_object((178, 40, 40))
    item = Rendered(rgb, alpha, kind="packshot", preset="x")
    colors = [parse_color("Navy"), parse_color("Olive")]
    many = recolor_variants(item, colors)
    assert [m.variant for m in many] == ["navy", "olive"]
    assert np.array_equal(many[0].rgb, recolor(item, colors[0]).rgb)


def test_empty_matte_leaves_image_with_a_note():
    rgb = np.full((32, 32, 3), 200, np.uint8)
    empty = Rendered(rgb, np.zeros((32, 32), np.uint8), kind="packshot", preset="x")
    out = recolor(empty, parse_color("Navy"))
    assert np.array_equal(out.rgb, rgb) and "no main material" in out.notes[-1]


def test_wrong_mask_size_is_a_clear_error():
    rgb, alpha, _, _ = shaded_object((178, 40, 40), size=64)
    with pytest.raises(PackshotError, match="map it into the image"):
        item = Rendered(rgb, alpha, kind="packshot", preset="x")
        recolor(item, parse_color("Navy"), np.zeros((10, 10), np.uint8))


def test_load_material_mask_gray_alpha_and_resize(tmp_path):
    gray = np.zeros((40, 60), np.uint8)
    gray[10:30, 10:50] = 255
    Image.fromarray(gray).save(tmp_path / "m.png")
    assert np.array_equal(load_material_mask(tmp_path / "m.png"), gray)
    resized = load_material_mask(tmp_path / "m.png", (120, 80))
    assert resized.shape == (80, 120) and resized[40, 60] == 255 and resized[2, 2] == 0
    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[..., 3] = gray
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert np.array_equal(load_material_mask(tmp_path / "a.png"), gray)


def test_load_material_mask_errors(tmp_path):
    with pytest.raises(PackshotError, match="does not exist"):
        load_material_mask(tmp_path / "nope.png")
    Image.fromarray(np.full((40, 60), 255, np.uint8)).save(tmp_path / "m.png")
    with pytest.raises(PackshotError, match="aspect ratio"):
        load_material_mask(tmp_path / "m.png", (100, 100))
    Image.fromarray(np.zeros((40, 60), np.uint8)).save(tmp_path / "empty.png")
    with pytest.raises(PackshotError, match="empty"):
        load_material_mask(tmp_path / "empty.png")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(PackshotError, match="not a readable image"):
        load_material_mask(tmp_path / "junk.png")


def test_mask_blends_soft_edges():
    rgb, alpha, _, _ = shaded_object((178, 40, 40), size=64)
    soft = cv2.GaussianBlur(alpha, (7, 7), 0)
    out = recolor(Rendered(rgb, soft, kind="packshot", preset="x"), parse_color("Navy"))
    assert np.array_equal(out.rgb[soft == 0], rgb[soft == 0])


# --- colors relative to the photo (issue 22) ---------------------------------------------------------

MUSTARD_PHOTO = (150, 112, 30)  # how a mustard (#E1AD01) cushion photographs: darker, less saturated


def _product(colors: str, title: str = "Linen cushion", photo_color: str | None = None) -> Product:
    return Product(sku="P-1", title=title, images=["p.jpg"],
                   colors=[parse_color(c) for c in colors.split("|")],
                   photo_color=parse_color(photo_color) if photo_color else None, source_file="c.csv",
                   source_line=2)


def _variants(rgb, alpha, product, **kw):
    item = Rendered(rgb, alpha, kind="packshot", preset="shopify")
    return {v.variant: v for v in recolor_variants(item, product.colors, product=product, **kw)}


def test_the_variant_in_the_products_own_color_is_the_photo():
    """A mustard product offered in Mustard: that variant is the photo (no lemon-yellow 'swatch' look)."""
    rgb, alpha, material, _ = shaded_object(MUSTARD_PHOTO, size=200)
    out = _variants(rgb, alpha, _product("Mustard|Forest Green|Charcoal"))
    mustard = out["mustard"]
    de = colour.delta_E(_lab(mustard.rgb[alpha > 0]), _lab(rgb[alpha > 0]), method="CIE 2000")
    assert float(np.mean(de)) <= 1.5 and np.array_equal(mustard.rgb, rgb)
    assert mustard.recolor.unchanged and mustard.recolor.own_color == "Mustard #E1AD01"
    assert mustard.recolor.de_shifted == 0.0 and mustard.recolor.de_swatch > 10  # the swatch is far off
    # the exact-swatch mode still puts the median on the swatch, as before
    exact = _variants(rgb, alpha, _product("Mustard|Forest Green"), mode="exact-swatch")["mustard"]
    assert _median_delta_e(exact.rgb, material, parse_color("Mustard").rgb) < 3.0
    assert exact.recolor.mode == "exact-swatch" and not exact.recolor.unchanged


def test_own_color_from_the_catalog_column_or_the_title():
    rgb, alpha, _, _ = shaded_object((95, 105, 50), size=120)  # olive-ish, but the catalog says otherwise
    given = _variants(rgb, alpha, _product("Olive|Navy", photo_color="Navy"))
    assert given["navy"].recolor.unchanged and "photo_color" in given["navy"].recolor.own_color_source
    assert not given["olive"].recolor.unchanged
    named = _variants(rgb, alpha, _product("Olive|Sage", title="Canvas tote, sage"))
    assert named["sage"].recolor.unchanged and named["sage"].recolor.own_color_source == "named in the title"


def test_relative_variants_are_the_photo_shifted_with_its_shading():
    """Each variant: lit mid-tones within 3 delta-E 2000 of the photographed product shifted from its
    own color to the target; the lightness structure kept (SSIM of (L*+16)/median >= 0.95); and a darker
    target stays darker than the photo, a lighter one lighter."""
    from skimage.metrics import structural_similarity

    from stages.recolor.transform import shifted, srgb_to_lab

    rgb, alpha, material, _ = shaded_object(MUSTARD_PHOTO, size=200)
    out = _variants(rgb, alpha, _product("Mustard|Navy|Sage|Terracotta|Cream"))
    lab_photo = cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
    light = lab_photo[..., 0]
    region = material & (find_main_material(rgb, alpha) == 255)
    lo, hi = np.percentile(light[region], [50, 90])
    lit = region & (light >= lo) & (light <= hi)
    median_l = np.median(light[region])
    for name in ("navy", "sage", "terracotta", "cream"):
        v = out[name]
        target = srgb_to_lab(parse_color(name).rgb)
        reference = shifted(lab_photo[lit], srgb_to_lab(parse_color("Mustard").rgb), target)
        got = cv2.cvtColor(v.rgb.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)[lit]
        assert float(np.mean(colour.delta_E(got, reference, method="CIE 2000"))) <= 3.0, name
        after = cv2.cvtColor(v.rgb.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)[..., 0]
        # the light pattern: D = L* + 16 relative to its median (the model keeps it; L* / median moves
        # with any change of lightness, since D, not L*, scales with the albedo)
        rb = np.where(region, (light + 16) / (median_l + 16), 0)
        ra = np.where(region, (after + 16) / (np.median(after[region]) + 16), 0)
        _, ssim_map = structural_similarity(rb, ra, data_range=2.5, full=True)
        assert ssim_map[region].mean() >= 0.95, name
        assert v.recolor.de_shifted <= 3.0
        darker = target[0] < srgb_to_lab(parse_color("Mustard").rgb)[0]
        assert (np.median(after[region]) < median_l) == darker, name


def _sneaker(upper, sole=(236, 236, 232), size=(160, 320)):
    """A side view of a shaded sneaker: an upper of one material over a sole of another.
    Returns (rgb, alpha, upper bool, sole bool)."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    upper_mask = ((xx - w * 0.55) / (w * 0.42)) ** 2 + ((yy - h * 0.62) / (h * 0.5)) ** 2 < 1
    upper_mask &= yy < h * 0.72
    sole_mask = (yy >= h * 0.72) & (yy < h * 0.86) & (xx > w * 0.08) & (xx < w * 0.97)
    shade = 0.55 + 0.45 * (1 - yy / h) + np.random.default_rng(3).normal(0, 0.015, (h, w))
    rgb = np.full((h, w, 3), 255.0)
    rgb[upper_mask] = np.asarray(upper) * shade[upper_mask][:, None]
    rgb[sole_mask] = np.asarray(sole) * (0.9 + 0.1 * shade[sole_mask])[:, None]
    alpha = ((upper_mask | sole_mask) * 255).astype(np.uint8)
    return np.clip(rgb, 0, 255).round().astype(np.uint8), alpha, upper_mask, sole_mask


def test_a_sneaker_recolor_without_a_mask_keeps_the_sole():
    rgb, alpha, upper, sole = _sneaker(upper=(40, 55, 120))  # navy canvas over a white rubber sole
    out = _variants(rgb, alpha, _product("Navy|Burgundy|Forest Green", title="Canvas sneaker"))
    for name in ("burgundy", "forest-green"):
        v = out[name]
        assert np.array_equal(v.rgb[sole], rgb[sole]), f"{name}: the sole was repainted"
        assert not np.array_equal(v.rgb[upper], rgb[upper])
        assert v.recolor.review_reasons == []  # the colors separate cleanly: nothing to check


def test_white_on_white_parts_are_flagged_for_review():
    """A white upper on a white sole cannot be told apart by color: the variant says so."""
    rgb, alpha, _, _ = _sneaker(upper=(225, 225, 222))
    out = _variants(rgb, alpha, _product("Off-White|Charcoal", title="Leather sneaker"))
    assert any("neutral" in r and "recolor_mask" in r for r in out["charcoal"].recolor.review_reasons)


def test_recolor_of_a_smooth_gradient_is_dithered_not_banded():
    """A smooth shading ramp recolored with a strong gain: computed in float and dithered, so each
    flat column gets a fine grain (not one flat 8-bit level that JPEG codes as a band) and the
    neighbouring columns' mean levels step smoothly (the 8-bit Lab round trip made steps of 4)."""
    ramp = np.linspace(0.35, 1.0, 512)
    rgb = np.clip(np.outer(np.ones(64), ramp)[..., None] * np.array([70, 85, 110]), 0, 255).astype(np.uint8)
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    out = recolor(Rendered(rgb, alpha, kind="packshot", preset="x"), parse_color("Forest Green"))
    green = out.rgb[..., 1].astype(np.float64)
    assert green.std(axis=0).mean() > 0.3
    assert np.abs(np.diff(green.mean(axis=0))).max() < 3.0
    again = recolor(Rendered(rgb, alpha, kind="packshot", preset="x"), parse_color("Forest Green"))
    assert np.array_equal(again.rgb, out.rgb)  # the dither is deterministic: same file every run


def test_photo_color_column_is_read_and_checked(tmp_path):
    from packshot.catalog.reading import load_catalog

    (tmp_path / "c.csv").write_text(
        "sku,title,image,colors,photo_color\n"
        "A,Cushion,a.jpg,Mustard|Navy,mustard\n"
        "B,Tote,b.jpg,Olive,#6B7340\n"
        "C,Mug,c.jpg,Navy,Navvy\n", encoding="utf-8")
    catalog = load_catalog(tmp_path / "c.csv")
    by_sku = {p.sku: p for p in catalog.products}
    assert by_sku["A"].photo_color == parse_color("Mustard")  # one of its colors, by name
    assert by_sku["B"].photo_color.hex == "#6B7340"
    (error,) = catalog.errors
    assert error.sku == "C" and error.column == "photo_color" and "Navvy" in error.message
