"""report.html: thumbnails are files beside it (reused on a rerun), every value is escaped, cards
come in sections, and the notes at the top name their SKUs."""

from __future__ import annotations

import re

from orchestrator.manifest import RunTally
from orchestrator.report import PAGE_PRODUCTS, write_report
from packshot.schemas.results import OutputRecord, ProductResult, RunManifest
from packshot.storage import LocalStorage
from tests.review_run import make_run


def test_thumbnails_are_files_linked_relatively_and_reused(tmp_path):
    manifest = make_run(tmp_path)
    storage = LocalStorage(tmp_path)
    write_report(storage, manifest)
    html = (tmp_path / "report.html").read_text()
    assert "data:image" not in html and len(html) < 20_000
    thumbs = sorted((tmp_path / "thumbs").iterdir())
    outputs = [o for p in manifest.products for o in p.outputs]
    assert len(thumbs) == len({o.sha256 for o in outputs}) == 6
    for o in outputs:
        assert f'src="./thumbs/{o.sha256}.png"' in html and f'href="./{o.key}"' in html
    stamps = [t.stat().st_mtime_ns for t in thumbs]
    write_report(storage, manifest)  # a rerun reuses them
    assert [t.stat().st_mtime_ns for t in sorted((tmp_path / "thumbs").iterdir())] == stamps


def _hostile(i: int, sha: str = "0" * 64, key: str | None = None) -> ProductResult:
    sku = f'P{i}"><img src=x onerror=alert({i})>'
    out = OutputRecord(sku=sku, kind="packshot", preset="a'b", key=key or f"P{i}/x.png", uri="u",
                       format="PNG", width=8, height=8, bytes=10, sha256=sha, source_file="c.csv",
                       source_line=i + 2, checks=["<script>alert(2)</script>"])
    return ProductResult(sku=sku, status="done", outputs=[out], notes=[f"<b>note</b> {i % 2}"],
                         source_file="c.csv", source_line=i + 2)


def test_every_value_is_escaped_and_cached_values_are_checked(tmp_path):
    products = [_hostile(i) for i in range(PAGE_PRODUCTS * 2 + 5)]
    products.append(_hostile(900, sha="../../../etc/passwd", key="javascript:alert(3)"))
    tally = RunTally()
    for p in products:
        tally.add(p)
    manifest = RunManifest(catalog='<i>cat</i>.csv', catalog_format="packshot", output="o",
                           started="2026-01-01T00:00:00Z", stages=["segment"], presets=["x"],
                           notes=tally.note_list(), products=products)
    write_report(LocalStorage(tmp_path), manifest)
    html = (tmp_path / "report.html").read_text()
    assert "<img src=x" not in html and "<script>alert" not in html and "<b>note" not in html
    assert "<i>cat" not in html and "&lt;i&gt;cat&lt;/i&gt;.csv" in html
    assert "a&#39;b" in html and "P1&#34;&gt;&lt;img" in html
    assert 'href="./javascript:alert(3)"' in html and "passwd" not in html  # bad checksum: no thumbnail
    assert not (tmp_path / "thumbs").exists()  # the outputs are missing: links, no thumbnails
    assert len(re.findall(r'<section class="page" id="p\d+"', html)) == 3
    assert html.count("</section>") == 3 and html.count("</template>") == 2 and html.endswith("</html>")
    # The notes at the top say which SKUs they are about.
    head = html[: html.index("<h2>Products</h2>")]
    assert "SKU P0&#34;&gt;&lt;img src=x onerror=alert(0)&gt;, P2" in head
    assert "and 99 more: &lt;b&gt;note&lt;/b&gt; 0" in head
