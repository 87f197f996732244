"""Background replacement: composition geometry, fill mask, product fidelity, backends, fallback."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from packshot.config import GenerativeSettings
from packshot.errors import ModelUnavailableError
from packshot.imaging import place_product
from packshot.registry import models
from packshot.schemas.presets import Preset
from packshot.types import Cutout, Product
from stages.background import get_background_generator, render_background
from stages.background.compose import fill_holes, finish_generated, generation_size, protected_region

PRESET = Preset(name="test", width=192, height=160, fill_fraction=0.8)


def vase_cutout() -> Cutout:
    """A 64 x 40 px product (soft-edged ellipse body, solid neck) with transparent margins."""
    rgba = np.zeros((80, 70, 4), np.uint8)
    cv2.ellipse(rgba, (35, 55), (20, 14), 0, 0, 360, (190, 50, 40, 255), -1, cv2.LINE_AA)
    rgba[16:50, 28:43] = (40, 90, 200, 255)
    rgba[20:30, 30:40, :3] = np.arange(100, 200, dtype=np.uint8).reshape(10, 10)[..., None]  # a "label"
    return Cutout(rgba, backend="test")


def product(sku: str = "VASE-1") -> Product:
    return Product(
        sku=sku,
        title="Red ceramic vase",
        category="home decor",
        images=["vase.jpg"],
        source_file="catalog.csv",
        source_line=2,
    )


def solid_inside(alpha: np.ndarray) -> np.ndarray:
    """The product at full opacity, eroded by 2 px: the region the fidelity promise covers."""
    return cv2.erode((alpha == 255).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0


@pytest.fixture(scope="module")
def tiny():
    return get_background_generator(GenerativeSettings(backend="tiny", fill_fraction=0.5), "cpu")


def test_generation_size_keeps_aspect_in_multiples_of_16():
    assert generation_size(2048, 2048, 1024) == (1024, 1024)
    assert generation_size(2000, 1500, 1024) == (1024, 768)
    w, h = generation_size(1080, 1920, 1360)
    assert w % 16 == 0 and h % 16 == 0 and h == 1360 and abs(w / h - 1080 / 1920) < 0.02
    w, h = generation_size(300, 200, 1024)  # small presets are generated at their own size, snapped
    assert w % 16 == 0 and h % 16 == 0 and abs(w - 300) <= 8 and abs(h - 200) <= 8


def test_product_stands_on_the_floor_line_at_the_fill_fraction():
    gen = get_background_generator(
        GenerativeSettings(backend="classic", fill_fraction=0.6, floor_line=0.8), "cpu"
    )
    out = render_background(vase_cutout(), product(), None, PRESET, gen)
    assert out.rgb.shape == (160, 192, 3) and out.product_alpha.shape == (160, 192)
    ys, xs = np.nonzero(out.product_alpha > 8)
    assert ys.max() + 1 == round(160 * 0.8)  # the base sits on the floor line
    height, width = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    assert abs(height - 0.6 * 160) <= 1  # height binds first for this tall product
    assert abs((xs.min() + xs.max() + 1) / 2 - 96) <= 1 and width < height
    assert out.kind == "background" and out.generated is False


def test_contact_shadow_darkens_the_floor_under_the_product():
    cut = vase_cutout()
    lit = render_background(
        cut,
        product(),
        None,
        PRESET,
        get_background_generator(GenerativeSettings(backend="classic", shadow_strength=0.0), "cpu"),
    )
    shaded = render_background(
        cut,
        product(),
        None,
        PRESET,
        get_background_generator(GenerativeSettings(backend="classic", shadow_strength=0.4), "cpu"),
    )
    ys, xs = np.nonzero(lit.product_alpha > 0)
    below = (slice(ys.max() + 1, ys.max() + 3), slice(xs.min() + 5, xs.max() - 5))
    assert shaded.rgb[below].mean() < lit.rgb[below].mean() - 10
    corner = (slice(0, 10), slice(0, 10))
    assert np.array_equal(shaded.rgb[corner], lit.rgb[corner])  # the shadow stays under the product


@pytest.mark.parametrize(
    "canvas, gen, grow",
    [((192, 160), (64, 48), 1), ((2048, 2048), (1024, 1024), 2), ((300, 500), (80, 128), 0)],
)
def test_fill_mask_never_covers_the_product(canvas, gen, grow):
    placement = place_product(vase_cutout(), canvas, 0.6, anchor="floor")
    _, alpha = placement.layer()
    mask = ~protected_region(alpha, gen, grow)  # True = the model may repaint
    on_canvas = cv2.resize(mask.astype(np.uint8), canvas, interpolation=cv2.INTER_NEAREST) > 0
    assert not (on_canvas & (alpha > 0)).any()
    # ... and it covers the background beyond a thin band around the product.
    far = (
        cv2.dilate(
            (alpha > 0).astype(np.uint8),
            np.ones((3, 3), np.uint8),
            iterations=int(np.ceil((grow + 2) * canvas[0] / gen[0])),
        )
        == 0
    )
    assert on_canvas[far].all()
    assert mask.mean() > 0.6


def test_product_pixels_are_byte_identical_after_generation(tiny):
    cut = vase_cutout()
    x0, y0, x1, y1 = cut.bbox
    # A frame exactly twice the product's height at fill 0.5: placement keeps the source scale (1:1),
    # so the output must hold the source cutout's own pixels.
    preset = Preset(name="exact", width=2 * (y1 - y0) + 20, height=2 * (y1 - y0))
    out = render_background(cut, product(), None, preset, tiny)
    assert out.generated is True and out.kind == "background"
    ys, xs = np.nonzero(out.product_alpha > 8)
    source = cut.rgba[y0:y1, x0:x1]
    placed = out.rgb[ys.min() : ys.min() + (y1 - y0), xs.min() : xs.min() + (x1 - x0)]
    inside = solid_inside(source[..., 3])
    assert inside.sum() > 500
    assert np.array_equal(placed[inside], source[..., :3][inside])
    # The background really was generated: it is not the classic backdrop.
    classic = render_background(
        cut,
        product(),
        None,
        preset,
        get_background_generator(GenerativeSettings(backend="classic", fill_fraction=0.5), "cpu"),
    )
    outside = out.product_alpha == 0
    assert np.abs(out.rgb[outside].astype(int) - classic.rgb[outside]).mean() > 5


def test_product_fidelity_when_the_product_is_rescaled(tiny):
    cut = vase_cutout()
    preset = Preset(name="big", width=320, height=256)
    out = render_background(cut, product(), None, preset, tiny)
    rgb, alpha = place_product(cut, (320, 256), 0.5, anchor="floor", floor_line=0.86).layer()
    assert np.array_equal(out.product_alpha, alpha)
    inside = solid_inside(alpha)
    assert np.array_equal(out.rgb[inside], rgb[inside])


def test_reruns_are_reproducible_and_seeds_follow_the_sku(tiny):
    cut = vase_cutout()
    first = render_background(cut, product("A-1"), None, PRESET, tiny)
    again = render_background(cut, product("A-1"), None, PRESET, tiny)
    other = render_background(cut, product("B-2"), None, PRESET, tiny)
    assert np.abs(first.rgb.astype(int) - again.rgb).max() <= 1
    assert np.abs(first.rgb.astype(int) - other.rgb).mean() > 2
    assert [n for n in first.notes if n.startswith("seed")] != [
        n for n in other.notes if n.startswith("seed")
    ]
    assert any("Red ceramic vase" in n and "home decor" in n for n in first.notes if n.startswith("prompt"))


def test_tiny_model_is_loaded_once_through_the_registry(tiny):
    again = get_background_generator(GenerativeSettings(backend="tiny"), "cpu")
    assert again.pipe is tiny.pipe
    assert models.load_counts[tiny.key] == 1
    assert tiny.licence and "tiny" in tiny.identity


def test_color_drift_of_the_model_is_undone_at_the_seam():
    guide = np.full((32, 32, 3), 120, np.uint8)
    guide[:, :16] = (200, 60, 40)  # product on the left half
    protect = np.zeros((32, 32), bool)
    protect[:, :18] = True
    core = np.zeros((32, 32), bool)
    core[2:-2, 2:14] = True
    drifted = np.clip(guide.astype(int) + (12, -8, 6), 0, 255).astype(np.uint8)  # a VAE-like shift
    background = finish_generated(drifted, guide, protect, core, (64, 64))
    assert background.shape == (64, 64, 3)
    assert np.abs(background[:, 40:].astype(int) - 120).max() <= 1  # generated area shifted back
    assert np.abs(background[:, :30].astype(int) - 120).max() <= 1  # product area filled from surroundings


def test_fill_holes_keeps_known_pixels_and_fills_smoothly():
    img = np.zeros((40, 60, 3), np.uint8)
    img[:, :30] = 50
    img[:, 30:] = 150
    known = np.ones((40, 60), bool)
    known[10:30, 20:40] = False
    out = fill_holes(img, known)
    assert np.array_equal(out[known], img[known])
    hole = out[10:30, 20:40, 0].astype(int)
    assert hole.min() >= 50 and hole.max() <= 150
    assert hole[:, 0].mean() < hole[:, -1].mean()  # follows the colors around it


def test_no_weights_configured_falls_back_to_classic_and_says_why():
    gen = get_background_generator(GenerativeSettings(), "cpu")
    assert gen.name == "classic" and gen.generated is False
    assert any("PACKSHOT_GENERATIVE__FLUX_MODEL" in n for n in gen.notes)
    out = render_background(vase_cutout(), product(), None, PRESET, gen)
    assert out.generated is False


def test_flux_backend_without_model_names_the_setting():
    with pytest.raises(ModelUnavailableError, match="PACKSHOT_GENERATIVE__FLUX_MODEL"):
        get_background_generator(GenerativeSettings(backend="flux"), "cpu")


def test_configured_but_missing_model_says_where_weights_live(tmp_path):
    with pytest.raises(ModelUnavailableError, match="huggingface.co/black-forest-labs/FLUX.1-Fill-dev"):
        get_background_generator(GenerativeSettings(flux_model=str(tmp_path / "nope")), "cpu")
    with pytest.raises(ModelUnavailableError, match="model_index.json"):
        get_background_generator(GenerativeSettings(flux_model=str(tmp_path)), "cpu")


def test_flux_backend_loads_a_local_directory_offline(tiny):
    gen = get_background_generator(GenerativeSettings(backend="flux", flux_model=str(_tiny_dir())), "cpu")
    assert gen.name == "flux" and gen.generated and "Non-Commercial" in gen.licence
    assert gen.long_side == 1024


def _tiny_dir():
    from stages.background.tiny import default_cache_dir

    return default_cache_dir()
