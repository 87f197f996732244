"""Sources inside a run: a product the store reports unchanged is skipped without downloading its
image, a changed marker with the same bytes moves the marker on, and the run keeps a snapshot."""

from __future__ import annotations

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from packshot.types import Product
from tests.studio import studio_shot

HERE = Path(__file__).parent
PRESETS = ["test-white"]


class _Images(BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    gets: list[str] = []

    def do_GET(self):  # noqa: N802
        self.gets.append(self.path)
        data = self.files.get(self.path.split("?")[0], b"")
        self.send_response(200 if data else 404)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def image_server(monkeypatch, tmp_path):
    for name, value in {
        "PACKSHOT_EXPORT__PRESETS_FILE": str(HERE / "small_presets.yaml"),
        "PACKSHOT_SEGMENT__BACKEND": "classic",
        "PACKSHOT_GENERATIVE__BACKEND": "classic",
        "PACKSHOT_LOAD__ALLOW_HTTP": "true",
        "PACKSHOT_LOAD__ALLOW_PRIVATE_ADDRESSES": "true",
        "PACKSHOT_ORCHESTRATION__STAGE_CACHE": "false",
    }.items():
        monkeypatch.setenv(name, value)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Images)
    server.daemon_threads = True
    rgb, _ = studio_shot(shape="bottle", seed=3)
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=92)
    _Images.files, _Images.gets = {"/tee.jpg": out.getvalue()}, []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Images
    server.shutdown()
    server.server_close()


def _run(product: Product, out: Path):
    import orchestrator

    orchestrator.clear_contexts()
    options = orchestrator.RunOptions(
        catalog="shopify://northwind", out=str(out), presets=PRESETS, stages=["segment", "export"]
    )
    (result,) = orchestrator.process_batch([product], options)
    return result


def test_unchanged_store_version_skips_without_download(image_server, tmp_path):
    base, images = image_server
    product = Product(
        sku="tee",
        title="Tee",
        images=[f"{base}/tee.jpg"],
        source_file="shopify://northwind",
        source_line=1,
        source_ref="gid://shopify/Product/1",
        source_version="2026-11-30T10:00:00Z",
    )
    out = tmp_path / "out"
    first = _run(product, out)
    assert first.status == "done" and len(images.gets) == 1
    done = json.loads((out / "tee" / ".done.json").read_text())
    assert done["source_version"] == "2026-11-30T10:00:00Z" and len(done["image_sha256"]) == 64

    again = _run(product, out)
    assert again.status == "skipped" and len(images.gets) == 1  # no download at all

    # The store's marker moved (a price edit, or our own publish) but the photo is the same bytes:
    # one download to check, the outputs are reused, and the new marker is recorded.
    edited = product.model_copy(update={"source_version": "2026-12-01T12:00:00Z"})
    checked = _run(edited, out)
    assert checked.status == "skipped" and len(images.gets) == 2
    assert json.loads((out / "tee" / ".done.json").read_text())["source_version"] == "2026-12-01T12:00:00Z"
    assert _run(edited, out).status == "skipped" and len(images.gets) == 2

    # Same marker but other settings (another preset list): the content key differs, so it is redone.
    import orchestrator

    orchestrator.clear_contexts()
    options = orchestrator.RunOptions(
        catalog="shopify://northwind",
        out=str(out),
        presets=["test-white", "test-shop"],
        stages=["segment", "export"],
    )
    (redone,) = orchestrator.process_batch([edited], options)
    assert redone.status == "done" and len(images.gets) == 3


def test_run_reads_a_feed_and_writes_its_snapshot_beside_the_manifest(image_server, tmp_path):
    from orchestrator.catalog_source import catalog_of_run
    from orchestrator.options import RunOptions
    from orchestrator.run import finish_run, process_part, start_run
    from orchestrator.settings import get_settings
    from packshot.storage import open_storage

    base, images = image_server
    feed = tmp_path / "feed.xml"
    feed.write_text(f"""<?xml version="1.0"?>
<rss version="2.0" xmlns:g="http://base.google.com/ns/1.0"><channel>
<item><g:id>TEE-N</g:id><g:title><![CDATA[Tee - Navy]]></g:title><g:item_group_id>TEE</g:item_group_id>
  <g:image_link>{base}/tee.jpg</g:image_link><g:color>Navy</g:color></item>
<item><g:id>TEE-S</g:id><g:title><![CDATA[Tee - Sage]]></g:title><g:item_group_id>TEE</g:item_group_id>
  <g:image_link>{base}/tee.jpg</g:image_link><g:color>Sage</g:color></item>
<item><g:id>BROKEN</g:id><g:title>No photo</g:title></item>
</channel></rss>""")
    options = RunOptions(
        catalog=str(feed), out=str(tmp_path / "out"), presets=PRESETS, stages=["segment", "export"]
    )
    run = start_run(options, "run-1")
    assert [p.sku for p in run.products] == ["TEE"] and run.catalog.format == "gmc"
    summary = finish_run(run, parts=[process_part(run.products, options, "run-1", 0)])
    assert summary.counts["done"] == 1 and summary.counts["invalid"] == 1
    out = tmp_path / "out"
    snapshot = json.loads((out / "catalog.snapshot.json").read_text())
    assert snapshot["source"] == str(feed) and snapshot["run_id"] == "run-1" and snapshot["format"] == "gmc"
    assert [p["sku"] for p in snapshot["products"]] == ["TEE"]
    assert [c["name"] for c in snapshot["products"][0]["colors"]] == ["Navy", "Sage"]
    assert (out / "manifest.json").exists()
    # A shard of this run reads the snapshot, not the feed (which may have changed meanwhile).
    feed.write_text("<rss><channel/></rss>")
    shard_view = catalog_of_run(str(feed), get_settings(), open_storage(out), "run-1")
    assert [p.sku for p in shard_view.products] == ["TEE"]
    assert catalog_of_run(str(feed), get_settings(), open_storage(out), "run-2").products == []


def test_nightly_deployment_can_point_at_a_store(monkeypatch):
    from flows.deployments import deployment_specs
    from orchestrator.options import RunOptions
    from orchestrator.settings import Settings

    monkeypatch.setenv("PACKSHOT_ORCHESTRATION__NIGHTLY_CATALOG", "shopify://northwind")
    monkeypatch.setenv("PACKSHOT_SOURCES__SHOPIFY_SECRET_BLOCK", "northwind-token")
    settings = Settings()
    nightly = deployment_specs(settings)["nightly"]
    assert nightly["parameters"]["options"]["catalog"] == "shopify://northwind"
    assert settings.sources.shopify_secret_block == "northwind-token"  # the token itself is never a setting
    described = RunOptions.model_json_schema()["properties"]["catalog"]["description"]
    assert "shopify://SHOP" in described and "feed" in described


def test_a_feed_url_key_stays_out_of_manifest_snapshot_and_report(image_server, tmp_path):
    from orchestrator.options import RunOptions
    from orchestrator.run import finish_run, process_part, start_run

    base, images = image_server
    images.files["/feed.xml"] = f"""<rss xmlns:g="http://base.google.com/ns/1.0"><channel><item>
<g:id>TEE</g:id><g:title>Tee</g:title><g:image_link>{base}/tee.jpg</g:image_link></item></channel></rss>""".encode()
    secret = "feedkey-0123456789abcdef"
    options = RunOptions(
        catalog=f"{base}/feed.xml?key={secret}",
        out=str(tmp_path / "out"),
        presets=PRESETS,
        stages=["segment", "export"],
    )
    run = start_run(options, "run-1")
    summary = finish_run(run, parts=[process_part(run.products, options, "run-1", 0)])
    assert summary.counts["done"] == 1
    for name in ("manifest.json", "manifest.csv", "catalog.snapshot.json", "report.html", "TEE/.done.json"):
        text = (tmp_path / "out" / name).read_text()
        assert secret not in text, name
        assert "/feed.xml" in text or name == "TEE/.done.json", name
