"""S3 storage, inputs and inbox against a real S3-compatible server (moto in server mode) on 127.0.0.1."""

from __future__ import annotations

import hashlib
import io
import json
import os

import boto3
import httpx
import pytest
from botocore.config import Config
from PIL import Image

from tests.s3_fixtures import *  # noqa: F403 - the moto server fixture (s3_server)
from tests.studio import studio_shot, write_catalog

BUCKET = "packshot-test"


@pytest.fixture
def s3(s3_server, monkeypatch):
    """Settings and credentials pointing at the local server; a fresh bucket per test."""
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                        "AWS_DEFAULT_REGION": "us-east-1", "PACKSHOT_STORAGE__S3_ENDPOINT_URL": s3_server,
                        "PACKSHOT_STORAGE__S3_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1",
                          config=Config(s3={"addressing_style": "path"}))
    client.create_bucket(Bucket=BUCKET)
    yield client
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    client.delete_bucket(Bucket=BUCKET)


def test_round_trip_multipart_and_presigned_links(s3, tmp_path):
    from packshot.storage import S3Storage, open_storage

    storage = open_storage(f"s3://{BUCKET}/runs/r1")
    assert isinstance(storage, S3Storage)
    uri = storage.write_bytes("SKU-1/packshot.jpg", b"small", "image/jpeg")
    assert uri == f"s3://{BUCKET}/runs/r1/SKU-1/packshot.jpg"
    assert storage.read_bytes("SKU-1/packshot.jpg") == b"small" and storage.exists("SKU-1/packshot.jpg")
    assert not storage.exists("SKU-1/nothing.jpg")
    head = s3.head_object(Bucket=BUCKET, Key="runs/r1/SKU-1/packshot.jpg")
    assert head["ContentType"] == "image/jpeg"

    # Above the threshold the upload goes multipart (the ETag of a multipart object ends in -<parts>).
    big = os.urandom(12 * 1024 * 1024 + 123)
    storage = S3Storage(f"s3://{BUCKET}/runs/r1", presign_expiry_s=600, multipart_threshold_mb=5,
                        multipart_chunk_mb=5)
    storage.write_bytes("lora/style.safetensors", big)
    etag = s3.head_object(Bucket=BUCKET, Key="runs/r1/lora/style.safetensors")["ETag"]
    assert etag.strip('"').endswith("-3")
    local = tmp_path / "clip.mp4"
    local.write_bytes(big[::-1])
    storage.upload_file("SKU-1/clip.mp4", local, "video/mp4")
    fetched = storage.download_file("SKU-1/clip.mp4", tmp_path / "back" / "clip.mp4")
    assert hashlib.sha256(fetched.read_bytes()).digest() == hashlib.sha256(big[::-1]).digest()

    # A presigned link opens with plain HTTP, no credentials.
    link = storage.link("lora/style.safetensors")
    assert "X-Amz-Signature" in link and "X-Amz-Expires=600" in link
    assert httpx.get(link, timeout=30).content == big


def test_catalog_run_reads_and_writes_s3_and_reruns_incrementally(prefect_api, s3, monkeypatch, tmp_path):
    from flows.catalog_run import catalog_run
    from orchestrator.options import RunOptions
    from orchestrator.settings import get_settings

    monkeypatch.setenv("PACKSHOT_EXPORT__PRESETS_FILE", os.path.join(os.path.dirname(__file__),
                                                                     "small_presets.yaml"))
    monkeypatch.setenv("PACKSHOT_SEGMENT__BACKEND", "classic")
    get_settings.cache_clear()  # the fixtures read the settings before these variables were set
    for i, sku in enumerate(("S3-A", "S3-B")):
        buf = io.BytesIO()
        Image.fromarray(studio_shot(shape="mug" if i else "bottle", seed=i)[0]).save(buf, "JPEG", quality=92)
        s3.put_object(Bucket=BUCKET, Key=f"uploads/{sku}.jpg", Body=buf.getvalue())
    catalog = write_catalog(tmp_path / "cat", [{"sku": s, "image": f"s3://{BUCKET}/uploads/{s}.jpg"}
                                               for s in ("S3-A", "S3-B")])
    options = RunOptions(catalog=str(catalog), out=f"s3://{BUCKET}/out/nightly", presets=["test-white"],
                         stages=["segment", "export"])

    first = catalog_run(options)
    assert first["counts"]["done"] == 2 and first["manifest"] == f"s3://{BUCKET}/out/nightly/manifest.json"
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key="out/nightly/manifest.json")["Body"].read())
    for product in manifest["products"]:
        for out in product["outputs"]:
            data = s3.get_object(Bucket=BUCKET, Key=f"out/nightly/{out['key']}")["Body"].read()
            assert hashlib.sha256(data).hexdigest() == out["sha256"]
    report = s3.get_object(Bucket=BUCKET, Key="out/nightly/report.html")["Body"].read().decode()
    assert "X-Amz-Signature" in report  # links in the contact sheet are presigned
    assert "X-Amz-Signature" in first["report_link"]
    assert httpx.get(first["report_link"], timeout=30).text == report

    again = catalog_run(options)
    assert again["counts"]["skipped"] == 2 and again["counts"]["done"] == 0


def test_s3_inbox_claims_a_file_exactly_once(s3):
    from orchestrator.inbox import open_inbox

    s3.put_object(Bucket=BUCKET, Key="inbox/spring.csv", Body=b"sku,title,image\nA,A,a.jpg\n")
    s3.put_object(Bucket=BUCKET, Key="inbox/processed/old.csv", Body=b"x")  # not new: in a subfolder
    first, second = open_inbox(f"s3://{BUCKET}/inbox"), open_inbox(f"s3://{BUCKET}/inbox")
    (item,) = first.new_files(settle_s=0)
    assert item.key == "spring.csv"
    assert [first.claim(item), second.claim(item)] == [True, False]
    assert first.local_copy(item).read_bytes().startswith(b"sku,title")
    moved = first.settle(item, "processed", {".validation.txt": b"1 product ready\n"})
    assert moved.startswith(f"s3://{BUCKET}/inbox/processed/") and moved.endswith("-spring.csv")
    assert first.new_files(settle_s=0) == []
    key = moved.removeprefix(f"s3://{BUCKET}/")
    assert s3.get_object(Bucket=BUCKET, Key=f"{key}.validation.txt")["Body"].read() == b"1 product ready\n"
    assert "processed:" in second.claim_note(item)
