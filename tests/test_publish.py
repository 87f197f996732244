"""``publish``: a run's images go to Shopify / WooCommerce fakes exactly once, in listing order,
reviewed ones only, the merchant's own images kept, a killed publish resumed without duplicates."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from orchestrator.publish import PublishError
from orchestrator.publish import publish as publish_run
from orchestrator.publish.ledger import LEDGER_NAME
from packshot.config import LoadSettings
from packshot.schemas.results import OutputRecord, ProductResult, RunManifest
from packshot.sources import SNAPSHOT_NAME, SourceSettings
from packshot.storage import Storage, open_storage
from tests.fakes.shopify import FakeShopify
from tests.fakes.tls import local_tls
from tests.fakes.woocommerce import FakeWooCommerce

ROOT = Path(__file__).resolve().parents[1]
# The fakes' staged-upload targets are on 127.0.0.1: allowed here the way a merchant allows an internal
# network (load.allowed_networks); the SSRF test below publishes without it.
LOCAL_NET = LoadSettings(allowed_networks=["127.0.0.1/32"])


def publish(*args, **kwargs):
    return publish_run(*args, **{"load": LOCAL_NET, **kwargs})

TOKEN = "shpat_publish_test_0123456789"
WOO_KEY, WOO_SECRET = "ck_publish_key_0123456789", "cs_publish_secret_0123456789"
BUCKET = "packshot-publish-test"


def _jpeg(shade: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (shade, shade, shade)).save(out, "JPEG")
    return out.getvalue()


def write_run(storage: Storage, skus=("tee-00",)) -> dict[str, list[str]]:
    """A finished run's manifest and files; returns sku -> the output keys publish should send, in order."""
    expected, products = {}, []
    for s, sku in enumerate(skus):
        outputs = []
        # listed out of order on purpose: publish follows ``position``
        for n, (kind, preset, variant, position, checks) in enumerate([
            ("scene", "shopify", None, 3, []),
            ("packshot", "shopify", None, 1, []),
            ("packshot", "shopify", "sage", 2, []),
            ("packshot", "amazon-main", None, 1, []),  # another marketplace's preset
            ("packshot", "shopify", "ruby", 4, ["bytes: 25 MB over the limit"]),  # failed its checks
            ("cutout", None, None, None, []),
        ]):
            data = _jpeg(20 * s + 10 * n + 5)
            key = f"{sku}/{preset or 'cutout'}/{kind}-{variant or 'original'}-{n}.jpg"
            storage.write_bytes(key, data, "image/jpeg")
            outputs.append(OutputRecord(sku=sku, kind=kind, preset=preset, variant=variant, position=position,
                                        key=key, uri=key, format="JPEG", width=16, height=16, bytes=len(data),
                                        sha256=hashlib.sha256(data).hexdigest(), checks=checks,
                                        source_file="catalog.csv", source_line=2 + s))
        products.append(ProductResult(sku=sku, status="done", outputs=outputs, source_file="catalog.csv",
                                      source_line=2 + s))
        expected[sku] = [outputs[1].key, outputs[2].key, outputs[0].key]
    manifest = RunManifest(catalog="catalog.csv", catalog_format="packshot", output=storage.uri,
                           started=datetime.now(UTC), stages=["segment", "export"], presets=["shopify"],
                           products=products)
    storage.write_bytes("manifest.json", manifest.model_dump_json().encode(), "application/json")
    return expected


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return local_tls(tmp_path_factory.mktemp("publish-tls"))


@pytest.fixture
def shop(tls, monkeypatch):
    ca_pem, context = tls
    fake = FakeShopify(TOKEN, ready_after=1).start(context)
    monkeypatch.setenv("SHOPIFY_ACCESS_TOKEN", TOKEN)
    fake.add_product("tee-00", "Organic Tee", colors=("Navy", "Sage"),
                     images=("https://cdn.shopify.fake/s/files/1/merchant-front.jpg?v=1",))
    settings = SourceSettings(shopify_base_url=fake.base_url, ca_bundle=ca_pem, max_wait_s=0.05)
    yield fake, settings
    fake.stop()


def _fast(monkeypatch):
    """Media polls without the one-second pause (the fake is READY after one poll anyway)."""
    from orchestrator.publish import shopify as publish_shopify

    original = publish_shopify.ShopifyTarget.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self._poll_interval_s = 0.01

    monkeypatch.setattr(publish_shopify.ShopifyTarget, "__init__", init)


def test_shopify_publish_all_in_listing_order_then_nothing_twice(shop, tmp_path, monkeypatch):
    fake, settings = shop
    _fast(monkeypatch)
    run = tmp_path / "run"
    expected = write_run(open_storage(run))["tee-00"]
    report = publish(str(run), "shopify://northwind", all_=True, settings=settings)
    assert report.uploaded == 3 and not report.problems, report.summary()
    media = fake.products[0]["media"]
    assert media[0]["filename"] == "merchant-front.jpg"  # the merchant's image stays, first
    ours = media[1:]
    assert [m["filename"].split("-")[-2] for m in ours] == ["01", "02", "03"]  # position order
    assert [m["alt"] for m in ours] == ["Organic Tee", "Organic Tee – Sage", "Organic Tee"]
    assert all(m["status"] == "READY" for m in ours)
    ledger = json.loads((run / LEDGER_NAME).read_text())["images"]
    entries = sorted(ledger.values(), key=lambda e: e["filename"])
    assert [e["output_key"] for e in entries] == expected
    manifest = json.loads((run / "manifest.json").read_text())
    sha = {o["key"]: o["sha256"] for o in manifest["products"][0]["outputs"]}
    assert sorted(ledger) == sorted(f"shopify://northwind|tee-00|{sha[key]}" for key in expected)  # content
    assert {e["status"] for e in ledger.values()} == {"ready"}

    again = publish(str(run), "shopify://northwind", all_=True, settings=settings)
    assert (again.uploaded, again.already) == (0, 3)
    assert set(fake.uploads.values()) == {1} and set(fake.attached.values()) == {1} and len(fake.uploads) == 3


def test_review_decides_and_no_review_needs_all(shop, tmp_path, monkeypatch):
    fake, settings = shop
    _fast(monkeypatch)
    run = tmp_path / "run"
    first, variant, scene = write_run(open_storage(run))["tee-00"]
    with pytest.raises(PublishError, match="--all"):
        publish(str(run), "shopify://northwind", settings=settings)
    (run / "review.json").write_text(json.dumps({"decisions": {
        first: {"status": "approved"}, variant: {"status": "rejected"}, scene: {"status": "pending"}}}))
    report = publish(str(run), "shopify://northwind", settings=settings)
    assert report.uploaded == 1 and len(fake.uploads) == 1
    report = publish(str(run), "shopify://northwind", all_=True, settings=settings)
    assert (report.uploaded, report.already) == (1, 1)  # --all adds the pending one, never the rejected
    assert len(fake.uploads) == 2 and not any("-02-" in name for name in fake.uploads)


def test_review_loop_format_with_sku_decisions_and_lapsed_ones(shop, tmp_path, monkeypatch):
    """review.json as the review loop writes it: decisions by output key or by SKU, each valid only
    while its basis (the output's sha256, the product's content key) still matches."""
    fake, settings = shop
    _fast(monkeypatch)
    run = tmp_path / "run"
    first, variant, scene = write_run(open_storage(run))["tee-00"]
    manifest = json.loads((run / "manifest.json").read_text())
    sha = {o["key"]: o["sha256"] for o in manifest["products"][0]["outputs"]}
    (run / "review.json").write_text(json.dumps({"version": 1, "outputs": {
        first: {"sku": "tee-00", "key": first, "status": "approved", "basis": sha[first]},
        variant: {"sku": "tee-00", "key": variant, "status": "rejected", "basis": "an older image"},
    }, "products": {"tee-00": {"sku": "tee-00", "status": "approved", "basis": None}}}))
    report = publish(str(run), "shopify://northwind", settings=settings)
    # first: its own approval; variant: its rejection lapsed (the image changed since), the SKU approval
    # holds; scene: the SKU approval
    assert report.uploaded == 3 and len(fake.uploads) == 3


def test_dry_run_changes_nothing_and_says_what_would(shop, tmp_path, monkeypatch):
    fake, settings = shop
    run = tmp_path / "run"
    write_run(open_storage(run))
    report = publish(str(run), "shopify://northwind", all_=True, dry_run=True, replace=True,
                     settings=settings)
    assert report.uploaded == 3 and fake.count("Stage") == 0 and fake.count("Attach") == 0
    assert not (run / LEDGER_NAME).exists() and len(fake.products[0]["media"]) == 1
    text = report.summary()
    assert "would upload 3" in text and "packshot-tee-00-shopify-01-" in text
    assert "detach the merchant's 1" in text


def test_replace_detaches_only_the_merchants_images(shop, tmp_path, monkeypatch):
    fake, settings = shop
    _fast(monkeypatch)
    run = tmp_path / "run"
    write_run(open_storage(run))
    publish(str(run), "shopify://northwind", all_=True, replace=True, settings=settings)
    names = [m["filename"] for m in fake.products[0]["media"]]
    assert len(names) == 3 and all(n.startswith("packshot-") for n in names)


def test_product_found_through_the_run_snapshot_and_unknown_skus_reported(shop, tmp_path, monkeypatch):
    fake, settings = shop
    _fast(monkeypatch)
    run = tmp_path / "run"
    write_run(open_storage(run), skus=("tee-00", "gone"))
    snapshot = {"source": "shopify://northwind", "path": "shopify://northwind", "format": "shopify-store",
                "products": [{"sku": "tee-00", "title": "T", "images": ["x"], "source_file": "s",
                              "source_line": 1, "source_ref": "gid://shopify/Product/1"}]}
    (run / SNAPSHOT_NAME).write_text(json.dumps(snapshot))
    report = publish(str(run), "shopify://northwind", all_=True, settings=settings)
    assert report.uploaded == 3 and fake.count("ProductById") == 1
    assert report.problems == ["sku gone: no such product in shopify://northwind; skipped"]


def test_a_shopify_made_feed_group_id_finds_its_product(shop, tmp_path, monkeypatch):
    fake, settings = shop
    _fast(monkeypatch)
    run = tmp_path / "run"
    write_run(open_storage(run), skus=("shopify_US_1",))  # a run from the store's own Google feed
    report = publish(str(run), "shopify://northwind", all_=True, settings=settings)
    assert report.uploaded == 3 and fake.count("ProductById") == 1 and fake.count("ProductByHandle") == 0


_PUBLISH_SCRIPT = """
import json, sys
from orchestrator.publish import publish
from packshot.config import LoadSettings
from packshot.sources import SourceSettings
settings = SourceSettings.model_validate_json(sys.argv[2])
load = LoadSettings(allowed_networks=["127.0.0.1/32"])
publish(sys.argv[1], "shopify://northwind", all_=True, settings=settings, load=load)
"""


def test_killed_publish_resumes_without_uploading_twice(shop, tmp_path, monkeypatch, caplog):
    """SIGKILL while the first attach is answered: the image is in the store, the ledger says
    'uploading'. The resumed publish finds it (by alt text: still PROCESSING, no file name yet)."""
    fake, settings = shop
    _fast(monkeypatch)
    caplog.set_level(logging.DEBUG)
    run = tmp_path / "run"
    write_run(open_storage(run))
    hold = threading.Event()
    fake.hold_first_attach = hold
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", _PUBLISH_SCRIPT, str(run), settings.model_dump_json()],
                             env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert fake.attach_applied.wait(60), child.stdout.read().decode() if child.poll() is not None else ""
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    finally:
        hold.set()
        if child.poll() is None:
            child.kill()
    (entry,) = json.loads((run / LEDGER_NAME).read_text())["images"].values()
    assert entry["status"] == "uploading"  # intent recorded, the remote id never was
    assert len(fake.attached) == 1

    report = publish(str(run), "shopify://northwind", all_=True, settings=settings)
    assert (report.uploaded, report.already) == (2, 1), report.summary()
    assert len(fake.uploads) == 3 and set(fake.uploads.values()) == {1} and set(fake.attached.values()) == {1}
    ledger_text = (run / LEDGER_NAME).read_text()
    assert "found in the store before sending" in ledger_text
    for text in (ledger_text, caplog.text, report.summary(), child.stdout.read().decode()):
        assert TOKEN not in text


# ------------------------------------------------------------------------------------------ WooCommerce


@pytest.fixture(scope="module")
def s3_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def woo_run(s3_server, tls, monkeypatch):
    import boto3

    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                        "AWS_DEFAULT_REGION": "us-east-1", "PACKSHOT_STORAGE__S3_ENDPOINT_URL": s3_server,
                        "PACKSHOT_STORAGE__S3_REGION": "us-east-1", "WOOCOMMERCE_CONSUMER_KEY": WOO_KEY,
                        "WOOCOMMERCE_CONSUMER_SECRET": WOO_SECRET}.items():
        monkeypatch.setenv(name, value)
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket=BUCKET)
    ca_pem, context = tls
    fake = FakeWooCommerce(WOO_KEY, WOO_SECRET).start(context)
    fake.add_product("tee-00", "Organic Tee", images=("https://woo.fake/merchant.jpg",))
    run = f"s3://{BUCKET}/runs/{os.urandom(4).hex()}"
    expected = write_run(open_storage(run))["tee-00"]
    settings = SourceSettings(ca_bundle=ca_pem, max_wait_s=0.05)
    yield fake, settings, fake.base_url.replace("https://", "woocommerce://"), run, expected
    fake.stop()


def test_woocommerce_gets_presigned_links_once_even_when_the_answer_is_lost(woo_run):
    fake, settings, uri, run, expected = woo_run
    fake.crash_after_put = True  # the store applies the PUT, then answers 500
    report = publish(run, uri, all_=True, settings=settings)
    assert report.uploaded == 3 and not report.problems, report.summary()
    assert fake.count("product-put") == 1  # a PUT adding images is not blindly sent again
    images = fake.products[0]["images"]
    assert images[0]["name"] == "merchant.jpg" and [i["alt"] for i in images[1:]] == [
        "Organic Tee", "Organic Tee – Sage", "Organic Tee"]
    storage = open_storage(run)
    for image, key in zip(images[1:], expected, strict=True):  # the store downloaded exactly our bytes
        assert fake.downloaded[image["name"]] == storage.read_bytes(key)
    assert set(fake.downloads.values()) == {1}
    again = publish(run, uri, all_=True, settings=settings)
    assert (again.uploaded, again.already) == (0, 3) and fake.count("product-put") == 1
    assert WOO_SECRET not in storage.read_bytes(LEDGER_NAME).decode()


def test_woocommerce_refuses_a_local_run_with_advice(woo_run, tmp_path):
    fake, settings, uri, _run, _expected = woo_run
    write_run(open_storage(tmp_path / "run"))
    with pytest.raises(PublishError, match="s3://bucket/prefix"):
        publish(str(tmp_path / "run"), uri, all_=True, settings=settings)
    assert fake.count("product-put") == 0


def test_woocommerce_resume_finds_images_the_store_already_has(woo_run):
    """A publish killed between the store's answer and the ledger's record: the entries still say
    'uploading'; the next publish finds the images by name and sends nothing again."""
    fake, settings, uri, run, _expected = woo_run
    publish(run, uri, all_=True, settings=settings)
    storage = open_storage(run)
    ledger = json.loads(storage.read_bytes(LEDGER_NAME))
    for entry in ledger["images"].values():
        entry.update(status="uploading", media_id=None)
    storage.write_bytes(LEDGER_NAME, json.dumps(ledger).encode())
    report = publish(run, uri, all_=True, settings=settings)
    assert (report.uploaded, report.already) == (0, 3) and fake.count("product-put") == 1
    assert set(fake.downloads.values()) == {1}
    entries = json.loads(storage.read_bytes(LEDGER_NAME))["images"].values()
    assert all(e["status"] == "ready" and e["media_id"] and "found in the store" in e["note"]
               for e in entries)


# ----------------------------------------------------- two at once, lost ledgers, odd stores (issue 21)


def test_two_publishes_of_one_run_never_upload_twice(shop, tmp_path, monkeypatch):
    """The first publish holds the run's publish lease while its first attach hangs: a second one is
    refused with one line naming the holder, a third waits for it and then finds everything there."""
    from packshot.lease import LeaseHeld

    fake, settings = shop
    _fast(monkeypatch)
    run = tmp_path / "run"
    write_run(open_storage(run))
    hold = threading.Event()
    fake.hold_first_attach = hold
    reports = {}
    first = threading.Thread(target=lambda: reports.setdefault("first", publish(
        str(run), "shopify://northwind", all_=True, settings=settings)))
    first.start()
    try:
        assert fake.attach_applied.wait(30)
        with pytest.raises(LeaseHeld) as refused:
            publish(str(run), "shopify://northwind", all_=True, settings=settings)
        text = str(refused.value)
        assert "packshot publish --to shopify://northwind" in text and f"pid {os.getpid()}" in text
        assert "\n" not in text
        waiting = threading.Thread(target=lambda: reports.setdefault("waited", publish(
            str(run), "shopify://northwind", all_=True, settings=settings, wait_s=60)))
        waiting.start()
    finally:
        hold.set()
    first.join(60)
    waiting.join(60)
    assert (reports["first"].uploaded, reports["waited"].uploaded, reports["waited"].already) == (3, 0, 3)
    assert len(fake.uploads) == 3 and set(fake.attached.values()) == {1}
    assert len(fake.products[0]["media"]) == 1 + 3


def test_a_second_publish_from_the_command_line_refuses_in_one_line(shop, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from cli.main import app
    from packshot.lease import acquire_lease

    fake, settings = shop
    run = tmp_path / "run"
    write_run(open_storage(run))
    monkeypatch.setenv("PACKSHOT_SOURCES__SHOPIFY_BASE_URL", fake.base_url)
    monkeypatch.setenv("PACKSHOT_SOURCES__CA_BUNDLE", str(settings.ca_bundle))
    monkeypatch.setenv("COLUMNS", "60")
    with acquire_lease(open_storage(run), "publish", "packshot publish --to shopify://northwind"):
        result = CliRunner().invoke(app, ["publish", str(run), "--to", "shopify://northwind", "--all"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "in use by 'packshot publish --to shopify://northwind'" in " ".join(result.output.split())
    assert fake.count("Stage") == 0


def test_a_lost_or_damaged_ledger_sends_nothing_twice(shop, tmp_path, monkeypatch):
    """Images the ledger does not list are looked up in the store by their file name (it holds their
    checksum); a damaged ledger is kept aside and publishing goes on as if there were none."""
    fake, settings = shop
    _fast(monkeypatch)
    run = tmp_path / "run"
    write_run(open_storage(run))
    publish(str(run), "shopify://northwind", all_=True, settings=settings)
    good = (run / LEDGER_NAME).read_text()
    entry = next(iter(json.loads(good)["images"].values()))
    without_alt = {k: v for k, v in entry.items() if k != "alt"}
    for damage in (None, "{not json", '{"images": []}', json.dumps({"images": {"x": {"sku": "tee-00"}}}),
                   json.dumps({"version": 2, "images": {"shopify://northwind|tee-00|0": without_alt}})):
        if damage is None:
            (run / LEDGER_NAME).unlink()
        else:
            (run / LEDGER_NAME).write_text(damage)
        report = publish(str(run), "shopify://northwind", all_=True, settings=settings)
        assert (report.uploaded, report.already) == (0, 3) and not report.problems, (damage, report.summary())
        assert len(fake.uploads) == 3 and set(fake.attached.values()) == {1}
    notes = [line for line in report.lines if "damaged" in line]
    assert not notes  # the last damage (an entry without alt) is no damage
    aside = sorted(run.glob("publish_ledger.damaged-*.json"))
    assert aside and "move it away" not in report.summary()


def test_a_damaged_ledger_says_where_it_was_kept_and_what_happens(shop, tmp_path, monkeypatch):
    fake, settings = shop
    _fast(monkeypatch)
    run = tmp_path / "run"
    write_run(open_storage(run))
    (run / LEDGER_NAME).write_text('{"images": []}')
    dry = publish(str(run), "shopify://northwind", all_=True, settings=settings, dry_run=True)
    assert (run / LEDGER_NAME).read_text() == '{"images": []}'  # a dry run changes nothing
    report = publish(str(run), "shopify://northwind", all_=True, settings=settings)
    (note,) = [line for line in report.lines if "damaged" in line]
    assert "publish_ledger.damaged-" in note and "looked up in the store" in note
    assert "damaged" in dry.summary() and report.uploaded == 3
    (aside,) = run.glob("publish_ledger.damaged-*.json")
    assert aside.read_text() == '{"images": []}'  # kept for a person to read


def test_new_photos_and_a_rerun_publish_the_new_images(shop, tmp_path, monkeypatch):
    """The ledger is keyed by content: new images under the same output names are sent, and our older
    images of those outputs are detached (the merchant's own stay)."""
    fake, settings = shop
    _fast(monkeypatch)
    run = tmp_path / "run"
    storage = open_storage(run)
    expected = write_run(storage)["tee-00"]
    publish(str(run), "shopify://northwind", all_=True, settings=settings)
    manifest = json.loads((run / "manifest.json").read_text())
    for output in manifest["products"][0]["outputs"]:  # the rerun: same names, new bytes
        data = _jpeg(250 - len(output["key"]))
        storage.write_bytes(output["key"], data)
        output["sha256"] = hashlib.sha256(data).hexdigest()
    (run / "manifest.json").write_text(json.dumps(manifest))
    report = publish(str(run), "shopify://northwind", all_=True, settings=settings)
    assert (report.uploaded, report.already) == (3, 0), report.summary()
    media = fake.products[0]["media"]
    assert [m["filename"] for m in media][0] == "merchant-front.jpg" and len(media) == 1 + 3
    sha = {o["key"]: o["sha256"] for o in manifest["products"][0]["outputs"]}
    assert [m["filename"].split("-")[-1].split(".")[0] for m in media[1:]] == [sha[k][:10] for k in expected]
    again = publish(str(run), "shopify://northwind", all_=True, settings=settings)
    assert (again.uploaded, again.already) == (0, 3)


def test_shopify_staged_targets_must_be_https_public_hosts(shop, tmp_path, monkeypatch):
    """stagedUploadsCreate names where the image goes: http://127.0.0.1 is refused before any byte is
    sent, and so is https://127.0.0.1 unless the merchant allowed that network."""
    fake, settings = shop
    run = tmp_path / "run"
    write_run(open_storage(run))
    stage = fake._stage

    def plain_http(variables, request):
        answer = stage(variables, request)
        for target in answer["stagedUploadsCreate"]["stagedTargets"]:
            target["url"] = target["url"].replace("https://", "http://")
        return answer

    report = publish_run(str(run), "shopify://northwind", all_=True, settings=settings)  # default rules
    (problem,) = report.problems
    assert "refused the store's upload target" in problem and "loopback" in problem
    monkeypatch.setattr(fake, "_stage", plain_http)
    report = publish(str(run), "shopify://northwind", all_=True, settings=settings)  # 127.0.0.1 allowed
    (problem,) = report.problems
    assert "not HTTPS" in problem and "http://127.0.0.1:" in problem
    assert fake.uploads == {} and fake.count("staged-upload") == 0 and fake.count("Attach") == 0


@pytest.mark.parametrize("answer", [[], {"data": None}, "no-id"])
def test_shopify_odd_answers_during_publish_are_one_line_problems(shop, tmp_path, monkeypatch, answer):
    from tests.fakes.server import Response

    fake, settings = shop
    run = tmp_path / "run"
    write_run(open_storage(run))
    route = fake.route

    def odd(name, request):
        if name != "Media":
            return route(name, request)
        if answer == "no-id":
            real = json.loads(route(name, request).body)
            for node in real["data"]["product"]["media"]["nodes"]:
                node.pop("id")
            return Response.json(200, real)
        return Response.json(200, answer)

    monkeypatch.setattr(fake, "route", odd)
    report = publish(str(run), "shopify://northwind", all_=True, settings=settings)
    (problem,) = report.problems
    assert problem.startswith("sku tee-00: shopify://northwind: the product's media answered")
    assert "\n" not in problem and TOKEN not in problem and fake.count("Stage") == 0


def test_a_damaged_manifest_or_snapshot_under_publish_is_one_line(shop, tmp_path, monkeypatch):
    fake, settings = shop
    _fast(monkeypatch)
    run = tmp_path / "run"
    write_run(open_storage(run))
    (run / SNAPSHOT_NAME).write_text('{"source": "shopify://northwind", "products": [{"sku": 1}]}')
    report = publish(str(run), "shopify://northwind", all_=True, settings=settings)
    assert report.uploaded == 3 and any(f"{SNAPSHOT_NAME} is damaged" in line for line in report.lines)
    (run / SNAPSHOT_NAME).write_text("[1, 2")
    assert publish(str(run), "shopify://northwind", all_=True, settings=settings).already == 3
    (run / "manifest.json").write_text('{"products": "none"}')
    with pytest.raises(PublishError, match="manifest.json in .* is damaged") as damaged:
        publish(str(run), "shopify://northwind", all_=True, settings=settings)
    assert "\n" not in str(damaged.value)


# -------------------------------------------------------------- publish only what is safe (issue 20)


def test_publish_all_holds_back_doubtful_products_unless_a_review_approved_them(shop, tmp_path, monkeypatch):
    fake, settings = shop
    _fast(monkeypatch)
    for handle in ("bag-01", "mug-02"):
        fake.add_product(handle, handle.title())
    run = tmp_path / "run"
    write_run(open_storage(run), skus=("tee-00", "bag-01", "mug-02"))
    manifest = json.loads((run / "manifest.json").read_text())
    bag, mug = manifest["products"][1], manifest["products"][2]
    bag.update(status="needs_review", key="bag-key",
               review_reasons=["the cutout runs along the box's top edge: the product may continue outside"])
    mug.update(status="failed", error="background: out of GPU memory")
    (run / "manifest.json").write_text(json.dumps(manifest))

    dry = publish(str(run), "shopify://northwind", all_=True, dry_run=True, settings=settings)
    held = [line for line in dry.lines if line.startswith("held back")]
    assert any("bag-01" in line and "needs_review" in line and "box's top edge" in line for line in held)
    assert any("mug-02" in line and "failed" in line and "out of GPU memory" in line for line in held)
    assert dry.uploaded == 3 and "bag-01 (" not in dry.summary()

    report = publish(str(run), "shopify://northwind", all_=True, settings=settings)
    assert report.uploaded == 3 and {p["handle"]: len(p["media"]) for p in fake.products} == {
        "tee-00": 1 + 3, "bag-01": 0, "mug-02": 0}

    (run / "review.json").write_text(json.dumps({"version": 1, "outputs": {}, "products": {
        "bag-01": {"sku": "bag-01", "status": "approved", "basis": "bag-key"}}}))
    report = publish(str(run), "shopify://northwind", all_=True, settings=settings)
    assert (report.uploaded, report.already) == (3, 3)
    assert {p["handle"]: len(p["media"]) for p in fake.products}["bag-01"] == 3
    assert any("mug-02" in line for line in report.lines if line.startswith("held back"))


def test_one_woocommerce_store_however_its_address_is_typed(woo_run):
    fake, settings, uri, run, _expected = woo_run
    port = uri.rsplit(":", 1)[1]
    first = publish(run, f"woocommerce://localhost:{port}", all_=True, settings=settings)
    again = publish(run, f"woocommerce://LOCALHOST.:{port}//", all_=True, settings=settings)
    assert first.uploaded == 3 and (again.uploaded, again.already) == (0, 3), again.summary()
    assert fake.count("product-put") == 1 and set(fake.downloads.values()) == {1}
    ledger = json.loads(open_storage(run).read_bytes(LEDGER_NAME))["images"]
    assert {key.split("|")[0] for key in ledger} == {f"woocommerce://localhost:{port}"}


def test_woocommerce_answering_html_or_a_redirect_during_publish_is_one_line(woo_run, monkeypatch):
    from tests.fakes.server import Response

    fake, settings, uri, run, _expected = woo_run
    route = fake.route
    html = Response(200, b"<html><body>Just a moment...</body></html>")
    for answer, said in ((html, "did not answer JSON"),
                         (Response(302, b"", {"Location": "https://login.example/wp-login.php"}),
                          "answered a redirect (HTTP 302 to 'https://login.example/wp-login.php')")):
        monkeypatch.setattr(fake, "route", lambda name, request, answer=answer: (
            answer if name == "product-put" else route(name, request)))
        report = publish(run, uri, all_=True, settings=settings)
        (problem,) = report.problems
        assert said in problem and "\n" not in problem and WOO_SECRET not in problem
    monkeypatch.setattr(fake, "route", route)
    report = publish(run, uri, all_=True, settings=settings)  # the store did nothing: now it is sent
    assert (report.uploaded, report.already) == (3, 0) and not report.problems


def test_a_run_on_s3_has_one_publisher_and_a_lost_ledger_sends_nothing_twice(woo_run):
    """The S3 lease (a conditional create) keeps a second publish of the run out; with the ledger gone,
    the store's image names say what is already there."""
    from packshot.lease import LeaseHeld, acquire_lease

    fake, settings, uri, run, _expected = woo_run
    storage = open_storage(run)
    held = acquire_lease(storage, "publish", "packshot publish --to woocommerce://elsewhere")
    with held, pytest.raises(LeaseHeld, match="packshot publish --to woocommerce://elsewhere"):
        publish(run, uri, all_=True, settings=settings)
    assert fake.count("product-put") == 0
    assert publish(run, uri, all_=True, settings=settings).uploaded == 3
    storage.client.delete_object(Bucket=storage.bucket, Key=storage._key(LEDGER_NAME))
    report = publish(run, uri, all_=True, settings=settings)
    assert (report.uploaded, report.already) == (0, 3) and fake.count("product-put") == 1
    assert set(fake.downloads.values()) == {1}


def test_an_output_file_gone_from_the_run_is_one_problem_line(shop, tmp_path, monkeypatch):
    fake, settings = shop
    _fast(monkeypatch)
    run = tmp_path / "run"
    first, _variant, _scene = write_run(open_storage(run))["tee-00"]
    (run / first).unlink()
    report = publish(str(run), "shopify://northwind", all_=True, settings=settings)
    (problem,) = report.problems
    assert problem.startswith("sku tee-00: cannot read") and first.rsplit("/", 1)[1] in problem
    assert fake.count("Stage") == 0 and not (run / LEDGER_NAME).exists()


def test_damaged_review_entries_count_as_no_decision(shop, tmp_path, monkeypatch):
    fake, settings = shop
    _fast(monkeypatch)
    run = tmp_path / "run"
    first, variant, _scene = write_run(open_storage(run))["tee-00"]
    outputs = {first: "approved", variant: {"status": "approved"}}
    (run / "review.json").write_text(json.dumps({"outputs": outputs, "products": ["tee-00"]}))
    report = publish(str(run), "shopify://northwind", settings=settings)
    assert report.uploaded == 1 and len(fake.uploads) == 1  # only the intact approval counts
    (run / "review.json").write_text("[]")
    with pytest.raises(PublishError, match="review.json in the run folder is not valid"):
        publish(str(run), "shopify://northwind", all_=True, settings=settings)


def test_a_staged_upload_target_that_trickles_ends_at_the_deadline(shop, tls, tmp_path, monkeypatch):
    from tests.test_sources_stores import _Trickle

    fake, settings = shop
    run = tmp_path / "run"
    write_run(open_storage(run))
    trickle = _Trickle(tls[1])
    stage = fake._stage

    def slow_target(variables, request):
        answer = stage(variables, request)
        for target in answer["stagedUploadsCreate"]["stagedTargets"]:
            target["url"] = f"https://127.0.0.1:{trickle.port}/upload"
        return answer

    monkeypatch.setattr(fake, "_stage", slow_target)
    try:
        report = publish(str(run), "shopify://northwind", all_=True,
                         settings=settings.model_copy(update={"request_deadline_s": 1.0}))
    finally:
        trickle.close()
    (problem,) = report.problems
    assert "the staged upload of packshot-tee-00-shopify-01-" in problem
    assert "request_deadline_s = 1 s" in problem and fake.count("Attach") == 0
