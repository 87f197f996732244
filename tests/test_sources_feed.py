"""Google Merchant Center feeds: RSS, Atom and TSV mapping, per-item errors, hostile XML, URL fetches."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from packshot.config import LoadSettings
from packshot.sources import SourceError, SourceSettings, load_snapshot, open_source, snapshot_json
from packshot.sources.gmc import FeedSource, parse_feed

SAMPLE = Path(__file__).resolve().parents[1] / "catalogs" / "samples" / "gmc_apparel.xml"
OFFLINE = SourceSettings(check_feed_images=False)
G = 'xmlns:g="http://base.google.com/ns/1.0"'


def test_sample_feed_groups_variants_and_reports_bad_items_with_line_position_and_id():
    catalog = open_source(SAMPLE, OFFLINE).read()
    assert catalog.format == "gmc"
    by_sku = {p.sku: p for p in catalog.products}
    assert list(by_sku) == ["TEE-ORG", "HOOD-ZIP", "CAP-WOOL"]
    tee = by_sku["TEE-ORG"]
    assert tee.title == "Organic Tee"  # common words of "Organic Tee - Navy - M", "... - Sage - M"
    assert tee.images == [  # main photos of each variant first (deduplicated), then the additional ones
        "https://shop.example.com/img/organic-tee-navy.jpg",
        "https://shop.example.com/img/organic-tee-sage.jpg",
        "https://shop.example.com/img/organic-tee-navy-back.jpg",
        "https://shop.example.com/img/organic-tee-detail.jpg",
    ]
    assert [c.hex for c in tee.colors] == ["#1F2A44", "#9CAF88"]
    assert tee.category == "T-Shirts" and tee.source_ref == "TEE-ORG" and tee.source_line == 10
    hood = by_sku["HOOD-ZIP"]
    assert hood.title == "Zip Hoodie"  # from the RSS <title> with a character reference (&#8211;)
    assert hood.category == "Activewear"  # textual google_product_category when product_type is absent
    assert by_sku["CAP-WOOL"].category == "Hats" and by_sku["CAP-WOOL"].colors == []

    color, image = catalog.errors
    assert (color.line, color.column, color.sku) == (58, "g:color", "HOOD-ZIP-GRY")
    assert "item 5" in color.message and "heather grey" in color.message and "skipped" in color.message
    assert (image.line, image.column, image.sku) == (75, "g:image_link", "SOCK-3PK")
    assert "item 7 has no image_link" in image.message
    assert any("5 items sharing a g:item_group_id" in n for n in catalog.notes)


def test_atom_feed_with_comments_cdata_and_entities():
    feed = f"""<?xml version="1.0" encoding="ISO-8859-1"?>
<feed xmlns="http://www.w3.org/2005/Atom" {G}>
  <title>Shop</title>
  <!-- <entry><g:id>COMMENTED-OUT</g:id></entry> -->
  <entry>
    <g:id>MUG-1</g:id>
    <title><![CDATA[Mug "Caf\xe9" & Co]]></title>
    <link href="https://shop.example.com/mug"/>
    <g:image_link>https://shop.example.com/mug.jpg?size=big&amp;v=2</g:image_link>
    <g:product_type>Home &gt; Kitchen &gt; Mugs</g:product_type>
  </entry>
</feed>""".encode("latin-1")
    catalog = parse_feed(feed, "feed.atom")
    (mug,) = catalog.products
    assert mug.sku == "MUG-1" and mug.title == 'Mug "Café" & Co' and mug.category == "Mugs"
    assert mug.images == ["https://shop.example.com/mug.jpg?size=big&v=2"]
    assert mug.source_line == 5 and not catalog.errors


def test_tsv_feed_with_comma_separated_additional_images_and_duplicate_ids(tmp_path):
    rows = [
        "id\ttitle\timage_link\tadditional_image_link\titem_group_id\tcolor",
        "S-RED\tShirt Red\thttps://x.example/r.jpg\thttps://x.example/r2.jpg,https://x.example/a%2Cb.jpg\tS\tRed",
        "S-BLU\tShirt Blue\thttps://x.example/b.jpg\t\tS\tBlue",
        "S-RED\tShirt Red again\thttps://x.example/r.jpg\t\tS\tRed",
        "\t\t\t\t\t",
        "PLAIN\tPlain\t../outside.jpg\t\t\t",
    ]
    path = tmp_path / "feed.txt"
    path.write_text("\n".join(rows) + "\n")
    source = open_source(path, OFFLINE)
    assert isinstance(source, FeedSource)  # a .txt whose header names feed attributes
    catalog = source.read()
    (shirt,) = catalog.products
    assert shirt.sku == "S" and shirt.title == "Shirt"
    assert shirt.images == ["https://x.example/r.jpg", "https://x.example/b.jpg", "https://x.example/r2.jpg",
                            "https://x.example/a%2Cb.jpg"]
    assert [c.name for c in shirt.colors] == ["Red", "Blue"]
    duplicate, bad_ref = catalog.errors
    assert duplicate.line == 4 and duplicate.column == "id" and "already used by item 1" in duplicate.message
    assert bad_ref.line == 6 and bad_ref.column == "image_link" and bad_ref.sku == "PLAIN"


def test_a_csv_with_a_txt_name_is_still_read_as_a_packshot_catalog(tmp_path):
    path = tmp_path / "catalog.txt"
    path.write_text("sku\ttitle\timage\nA\tA thing\ta.jpg\n")
    catalog = open_source(path).read()
    assert catalog.format == "packshot" and catalog.products[0].sku == "A"


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE rss [
 <!ENTITY a "lol">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
]>
<rss xmlns:g="http://base.google.com/ns/1.0"><channel><item><g:id>&d;</g:id></item></channel></rss>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<rss xmlns:g="http://base.google.com/ns/1.0"><channel><item><g:id>X</g:id><g:title>&secret;</g:title>
<g:image_link>https://x.example/a.jpg</g:image_link></item></channel></rss>"""
PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;]>
<rss><channel/></rss>"""


@pytest.mark.parametrize(
    "payload", [BILLION_LAUGHS, XXE, PARAMETER_ENTITY], ids=["billion-laughs", "xxe", "parameter-entity"]
)
def test_hostile_xml_is_refused_with_a_clear_message(payload, tmp_path):
    path = tmp_path / "feed.xml"
    path.write_bytes(payload)
    with pytest.raises(SourceError) as caught:
        open_source(path, OFFLINE).read()
    message = str(caught.value)
    assert "refused" in message and "XXE" in message and "<!DOCTYPE" in message
    assert "root:" not in message and "lol" not in message  # nothing was expanded or read


def test_broken_xml_names_line_and_column(tmp_path):
    path = tmp_path / "feed.xml"
    path.write_bytes(f"<rss {G}><channel>\n<item><g:id>A & B</g:id></item></channel></rss>".encode())
    with pytest.raises(SourceError, match=r"line 2, column \d+.*&amp;"):
        open_source(path, OFFLINE).read()


def test_not_a_feed_root_is_refused(tmp_path):
    path = tmp_path / "feed.xml"
    path.write_bytes(b"<catalog><product/></catalog>")
    with pytest.raises(SourceError, match="not an RSS 2.0"):
        open_source(path, OFFLINE).read()


def test_snapshot_round_trip_keeps_store_ids_and_versions():
    catalog = open_source(SAMPLE, OFFLINE).read()
    catalog.products[0].source_version = "sha256:abc"
    back = load_snapshot(snapshot_json(catalog, "https://user:pw@feeds.example/f.xml?token=s3cret"))
    assert back == catalog
    assert b"s3cret" not in snapshot_json(catalog, "https://feeds.example/f.xml?token=s3cret")


# ------------------------------------------------------------------------------------- feeds over HTTP


class _FeedServer(BaseHTTPRequestHandler):
    files: dict[str, tuple[bytes, dict[str, str]]] = {}
    heads: list[str] = []
    gets: list[str] = []

    def do_GET(self):  # noqa: N802
        self.gets.append(self.path)
        self._answer(body=True)

    def do_HEAD(self):  # noqa: N802
        self.heads.append(self.path)
        self._answer(body=False)

    def _answer(self, body: bool):
        data, headers = self.files.get(self.path, (b"", {}))
        self.send_response(200 if data else 404)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def feed_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FeedServer)
    server.daemon_threads = True
    _FeedServer.files, _FeedServer.heads, _FeedServer.gets = {}, [], []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _FeedServer
    server.shutdown()
    server.server_close()


LOCAL = LoadSettings(allow_http=True, allow_private_addresses=True)


def _feed(base: str) -> bytes:
    return f"""<rss {G}><channel>
<item><g:id>A</g:id><g:title>A</g:title><g:image_link>{base}/a.jpg</g:image_link></item>
<item><g:id>B</g:id><g:title>B</g:title><g:image_link>{base}/b.jpg</g:image_link></item>
<item><g:id>C</g:id><g:title>C</g:title><g:image_link>c.jpg</g:image_link></item>
</channel></rss>""".encode()


def test_feed_url_is_fetched_safely_and_image_etags_become_versions_without_downloads(feed_server):
    base, handler = feed_server
    handler.files = {"/feed.xml": (_feed(base), {}), "/a.jpg": (b"AAAA", {"ETag": '"a1"'}),
                     "/b.jpg": (b"BBBB", {"Last-Modified": "Mon, 30 Nov 2026 10:00:00 GMT"})}
    catalog = open_source(f"{base}/feed.xml", SourceSettings(), LOCAL).read()
    versions = {p.sku: p.source_version for p in catalog.products}
    assert set(versions) == {"A", "B"} and all(v and v.startswith("sha256:") for v in versions.values())
    (relative,) = catalog.errors  # a feed from the web cannot point at local files
    assert relative.sku == "C" and "absolute URL" in relative.message
    assert sorted(handler.heads) == ["/a.jpg", "/b.jpg"] and handler.gets == ["/feed.xml"]  # no image bodies

    handler.files["/a.jpg"] = (b"AAAA", {"ETag": '"a2"'})  # the merchant replaced photo A
    reread = open_source(f"{base}/feed.xml", SourceSettings(), LOCAL).read()
    again = {p.sku: p.source_version for p in reread.products}
    assert again["B"] == versions["B"] and again["A"] != versions["A"]


def test_feed_url_refused_by_the_ssrf_rules_and_the_size_cap(feed_server):
    base, handler = feed_server
    handler.files = {"/feed.xml": (_feed(base), {})}
    with pytest.raises(SourceError, match="loopback"):
        open_source(f"{base}/feed.xml", OFFLINE, LoadSettings(allow_http=True)).read()
    with pytest.raises(SourceError, match="FEED_MAX_BYTES"):
        open_source(f"{base}/feed.xml", SourceSettings(feed_max_bytes=100), LOCAL).read()


def test_unknown_scheme_is_refused():
    with pytest.raises(SourceError, match="shopify://SHOP"):
        open_source("ftp://feeds.example/f.xml")
