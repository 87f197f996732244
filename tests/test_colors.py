"""Catalog color options -> sRGB: merchant names, hex values, and helpful errors."""

import csv
import re
from importlib import resources

import pytest

from packshot.colors import named_colors, parse_color


@pytest.mark.parametrize(
    ("text", "rgb"),
    [
        ("Navy", (0x1F, 0x2A, 0x44)),
        ("Forest Green", (0x22, 0x8B, 0x22)),
        ("Off-White", (0xF5, 0xF3, 0xEE)),
        ("off white", (0xF5, 0xF3, 0xEE)),
        ("HEATHER GRAY", (0x9A, 0x9A, 0x9A)),
        ("Dark Grey", (0x55, 0x55, 0x55)),  # the merchant table wins over CSS darkgray (lighter than gray)
        ("rebeccapurple", (0x66, 0x33, 0x99)),  # CSS names still work
        ("#1f2a44", (0x1F, 0x2A, 0x44)),
        ("Midnight=#102030", (0x10, 0x20, 0x30)),
    ],
)
def test_parse_known_colors(text, rgb):
    assert parse_color(text).rgb == rgb


def test_name_and_slug_kept_as_written():
    color = parse_color("Forest Green")
    assert color.name == "Forest Green" and color.slug == "forest-green" and color.hex == "#228B22"


def test_unknown_name_suggests_close_names():
    with pytest.raises(ValueError, match="unknown color name 'Navvy'.*'navy'"):
        parse_color("Navvy")
    with pytest.raises(ValueError, match="'forest green'"):
        parse_color("Forrest Green")


def test_unknown_name_without_close_match_says_how_to_give_hex():
    with pytest.raises(ValueError, match=r"Name=#|=#1F2A44"):
        parse_color("Qwxyz")


def test_bad_hex_is_an_error():
    with pytest.raises(ValueError, match="bad hex"):
        parse_color("Midnight=#12345G")


def test_table_covers_common_apparel_and_home_names_with_sources():
    text = resources.files("packshot").joinpath("data/color_names.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    assert all(re.fullmatch(r"#[0-9A-F]{6}", r["hex"]) for r in rows)
    assert {r["source"] for r in rows} <= {"css", "wikipedia", "packshot"}
    common = ["navy", "charcoal", "burgundy", "olive", "khaki", "camel", "taupe", "ivory", "cream", "sage",
              "teal", "coral", "mustard", "blush", "rust", "terracotta", "oatmeal", "stone", "denim",
              "heather grey"]
    missing = [n for n in common if n not in named_colors()]
    assert not missing
