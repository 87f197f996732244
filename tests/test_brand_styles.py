"""Brand style YAML: the shipped examples load, and mistakes give file + field + reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from packshot.errors import ConfigError
from packshot.schemas.brand import available_brands, load_brand_style
from packshot.schemas.presets import BUILTIN

SHIPPED = Path(__file__).resolve().parents[1] / "brand_styles"

GOOD = """
name: {name}
scene_prompts: ["{{title}} on a table"]
palette: ["#FFFFFF", "#101010"]
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / f"{name}.yaml").write_text(text)
    return tmp_path


def test_shipped_brands_are_valid_and_render_known_presets():
    names = available_brands(SHIPPED)
    assert {"nordic-home", "urban-street"} <= set(names)
    for name in names:
        style = load_brand_style(name, SHIPPED)
        assert style.name == name and style.scene_prompts and style.palette
        assert set(style.presets) <= set(BUILTIN)
        assert style.source_file == (SHIPPED / f"{name}.yaml").resolve()


def test_seeds_per_scene_cycle_and_video_passes_through():
    style = load_brand_style("urban-street", SHIPPED)
    assert [style.seed_for(i) for i in range(4)] == [42, 4242, 424242, 42]
    assert style.video  # free-form, for the video stage


def test_minimal_brand_gets_defaults(tmp_path):
    style = load_brand_style("mini", write(tmp_path, "mini", GOOD.format(name="mini")))
    assert style.lora is None and style.scenes_per_product == 2 and style.presets == ["shopify"]


def test_unknown_brand_lists_the_available_ones():
    with pytest.raises(ConfigError, match="nordic-home.*urban-street"):
        load_brand_style("does-not-exist", SHIPPED)


@pytest.mark.parametrize(
    "text, field, reason",
    [
        ("name: bad\nscene_prompts: []\n", "scene_prompts", "at least 1"),
        ("name: bad\nscene_prompts: [x]\npalette: [red]\n", "palette", "#RRGGBB"),
        ("name: bad\nscene_prompts: ['{title} by {designer}']\n", "scene_prompts", "designer"),
        ("name: bad\nscene_prompts: [x]\nscenes_per_product: many\n", "scenes_per_product", "integer"),
        ("name: bad\nscene_prompts: [x]\nlora: {scale: 0.5}\n", "lora.source", "Field required"),
        (
            "name: bad\nscene_prompts: [x]\nlora: {source: a/b, scale: 5}\n",
            "lora.scale",
            "less than or equal",
        ),
        ("name: bad\nscene_prompts: [x]\nscene_promts: [y]\n", "scene_promts", "Extra inputs"),
        ("name: other\nscene_prompts: [x]\n", "name", "must match the file name"),
    ],
)
def test_bad_fields_name_file_field_and_reason(tmp_path, text, field, reason):
    write(tmp_path, "bad", text)
    with pytest.raises(ConfigError) as err:
        load_brand_style("bad", tmp_path)
    message = str(err.value)
    assert str(tmp_path / "bad.yaml") in message and f"'{field}'" in message and reason in message


def test_broken_yaml_and_wrong_shape_are_reported(tmp_path):
    write(tmp_path, "broken", "name: broken\nscene_prompts: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        load_brand_style("broken", tmp_path)
    write(tmp_path, "listy", "- a\n- b\n")
    with pytest.raises(ConfigError, match="listy.yaml: a brand style is a mapping"):
        load_brand_style("listy", tmp_path)


def test_brand_name_cannot_escape_the_directory(tmp_path):
    with pytest.raises(ConfigError, match="plain name"):
        load_brand_style("../secrets", tmp_path)
