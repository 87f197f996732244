"""The command line with sources and publishing: `packshot validate FEED`, `packshot publish`."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cli.main import _run_name, app
from packshot.storage import open_storage
from tests.fakes.shopify import FakeShopify
from tests.fakes.tls import local_tls
from tests.test_publish import write_run

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_validate_reads_a_merchant_center_feed():
    result = runner.invoke(app, ["validate", str(ROOT / "catalogs/samples/gmc_apparel.xml")])
    assert result.exit_code == 1, result.output
    assert "Google Merchant Center feed" in result.output and "3 products ready, 2 problems" in result.output
    assert (
        "gmc_apparel.xml:75 column 'g:image_link' (sku SOCK-3PK): item 7 has no image_link" in result.output
    )
    assert "fix the items above in the feed" in result.output
    as_json = runner.invoke(app, ["validate", "--json", str(ROOT / "catalogs/samples/gmc_apparel.xml")])
    report = json.loads(as_json.output)
    assert report["format"] == "gmc" and report["skus"] == ["TEE-ORG", "HOOD-ZIP", "CAP-WOOL"]


def test_validate_names_what_is_wrong_with_a_hostile_feed(tmp_path):
    feed = tmp_path / "feed.xml"
    feed.write_text(
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><rss>&x;</rss>'
    )
    result = runner.invoke(app, ["validate", str(feed)])
    assert result.exit_code == 2 and "refused" in result.output and "Traceback" not in result.output


def test_default_output_names():
    assert _run_name("catalogs/demo/catalog.csv") == "catalog"
    assert _run_name("shopify://northwind.myshopify.com") == "northwind"
    assert _run_name("https://shop.example.com/feeds/google.xml?key=1") == "google"
    assert _run_name("woocommerce://shop.example.com") == "shop-example-com"


def test_publish_dry_run_then_for_real(tmp_path, monkeypatch):
    ca_pem, context = local_tls(tmp_path / "tls")
    fake = FakeShopify("shpat_cli_test_0123456789").start(context)
    fake.add_product("tee-00", "Organic Tee", images=("https://cdn.shopify.fake/s/files/1/front.jpg",))
    for name, value in {
        "SHOPIFY_ACCESS_TOKEN": "shpat_cli_test_0123456789",
        "PACKSHOT_SOURCES__SHOPIFY_BASE_URL": fake.base_url,
        "PACKSHOT_SOURCES__CA_BUNDLE": str(ca_pem),
        "PACKSHOT_LOAD__ALLOWED_NETWORKS": '["127.0.0.1/32"]',  # the fake's staged-upload target
    }.items():
        monkeypatch.setenv(name, value)
    try:
        run = tmp_path / "run"
        write_run(open_storage(run))
        refused = runner.invoke(app, ["publish", str(run), "--to", "shopify://northwind"])
        assert refused.exit_code == 2 and "--all" in refused.output
        dry = runner.invoke(app, ["publish", str(run), "--to", "shopify://northwind", "--all", "--dry-run"])
        assert dry.exit_code == 0, dry.output
        assert "would upload 3 image(s)" in dry.output and fake.count("Stage") == 0
        real = runner.invoke(app, ["publish", str(run), "--to", "shopify://northwind", "--all"])
        assert real.exit_code == 0, real.output
        assert "uploaded 3 image(s), 0 already there" in real.output and len(fake.uploads) == 3
        assert "shpat_" not in dry.output + real.output
    finally:
        fake.stop()
