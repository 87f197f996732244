"""The review page against other sites and other review servers: no framing, exact-origin writes, a
body cap, no 500 on NaN; two servers on one run merge their decisions; damaged files read as absent
or one line; runs on S3 (moto server) are reviewed through the storage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.review_run import make_run
from tests.s3_fixtures import *  # noqa: F403 (the s3_server and s3_bucket fixtures)

BASE = "http://127.0.0.1:8765"


def _client(out) -> TestClient:
    from orchestrator.review.server import create_app

    return TestClient(create_app(out), base_url=BASE)


def test_the_page_cannot_be_framed(tmp_path):
    make_run(tmp_path)
    client = _client(tmp_path)
    for path in ("/", "/api/summary", "/files/A/cutout.png"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"


def test_writes_need_the_exact_origin_scheme_host_and_port(tmp_path):
    make_run(tmp_path)
    client = _client(tmp_path)
    decision = {"sku": "A", "key": "A/cutout.png", "status": "approved"}
    for origin in ("http://127.0.0.1:1", "http://127.0.0.1", "https://127.0.0.1:8765", "http://localhost:8765",
                   "http://evil.example:8765", "null"):
        for method, path, body in (("POST", "/api/export", None), ("POST", "/api/decisions", decision),
                                   ("DELETE", "/api/decisions?sku=A", None)):
            response = client.request(method, path, json=body, headers={"Origin": origin})
            assert response.status_code == 403, (origin, method, path)
    assert not (tmp_path / "approved.json").exists() and not (tmp_path / "review.json").exists()
    # The page's own origin, and tools that send no Origin (curl, scripts), may write.
    assert client.post("/api/decisions", json=decision, headers={"Origin": BASE}).status_code == 200
    assert client.post("/api/export").status_code == 200
    # A fetch the browser marks as coming from another site is refused even without an Origin.
    assert client.post("/api/export", headers={"Sec-Fetch-Site": "same-site"}).status_code == 403


def test_request_bodies_are_capped(tmp_path):
    from orchestrator.review.server import MAX_BODY_BYTES

    make_run(tmp_path)
    client = _client(tmp_path)
    big = b'{"sku": "A", "status": "approved", "reason": "' + b"x" * MAX_BODY_BYTES + b'"}'
    response = client.post("/api/decisions", content=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413

    def chunks():  # no Content-Length: counted as it arrives
        yield big[: len(big) // 2]
        yield big[len(big) // 2 :]

    response = client.post("/api/decisions", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert not (tmp_path / "review.json").exists()


def test_nan_and_infinity_in_a_decision_are_a_4xx_not_a_500(tmp_path):
    make_run(tmp_path)
    client = _client(tmp_path)
    for body in ('{"sku": "A", "key": "A/cutout.png", "status": "rejected",'
                 ' "correction": {"box": [NaN, 0, 5, 5]}}',
                 '{"sku": "A", "status": "rejected", "correction": {"points": [{"x": Infinity, "y": 1}]}}',
                 '{"sku": NaN, "status": "approved"}'):
        response = client.post("/api/decisions", content=body, headers={"Content-Type": "application/json"})
        assert 400 <= response.status_code < 500, (body, response.status_code)
        assert "NaN" not in response.text or response.headers["content-type"].startswith("application/json")


def test_two_review_servers_on_one_run_keep_both_decisions(tmp_path):
    make_run(tmp_path)
    first, second = _client(tmp_path), _client(tmp_path)  # both read the (empty) review now
    assert first.post("/api/decisions", json={"sku": "A", "key": "A/cutout.png", "status": "approved"}
                      ).status_code == 200
    assert second.post("/api/decisions", json={"sku": "B", "status": "rejected", "reason": "scratched"}
                       ).status_code == 200
    assert first.post("/api/decisions", json={"sku": "D", "key": "D/cutout.png", "status": "rejected",
                                              "correction": {"box": [1, 1, 40, 40]}}).status_code == 200
    saved = json.loads((tmp_path / "review.json").read_text())
    assert set(saved["outputs"]) == {"A/cutout.png", "D/cutout.png"} and set(saved["products"]) == {"B"}
    assert saved["corrections"]["D"]["bbox"] == [1, 1, 40, 40]
    # Each server shows the other's decisions too.
    assert set(second.get("/api/review").json()["outputs"]) == {"A/cutout.png", "D/cutout.png"}
    assert first.get("/api/summary").json()["decisions"]["rejected"] == 2  # B (by the other server) and D
    # Undo on one server removes only that decision.
    assert second.delete("/api/decisions", params={"sku": "A", "key": "A/cutout.png"}).json()["removed"]
    saved = json.loads((tmp_path / "review.json").read_text())
    assert set(saved["outputs"]) == {"D/cutout.png"} and set(saved["products"]) == {"B"}


def test_a_damaged_review_entry_is_left_out_and_the_others_hold(tmp_path):
    from orchestrator.review.decisions import load_review
    from packshot.storage import LocalStorage

    make_run(tmp_path)
    good = {"sku": "A", "key": "A/cutout.png", "status": "approved", "decided_at": "2026-01-01T00:00:00Z"}
    bad = {"sku": "B", "key": "B/cutout.png", "status": "maybe"}
    (tmp_path / "review.json").write_text(json.dumps({"version": 1, "outputs": {"A/cutout.png": good,
                                                                                "B/cutout.png": bad}}))
    review, note = load_review(LocalStorage(tmp_path))
    assert set(review.outputs) == {"A/cutout.png"} and "1 damaged entry" in note
    client = _client(tmp_path)
    assert "1 damaged entry" in client.get("/api/summary").json()["note"]
    assert client.post("/api/decisions", json={"sku": "C", "status": "approved"}).status_code == 200
    assert set(json.loads((tmp_path / "review.json").read_text())["outputs"]) == {"A/cutout.png"}
    assert len(list(tmp_path.glob("review.damaged-*.json"))) == 1  # the merchant's file is kept

    # A damaged header (not an entry) loses no decision either.
    (tmp_path / "review.json").write_text(json.dumps({"version": 7, "updated": "yesterday",
                                                      "outputs": {"A/cutout.png": good}}))
    review, note = load_review(LocalStorage(tmp_path))
    assert set(review.outputs) == {"A/cutout.png"} and "damaged header" in note


def test_review_of_a_damaged_manifest_or_a_malformed_location_is_one_line(tmp_path):
    from cli.main import app

    make_run(tmp_path / "run")
    (tmp_path / "run" / "manifest.json").write_text('{"catalog": "c.csv", "products": [')
    runner = CliRunner()
    for target in (str(tmp_path / "run"), "s3:/bucket/run", "s3://B/run", str(tmp_path / "none")):
        result = runner.invoke(app, ["review", target])
        assert result.exit_code == 2, (target, result.output)
        assert result.output.count("error:") == 1 and "Traceback" not in result.output, result.output
    assert not (tmp_path / "none").exists()  # a typo does not create a folder


def _our_traceback(output: str) -> bool:
    """A traceback from the command (not Prefect's logging handler complaining, in a long test session,
    that an earlier test's captured stream is closed)."""
    return any(word in output for word in ("ClientError", "botocore", "NoSuchBucket", "packshot/",
                                           "cli/main"))


def _upload_run(client, bucket: str, local: Path, prefix: str) -> None:
    for path in local.rglob("*"):
        if path.is_file():
            client.put_object(Bucket=bucket, Key=f"{prefix}/{path.relative_to(local).as_posix()}",
                              Body=path.read_bytes())


def test_a_run_on_s3_is_reviewed_through_the_storage(s3_bucket, tmp_path):
    client, bucket = s3_bucket
    make_run(tmp_path / "run")
    _upload_run(client, bucket, tmp_path / "run", "runs/spring")
    uri = f"s3://{bucket}/runs/spring"
    page, other = _client(uri), _client(uri)

    items = page.get("/api/products").json()["items"]
    assert [p["sku"] for p in items] == ["A", "B", "C", "D"]
    image = page.get(items[0]["outputs"][0]["url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content == (tmp_path / "run" / "A" / "cutout.png").read_bytes()
    assert page.get("/files/secret.txt").status_code == 404  # only the run's images
    assert page.get("/files/..%2Fother/x.png").status_code == 404

    assert page.post("/api/decisions", json={"sku": "A", "key": "A/cutout.png", "status": "approved"}
                     ).status_code == 200
    assert other.post("/api/decisions", json={"sku": "B", "status": "rejected"}).status_code == 200
    saved = json.loads(client.get_object(Bucket=bucket, Key="runs/spring/review.json")["Body"].read())
    assert set(saved["outputs"]) == {"A/cutout.png"} and set(saved["products"]) == {"B"}
    assert "Contents" not in client.list_objects_v2(Bucket=bucket, Prefix="runs/spring/.locks/")  # released
    exported = page.post("/api/export").json()
    assert exported["outputs"] == 1 and exported["json"].startswith(f"s3://{bucket}/runs/spring/")


def test_review_of_an_s3_run_in_a_missing_bucket_is_one_line(s3_bucket):
    from cli.main import app

    result = CliRunner().invoke(app, ["review", "s3://no-such-bucket-here/run"])
    assert result.exit_code == 2 and result.output.count("error:") == 1, result.output
    assert "does not exist" in result.output and not _our_traceback(result.output)


@pytest.mark.parametrize("target", ["s3:/bucket/x", "s3:bucket/x", "S3://bucket/x", "s3://bucket_x/y",
                                    "gs://bucket/x", "file:/tmp/x"])
def test_malformed_output_locations_are_refused_before_any_work(target, tmp_path, monkeypatch):
    from cli.main import app

    monkeypatch.chdir(tmp_path)
    catalog = tmp_path / "cat.csv"
    catalog.write_text("sku,image\nA,a.jpg\n")
    result = CliRunner().invoke(app, ["run", str(catalog), "--out", target])
    assert result.exit_code == 2, result.output
    assert result.output.count("error:") == 1 and "--out" in result.output, result.output
    assert list(tmp_path.iterdir()) == [catalog]  # no folder named "s3:" (or anything else) was made


def test_a_run_into_a_missing_bucket_is_one_line_before_any_work(s3_bucket, tmp_path, monkeypatch):
    from cli.main import app

    catalog = tmp_path / "cat.csv"
    catalog.write_text("sku,image\nA,a.jpg\n")
    result = CliRunner().invoke(app, ["run", str(catalog), "--out", "s3://no-such-bucket-here/run"])
    assert result.exit_code == 2 and result.output.count("error:") == 1, result.output
    assert "no-such-bucket-here" in result.output and "does not exist" in result.output
    assert not _our_traceback(result.output)


def test_a_decision_that_cannot_get_the_lease_is_a_503_naming_the_holder(tmp_path, monkeypatch):
    from orchestrator.review import decisions
    from packshot.lease import acquire_lease
    from packshot.storage import LocalStorage

    make_run(tmp_path)
    client = _client(tmp_path)
    monkeypatch.setattr(decisions, "LEASE_WAIT_S", 0.3)
    with acquire_lease(LocalStorage(tmp_path), "review", "a stuck review script"):
        response = client.post("/api/decisions", json={"sku": "A", "status": "approved"})
    assert response.status_code == 503 and "a stuck review script" in response.json()["detail"]
    assert client.post("/api/decisions", json={"sku": "A", "status": "approved"}).status_code == 200
