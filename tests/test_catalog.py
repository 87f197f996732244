"""Catalog intake: the three formats, bad rows with their line and column, and file-level problems."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from packshot.catalog import CatalogError, load_catalog, report_json, validation_report
from packshot.errors import PackshotError

SAMPLES = Path(__file__).resolve().parents[1] / "catalogs" / "samples"
SHOPIFY_CDN = "https://cdn.shopify.com/s/files/1/0612/3456/7890/products/"
WOO_UPLOADS = "https://shop.example.com/wp-content/uploads/2024/03/"
HEADER = "sku,title,image,category,brand_style,colors,bbox,recolor_mask\n"


def write(tmp_path: Path, text: str, name: str = "catalog.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def problems(catalog) -> list[tuple[int, str | None]]:
    return [(e.line, e.column) for e in catalog.errors]


def by_sku(catalog) -> dict:
    return {p.sku: p for p in catalog.products}


# ----------------------------------------------------------------------------- the three formats


def test_packshot_sample_reads_every_field():
    catalog = load_catalog(SAMPLES / "packshot_catalog.csv")
    assert catalog.format == "packshot"
    assert catalog.errors == []
    assert [p.sku for p in catalog.products] == ["TEE-001", "MUG-002", "LAMP-003", "BAG-004"]
    tee, mug, lamp, _ = catalog.products
    assert tee.images == ["images/tee-001-front.jpg", "images/tee-001-back.jpg"]  # first is the main image
    assert [(c.name, c.hex) for c in tee.colors] == [("Navy", "#1F2A44"), ("Off-White", "#F5F3EE"),
                                                    ("Sage", "#9CAF88")]
    assert tee.brand_style == "minimal" and tee.recolor_mask == "masks/tee-001-body.png"
    assert mug.title == "Stoneware Mug, 350 ml" and mug.bbox == (40, 60, 980, 1010)
    assert lamp.images[0] == "s3://acme-product-photos/lamp-003/main.jpg"
    assert lamp.colors[0].rgb == (0xB5, 0xA6, 0x42)
    assert [p.source_line for p in catalog.products] == [2, 3, 4, 5]


def test_shopify_export_groups_rows_by_handle():
    catalog = load_catalog(SAMPLES / "shopify_products.csv")
    assert catalog.format == "shopify"
    assert catalog.errors == []
    products = by_sku(catalog)
    assert list(products) == ["classic-oxford-shirt", "linen-throw-pillow", "merino-beanie", "leder-shopper"]

    shirt = products["classic-oxford-shirt"]
    assert shirt.title == "Classic Oxford Shirt"
    # Image Position order (1, 2 from an image-only row, 3 from a variant row), then unseen variant images.
    assert [ref.removeprefix(SHOPIFY_CDN).split("?")[0] for ref in shirt.images] == [
        "oxford-navy-front.jpg", "oxford-navy-back.jpg", "oxford-detail-collar.jpg", "oxford-green-front.jpg"]
    assert [c.name for c in shirt.colors] == ["Navy", "Forest Green"]  # Option2 "Color"; sizes ignored
    assert shirt.category == "Shirt"

    beanie = products["merino-beanie"]
    assert [c.name for c in beanie.colors] == ["Charcoal", "Mustard", "Off-White"]  # "Colour"
    assert [c.name for c in products["leder-shopper"].colors] == ["Black", "Burgundy"]  # German "Farbe"
    assert products["linen-throw-pillow"].colors == []  # "Title / Default Title" is not a color
    assert products["linen-throw-pillow"].category == "Throw Pillows"  # no Type: last taxonomy level
    # HTML bodies span several lines (the shirt 6, pillow and beanie 2 each): rows start where they start.
    assert [p.source_line for p in catalog.products] == [2, 12, 15, 19]


def test_woocommerce_export_groups_variations_under_parent():
    catalog = load_catalog(SAMPLES / "woocommerce_products.csv")  # written with a BOM, as WooCommerce does
    assert catalog.format == "woocommerce"
    assert catalog.errors == []
    products = by_sku(catalog)
    assert list(products) == ["HOOD-ZIP", "MUG-STONE-350", "id-120", "GIFT-WRAP"]

    hoodie = products["HOOD-ZIP"]
    assert [ref.removeprefix(WOO_UPLOADS) for ref in hoodie.images] == [
        "hoodie-front.jpg", "hoodie-back.jpg", "hoodie-navy.jpg", "hoodie-grey.jpg"]  # grey links by SKU
    assert [c.name for c in hoodie.colors] == ["Navy", "Heather Grey"]
    assert hoodie.category == "Hoodies"

    sneaker = products["id-120"]  # variable product without a SKU
    assert sneaker.title == "Canvas Sneaker"
    # The parent's "Colour" values, then a variation's color the parent does not list.
    assert [c.name for c in sneaker.colors] == ["Cream", "Olive", "Sand"]
    assert len(sneaker.images) == 3
    assert products["MUG-STONE-350"].colors == []


# ----------------------------------------------------------------------------- bad rows


def test_bad_packshot_rows_are_reported_and_good_rows_survive():
    catalog = load_catalog(SAMPLES / "packshot_with_errors.csv")
    assert [p.sku for p in catalog.products] == ["TEE-001", "BOWL-008"]
    assert problems(catalog) == [
        (3, "image"), (4, "title"), (5, "sku"), (6, "colors"), (7, "image"), (8, "bbox")]
    messages = {e.line: e.message for e in catalog.errors}
    assert "absolute path" in messages[3] and "catalog's folder" in messages[3]
    assert "line 2" in messages[5]  # the duplicate points at the first use
    assert "'navy'" in messages[6]  # parse_color's suggestion reaches the merchant
    assert "x1 > x0" in messages[8]


def test_duplicate_sku_ignores_case_and_only_second_is_an_error(tmp_path):
    path = write(tmp_path, HEADER + "Tee-1,A,a.jpg\nTEE-1,B,b.jpg\nTEE-2,C,c.jpg\n")
    catalog = load_catalog(path)
    assert [p.title for p in catalog.products] == ["A", "C"]
    assert problems(catalog) == [(3, "sku")]
    assert "line 2" in catalog.errors[0].message


@pytest.mark.parametrize("ref, why", [
    ("file:///etc/passwd", "file:"),
    ("ftp://example.com/a.jpg", "ftp:"),
    ("data:image/png;base64,iVBORw0KGgo=", "data:"),
    ("/srv/photos/a.jpg", "absolute"),
    ("C:\\Users\\anna\\a.jpg", "absolute"),
    ("images/../../secret.jpg", ".."),
    ("..\\a.jpg", ".."),
    ("s3://bucket-only", "s3://bucket/key"),
])
def test_image_references_outside_the_catalog_are_refused(tmp_path, ref, why):
    path = write(tmp_path, HEADER + f'OK-1,Fine,ok.jpg\nBAD-1,Bad,"ok.jpg|{ref}"\n')
    catalog = load_catalog(path)
    assert [p.sku for p in catalog.products] == ["OK-1"]
    assert problems(catalog) == [(3, "image")]
    assert why in catalog.errors[0].message
    assert ref.startswith("s3:") or "catalog's folder" in catalog.errors[0].message


def test_accepted_references_and_http_note(tmp_path):
    path = write(tmp_path, HEADER + "A-1,A,.\\photos\\a.jpg|http://legacy.example.com/a.jpg|s3://b/k/a.jpg,,,,,\n")
    catalog = load_catalog(path)
    assert catalog.errors == []
    assert catalog.products[0].images == ["photos/a.jpg", "http://legacy.example.com/a.jpg", "s3://b/k/a.jpg"]
    assert any("PACKSHOT_LOAD__ALLOW_HTTP" in note for note in catalog.notes)


@pytest.mark.parametrize("sku", ["shirts/TEE-1", "TEE\\1", "TEE..1", "..", "TEE\t1", "X" * 101])
def test_unsafe_skus_are_refused_in_packshot_format(tmp_path, sku):
    path = write(tmp_path, HEADER + f'"{sku}",Bad,a.jpg\nOK-1,Fine,b.jpg\n')
    catalog = load_catalog(path)
    assert [p.sku for p in catalog.products] == ["OK-1"]
    assert problems(catalog) == [(2, "sku")]


def test_every_problem_of_a_row_is_reported_at_once(tmp_path):
    path = write(tmp_path, HEADER + ',,,,../styles,Navy|Blurple,"1,2,3",/abs/mask.png\n')
    catalog = load_catalog(path)
    assert catalog.products == []
    assert {column for _, column in problems(catalog)} == {
        "sku", "title", "image", "colors", "bbox", "recolor_mask", "brand_style"}
    assert {line for line, _ in problems(catalog)} == {2}


def test_shopify_bad_rows_keep_the_rest_of_the_product(tmp_path):
    header = "Handle,Title,Option1 Name,Option1 Value,Image Src,Image Position,Variant Image\n"
    rows = (
        "tee,Tee,Color,Navy,https://cdn.example.com/tee-1.jpg,1,\n"
        "tee,,,Blurple,,,https://cdn.example.com/tee-blurple.jpg\n"  # line 3: unknown color
        "tee,,,,file:///etc/passwd,2,\n"  # line 4: refused image row
        ",,,,https://cdn.example.com/orphan.jpg,3,\n"  # line 5: no handle
        "mug,,Title,Default Title,https://cdn.example.com/mug.jpg,1,\n"  # line 6: no title
        "cap,Cap,Colour,Olive,,,\n"  # line 7: no image at all
        "tee,Another Tee,,,https://cdn.example.com/x.jpg,1,\n"  # line 8: handle reused by another product
    )
    catalog = load_catalog(write(tmp_path, header + rows))
    assert problems(catalog) == [(3, "Option1 Value"), (4, "Image Src"), (5, "Handle"), (6, "Title"),
                                 (7, "Image Src"), (8, "Handle")]
    assert [p.sku for p in catalog.products] == ["tee"]
    tee = catalog.products[0]
    assert tee.images == ["https://cdn.example.com/tee-1.jpg", "https://cdn.example.com/tee-blurple.jpg"]
    assert [c.name for c in tee.colors] == ["Navy"]
    assert all(e.sku == "tee" for e in catalog.errors if e.line in (3, 4, 8))


def test_woocommerce_bad_rows_and_lenient_skus(tmp_path):
    header = ("ID,Type,SKU,Name,Images,Parent,Attribute 1 name,Attribute 1 value(s),"
              "Attribute 1 visible,Attribute 1 global\n")
    rows = (
        '10,variable,TEE..RED,Tee,"https://x.example/a.jpg, https://x.example/b.jpg",,'
        'Color,"Navy, Blurple",1,1\n'
        "11,variation,TEE-N,Tee - Navy,https://x.example/n.jpg,id:10,Color,Navy,,1\n"
        "12,variation,TEE-Q,Tee - Q,https://x.example/q.jpg,id:99,Color,Navy,,1\n"  # line 4: parent missing
        "13,simple,MUG/1,Mug,https://x.example/m.jpg,,,,,\n"  # line 5: slash
        "14,simple,CAP-1,,https://x.example/c.jpg,,,,,\n"  # line 6: no name
        "15,simple,TEE..RED,Copy,https://x.example/d.jpg,,,,,\n"  # line 7: duplicate SKU
        "16,bundle,BOX-1,Box,https://x.example/e.jpg,,,,,\n"  # line 8: unknown type
        '17,simple,WEIRD-1,Comma,https://x.example/w.jpg,,Colour,"Off-White, Sage\\, light",,\n'
    )
    catalog = load_catalog(write(tmp_path, header + rows))
    assert problems(catalog) == [(2, "Attribute 1 value(s)"), (4, "Parent"), (5, "SKU"), (6, "Name"),
                                 (7, "SKU"), (8, "Type"), (9, "Attribute 1 value(s)")]
    products = by_sku(catalog)
    assert list(products) == ["TEE..RED", "WEIRD-1"]  # '..' inside a SKU is safe, only '/' is not
    assert products["TEE..RED"].images == ["https://x.example/a.jpg", "https://x.example/b.jpg",
                                           "https://x.example/n.jpg"]
    assert [c.name for c in products["TEE..RED"].colors] == ["Navy"]
    assert "Sage, light" in catalog.errors[-1].message  # escaped comma kept inside the value


# ----------------------------------------------------------------------------- file handling


def test_excel_semicolon_cp1252_file(tmp_path):
    text = "sku;title;image;colors;bbox\r\nCAFE-1;Café Crème;café.jpg;Navy;10,20,300,400\r\n"
    catalog = load_catalog(write(tmp_path, text, encoding="cp1252"))
    assert catalog.errors == []
    product = catalog.products[0]
    assert (product.title, product.images, product.bbox) == ("Café Crème", ["café.jpg"], (10, 20, 300, 400))
    assert any("Windows-1252" in note for note in catalog.notes)
    assert any("semicolon" in note for note in catalog.notes)


def test_utf8_bom_and_excel_sep_line(tmp_path):
    text = "sep=;\nsku;title;image\nA-1;Ä Title;a.jpg\n"
    catalog = load_catalog(write(tmp_path, text, encoding="utf-8-sig"))
    assert catalog.errors == [] and catalog.notes[:1] == ["read as semicolon-separated values"]
    assert (catalog.products[0].sku, catalog.products[0].title) == ("A-1", "Ä Title")
    with_bom = write(tmp_path, "\ufeffsku,title,image\nB-1,B,b.jpg\n", "b.csv")
    assert with_bom.read_bytes().startswith(b"\xef\xbb\xbf")
    assert load_catalog(with_bom).products[0].sku == "B-1"


def test_excel_unicode_text_export_and_header_only_file(tmp_path):
    utf16 = write(tmp_path, "\ufeffsku\ttitle\timage\nÜ-1\tÜber\tü.jpg\n", "u.txt", encoding="utf-16-le")
    assert [(p.sku, p.title) for p in load_catalog(utf16).products] == [("Ü-1", "Über")]
    empty = load_catalog(write(tmp_path, HEADER))
    assert (empty.products, empty.errors) == ([], [])
    assert "no product rows" in validation_report(empty)


def test_multiline_fields_and_blank_lines_keep_line_numbers(tmp_path):
    text = HEADER + (
        'A-1,"Tee\nwith a\nlong title",a.jpg\n'  # lines 2-4
        "\n"  # line 5, blank
        ",,,,,,,\n"  # line 6, Excel's empty row
        "B-1,Mug,/abs.jpg\r\n"  # line 7
        'C-1,"Lamp\r\nTwo",c.jpg\r\n'  # lines 8-9
        "D-1,,d.jpg\n"  # line 10
    )
    catalog = load_catalog(write(tmp_path, text))
    assert problems(catalog) == [(7, "image"), (10, "title")]
    assert [(p.sku, p.source_line) for p in catalog.products] == [("A-1", 2), ("C-1", 8)]
    assert catalog.products[0].title == "Tee\nwith a\nlong title"


def test_unknown_format_lists_expected_headers(tmp_path):
    with pytest.raises(CatalogError) as info:
        load_catalog(write(tmp_path, "product_id,name,picture\n1,Tee,a.jpg\n"))
    message = str(info.value)
    assert "'product_id', 'name', 'picture'" in message
    for expected in ("sku, title, image", "Handle, Title, Image Src", "ID, Type, SKU, Name, Images, Parent"):
        assert expected in message


@pytest.mark.parametrize("content, phrase", [
    (None, "does not exist"),
    (b"", "empty"),
    (b"  \r\n\r\n", "empty"),
    (b"PK\x03\x04\x14\x00\x06\x00", "workbook"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
    (b'{"products": []}', "not look like CSV"),
    (b"sku,title\nA,B\n", "lacks the column(s) image"),
    (b'sku,title,image\nA-1,"Tee,a.jpg\nB-1,Mug,b.jpg\n', "line 2"),  # quote never closed
])
def test_unusable_files_raise_a_clear_catalog_error(tmp_path, content, phrase):
    path = tmp_path / "catalog.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    assert isinstance(info.value, PackshotError)
    assert phrase in str(info.value)


def test_extra_columns_are_ignored_and_header_case_is_forgiven(tmp_path):
    text = "SKU,Title,Image,Notes for Anna\nA-1,Tee,a.jpg,check color\n"
    catalog = load_catalog(write(tmp_path, text))
    assert catalog.format == "packshot" and [p.sku for p in catalog.products] == ["A-1"]


# ----------------------------------------------------------------------------- reports


def test_validation_report_lists_each_problem_with_file_and_line():
    catalog = load_catalog(SAMPLES / "packshot_with_errors.csv")
    report = validation_report(catalog)
    assert "2 products ready, 6 problems in 6 rows" in report
    assert f"{catalog.path}:6 column 'colors' (sku CAP-005): unknown color name 'Navvy'" in report
    assert f"{catalog.path}:4 column 'title' (sku LAMP-003): title is empty" in report
    assert "packshot validate" in report  # says what to do next

    data = report_json(catalog)
    assert json.loads(json.dumps(data)) == data
    assert (data["ok"], data["products"], data["bad_rows"]) == (False, 2, 6)
    assert data["skus"] == ["TEE-001", "BOWL-008"]
    assert data["errors"][0] == {"file": catalog.path, "line": 3, "column": "image", "sku": "MUG-002",
                                 "message": data["errors"][0]["message"]}


def test_clean_catalog_report():
    catalog = load_catalog(SAMPLES / "shopify_products.csv")
    assert "4 products ready, 0 problems" in validation_report(catalog)
    assert report_json(catalog)["ok"] is True
