"""The review page in a real browser: Debian's headless Chromium driven by Playwright, against the
review app served by uvicorn on 127.0.0.1 (free port). Clicks approve and reject (a reason, a box
drawn on the photo, a box typed in) and checks review.json and the approved-only export on disk."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from pathlib import Path

import httpx
import pytest

from packshot.storage import LocalStorage
from tests.review_run import PHOTO, make_run

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

if not CHROMIUM.is_file():
    pytest.skip("Debian's chromium is not installed: apt-get install -y chromium (.ci/run installs it)",
                allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (dev extra)")


@pytest.fixture
def served(tmp_path, request):
    """(base URL, run folder) of the review app over a small run, served in a thread; an indirect
    parameter names the run's segmenter (default classic)."""
    import uvicorn

    from orchestrator.review.server import create_app

    out = tmp_path / "run"
    make_run(out, backend=getattr(request, "param", "classic"))
    server = uvicorn.Server(uvicorn.Config(create_app(out), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the review server did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", out
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module (it takes a few seconds to start)."""
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    yield context.new_page()
    context.close()


def _figure(page, key: str):
    return page.locator(f"figure.output[data-key='{key}']")


def _wait_for_skus(page, skus: list[str]) -> None:
    """Wait until the page lists exactly ``skus``, in order."""
    listed = "JSON.stringify([...document.querySelectorAll('section.product')].map(s => s.dataset.sku))"
    try:
        want = json.dumps(skus, separators=(",", ":"))  # as JSON.stringify writes it
        page.wait_for_function(f"want => {listed} === want", arg=want, timeout=10_000)
    except playwright_api.TimeoutError:
        raise AssertionError(f"the page lists {page.evaluate(listed)}, not {skus}") from None


def _review(out: Path) -> dict:
    return json.loads((out / "review.json").read_text())


def test_approve_and_reject_in_the_browser_write_review_json(served, page):
    base, out = served
    page.goto(base + "/")
    page.wait_for_selector("section.product[data-sku='D']")
    assert page.locator("section.product").count() == 4
    assert "does not look like a studio shot" in page.locator("section[data-sku='D'] .warnings").inner_text()

    page.fill("#reviewer", "Dana")
    page.dispatch_event("#reviewer", "change")
    for key in ("A/cutout.png", "A/background-white.png"):
        fig = _figure(page, key)
        fig.locator("input.reason").fill("clean edges")
        fig.locator("button.approve").click()
        fig.locator(".decision[data-saved='approved']").wait_for()

    # B: draw the box on the source photo, then reject the cutout.
    photo = page.locator("section[data-sku='B'] figure.source img")
    photo.scroll_into_view_if_needed()
    r = photo.bounding_box()
    page.mouse.move(r["x"] + 0.25 * r["width"], r["y"] + 0.2 * r["height"])
    page.mouse.down()
    page.mouse.move(r["x"] + 0.5 * r["width"], r["y"] + 0.5 * r["height"], steps=4)
    page.mouse.move(r["x"] + 0.75 * r["width"], r["y"] + 0.8 * r["height"], steps=4)
    page.mouse.up()
    cutout_b = _figure(page, "B/cutout.png")
    assert cutout_b.locator("input[name='x1']").input_value() != ""
    cutout_b.locator("input.reason").fill("kept the table top")
    cutout_b.locator("button.reject").click()
    cutout_b.locator(".decision[data-saved='rejected']").wait_for()
    b_box = _review(out)["outputs"]["B/cutout.png"]["correction"]["box"]

    # D: a box typed in; first one outside the photo (refused, nothing written), then a good one.
    cutout_d = _figure(page, "D/cutout.png")
    for name, value in zip(("x0", "y0", "x1", "y1"), (5, 6, 300, 40), strict=True):
        cutout_d.locator(f"input[name='{name}']").fill(str(value))
    cutout_d.locator("input.reason").fill("lost the handle")
    cutout_d.locator("button.reject").click()
    playwright_api.expect(cutout_d.locator(".error")).to_contain_text("outside the 80x60 photo")
    assert "D/cutout.png" not in _review(out)["outputs"]
    cutout_d.locator("input[name='x1']").fill("30")
    cutout_d.locator("button.reject").click()
    cutout_d.locator(".decision[data-saved='rejected']").wait_for()

    # B's generated background: a new seed.
    background_b = _figure(page, "B/background-white.png")
    assert _figure(page, "B/cutout.png").locator("input.new-seed").count() == 0  # cutouts take a box
    background_b.locator("input.new-seed").check()
    background_b.locator("button.reject").click()
    background_b.locator(".decision[data-saved='rejected']").wait_for()

    review = _review(out)
    assert review["outputs"]["B/background-white.png"]["correction"]["new_seed"] is True
    assert review["corrections"]["B"]["seed_offset"] == 1 and review["corrections"]["B"]["bbox"] == b_box
    assert set(review["outputs"]) == {"A/cutout.png", "A/background-white.png", "B/cutout.png",
                                      "B/background-white.png", "D/cutout.png"}
    assert review["outputs"]["A/cutout.png"]["status"] == "approved"
    assert review["outputs"]["A/cutout.png"]["reason"] == "clean edges"
    assert review["outputs"]["A/cutout.png"]["reviewer"] == "Dana"
    b = review["outputs"]["B/cutout.png"]
    assert b["status"] == "rejected" and b["reason"] == "kept the table top" and b["sku"] == "B"
    expected = (0.25 * PHOTO[0], 0.2 * PHOTO[1], 0.75 * PHOTO[0], 0.8 * PHOTO[1])
    assert all(abs(got - want) <= 2 for got, want in zip(b["correction"]["box"], expected, strict=True))
    assert review["outputs"]["D/cutout.png"]["correction"] == {"box": [5, 6, 30, 40], "points": None,
                                                               "new_seed": False}
    assert b["decided_at"] and not list(out.glob(".review.json.*.tmp"))

    # Filters: failed products only, those that need review, then the rejected ones.
    for name, value, skus in (("status", "failed", ["C"]), ("status", "needs_review", ["D"]),
                              ("status", "", ["A", "B", "C", "D"]), ("decision", "rejected", ["B", "D"])):
        page.select_option(f"select[name='{name}']", value)
        _wait_for_skus(page, skus)

    # The export lists exactly the approved outputs.
    page.click("#export")
    page.wait_for_function("document.getElementById('export-result').textContent.includes('approved')")
    approved = json.loads((out / "approved.json").read_text())
    keys = [o["key"] for p in approved["products"] for o in p["outputs"]]
    assert keys == ["A/cutout.png", "A/background-white.png"]
    csv_keys = [row["key"] for row in csv.DictReader(io.StringIO((out / "approved.csv").read_text()))]
    assert csv_keys == keys


@pytest.mark.parametrize("served", ["sam"], indirect=True)
def test_include_and_exclude_points_when_the_run_used_sam(served, page):
    base, out = served
    page.goto(base + "/")
    photo = page.locator("section[data-sku='A'] figure.source img")
    photo.wait_for()
    # Its size is known only once the picture has loaded: measure the box after that, not before.
    photo.evaluate("img => img.complete && img.naturalWidth ? null : new Promise(r => img.onload = r)")
    r = photo.bounding_box()
    page.mouse.click(r["x"] + r["width"] / 2, r["y"] + r["height"] / 2)
    page.keyboard.down("Shift")
    page.mouse.click(r["x"] + 0.1 * r["width"], r["y"] + 0.1 * r["height"])
    page.keyboard.up("Shift")
    assert page.locator("section[data-sku='A'] .point").count() == 2
    cutout = _figure(page, "A/cutout.png")
    cutout.locator("button.reject").click()
    cutout.locator(".decision[data-saved='rejected']").wait_for()
    points = _review(out)["outputs"]["A/cutout.png"]["correction"]["points"]
    assert [p["include"] for p in points] == [True, False]
    assert abs(points[0]["x"] - PHOTO[0] / 2) <= 1 and abs(points[1]["y"] - 0.1 * PHOTO[1]) <= 1


def test_only_the_runs_images_are_served(served):
    base, out = served
    assert httpx.get(base + "/files/A/cutout.png").status_code == 200
    assert httpx.get(base + "/files/A/source-preview.jpg").status_code == 200
    for bad in ("/files/secret.txt", "/files/manifest.json", "/files/..%2Fsecret.txt",
                "/files/A/..%2F..%2Fetc%2Fpasswd", "/files/thumbs/" + "0" * 64 + ".jpg"):
        assert httpx.get(base + bad).status_code == 404, bad
    assert httpx.get(base + "/", headers={"Host": "evil.example"}).status_code == 400
    assert httpx.post(base + "/api/export", headers={"Origin": "http://evil.example"}).status_code == 403
    assert not (out / "approved.json").exists()
    bad_key = {"sku": "A", "key": "../secret.txt", "status": "approved"}
    assert httpx.post(base + "/api/decisions", json=bad_key).status_code == 422
    other = {"sku": "A", "key": "B/cutout.png", "status": "approved"}
    assert "not an output of SKU" in httpx.post(base + "/api/decisions", json=other).json()["detail"]
    points = {"sku": "A", "key": "A/cutout.png", "status": "rejected",
              "correction": {"points": [{"x": 3, "y": 4, "include": True}]}}
    assert "need the SAM segmenter" in httpx.post(base + "/api/decisions", json=points).json()["detail"]
    assert not (out / "review.json").exists()


def test_the_report_shows_one_section_at_a_time(tmp_path, page):
    from orchestrator.report import PAGE_PRODUCTS, write_report
    from tests.test_report import _hostile

    manifest = make_run(tmp_path)
    extra = [_hostile(i) for i in range(PAGE_PRODUCTS * 2)]
    write_report(LocalStorage(tmp_path), manifest.model_copy(update={"products": manifest.products + extra}))
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: errors.append("dialog: " + dialog.message))
    page.goto((tmp_path / "report.html").as_uri())
    assert page.locator("section.page:visible").count() == 1
    assert page.locator("#p1").is_visible() and not page.locator("#p2").is_visible()
    assert page.locator("#p1 img").first.evaluate("img => img.complete && img.naturalWidth") == 80
    page.locator("nav.pages").first.get_by_text("101-200").click()
    page.wait_for_function("location.hash === '#p2'")
    assert page.locator("#p2").is_visible() and not page.locator("#p1").is_visible()
    assert not errors  # no script errors, and no injected alert ran
