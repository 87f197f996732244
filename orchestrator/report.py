"""The run's visual report ``report.html``, plus the markdown summary used as a Prefect artifact.

One HTML file a merchant can open, that stays small and fast however large the catalog:
thumbnails are files beside it (``thumbs/<sha256>.jpg`` or ``.png``, linked relatively, or by
presigned links on S3), never embedded; product cards come in sections of :data:`PAGE_PRODUCTS`, and
a small inline script shows one section at a time (without script every section shows, and images
still load lazily). Every value is escaped by Jinja2's autoescaping.
"""

from __future__ import annotations

import html
import io
import re
import shlex

from jinja2 import DictLoader, Environment

from orchestrator.manifest import RunTally, StagedFile, chunk_file
from packshot.schemas.results import OutputRecord, ProductResult, RunManifest
from packshot.storage import Storage

THUMB_PX = 220
_COUNT_KEYS = ("done", "needs_review", "skipped", "failed", "invalid", "outputs", "failed_checks")
PAGE_PRODUCTS = 100  # product cards per section of the report
MAX_NEW_THUMBS = 4000  # thumbnails made per report; past this, cards show the files themselves (lazily)
_SHA = re.compile(r"[0-9a-f]{64}")

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{margin:0 0 4px} .meta{color:#666;margin-bottom:16px}
.counts span{display:inline-block;margin-right:14px;padding:4px 10px;border-radius:12px;background:#eee}
.counts .failed,.counts .invalid{background:#fde2e1} .counts .done{background:#e2f6e6}
.counts .needs_review,.sku.needs_review{background:#fff4d6} .review{color:#8a4b00;font-weight:600}
table{border-collapse:collapse;margin:8px 0 20px} td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}
.sku{background:#fff;border:1px solid #e3e3e3;border-radius:8px;padding:12px;margin:12px 0;
content-visibility:auto;contain-intrinsic-size:auto 320px}
.sku h3{margin:0 0 8px;font-size:15px} .grid{display:flex;flex-wrap:wrap;gap:10px}
figure{margin:0;width:220px} figure img{width:220px;height:220px;object-fit:contain;border:1px solid #ddd;
background:repeating-conic-gradient(#eee 0 25%,#fff 0 50%) 0 0/16px 16px}
figcaption{font-size:12px;color:#555;word-break:break-all} .bad img{border:3px solid #d33}
.bad figcaption{color:#b00} .note{color:#8a5a00}
nav.pages{margin:10px 0} nav.pages a{margin-right:8px} nav.pages a.current{font-weight:bold}
"""

# Shows one section at a time, chosen by the address's #p<N>. Sections after the first are inert
# <template>s (parsed, never rendered, their images never requested) until they are chosen, so a
# 10,000-product report opens about as fast as a 100-product one.
_SCRIPT = """
(function(){
  var first=document.getElementById('p1'), later=document.querySelectorAll('template.page');
  var view=document.getElementById('view'), navs=document.querySelectorAll('nav.pages');
  if(!first||!later.length) return;
  var sizes=[first.querySelectorAll('.sku').length];
  later.forEach(function(t){sizes.push(t.content.querySelectorAll('.sku').length);});
  function show(){
    var m=/^#p(\\d+)$/.exec(location.hash), n=m?Math.max(1,Math.min(+m[1],sizes.length)):1;
    first.hidden=n!==1; view.textContent='';
    if(n>1) view.appendChild(later[n-2].content.cloneNode(true));
    navs.forEach(function(nav){
      nav.textContent=''; var start=1;
      sizes.forEach(function(size,i){
        var a=document.createElement('a'); a.href='#p'+(i+1); a.textContent=start+'-'+(start+size-1);
        if(i===n-1) a.className='current'; nav.appendChild(a); start+=size;
      });
    });
  }
  window.addEventListener('hashchange',function(){show(); window.scrollTo(0,0);}); show();
})();
"""

_TEMPLATES = {
    "head.html": """<!doctype html><html><head><meta charset="utf-8"><title>packshot: {{ m.catalog }}</title>
<style>{{ css | safe }}</style></head><body>
<h1>packshot run</h1><div class="meta">catalog <b>{{ m.catalog }}</b> ({{ m.catalog_format or '?' }})
&rarr; {{ m.output }}<br>stages: {{ m.stages | join(', ') }} &middot; presets: {{ m.presets | join(', ') }}
&middot; started {{ m.started.strftime('%Y-%m-%d %H:%M') }} UTC</div>
<div class="counts">{% for name in keys %}<span class="{{ name }}">{{ name.replace('_', ' ') }}:
<b>{{ counts[name] }}</b></span>{% endfor %}</div>
{% if m.backends or m.licences %}<h2>Models</h2><table><tr><th>stage</th><th>backend</th></tr>
{% for k, v in m.backends.items() %}<tr><td>{{ k }}</td><td>{{ v }}</td></tr>{% endfor %}</table>
{% if m.licences %}<table><tr><th>model</th><th>licence</th></tr>
{% for k, v in m.licences.items() %}<tr><td>{{ k }}</td><td>{{ v }}</td></tr>{% endfor %}</table>{% endif %}
{% endif %}{% if m.notes %}<h2>Notes</h2>{% for n in m.notes %}<div class="note">{{ n }}</div>{% endfor %}
{% endif %}""",
    "failure.html": """
<tr><td>{{ p.source_file }}:{{ p.source_line }}</td><td>{{ p.sku or '' }}</td><td>{{ p.status }}</td>\
<td>{{ p.error or '' }}</td></tr>""",
    "review.html": """
<tr><td>{{ p.source_file }}:{{ p.source_line }}</td><td>{{ p.sku or '' }}</td>\
<td>{{ p.review_reasons | join('; ') }}</td></tr>""",
    "card.html": """
<div class="sku {{ p.status }}" id="sku-{{ index }}"><h3>{{ p.sku or '' }} \
<small>({{ p.status.replace('_', ' ') }}, {{ '%.1f' % p.seconds }} s)</small></h3>\
{% for r in p.review_reasons %}<div class="review">needs review: {{ r }}</div>{% endfor %}<div class="grid">
{%- for f in figures %}
<figure{% if f.rec.checks %} class="bad"{% endif %}><a href="{{ f.link }}"><img loading="lazy" \
decoding="async" alt="{{ f.label }}" src="{{ f.src }}"></a><figcaption>{{ f.label }}<br>\
{{ f.rec.width }}&times;{{ f.rec.height }}, {{ f.rec.bytes // 1024 }} KB\
{% if f.rec.generated %} &middot; generated{% endif %}\
{% for c in f.rec.checks %}<br>&#10007; {{ c }}{% endfor %}</figcaption></figure>
{%- endfor %}</div>{% for n in p.notes %}<div class="note">{{ n }}</div>{% endfor %}</div>""",
    "section.html": """
{% if number > 1 %}<template class="page">{% endif %}<section class="page" id="p{{ number }}">""",
}
_jinja = Environment(loader=DictLoader(_TEMPLATES), autoescape=True, keep_trailing_newline=False)


def thumb_key(rec: OutputRecord) -> str | None:
    """Where the report keeps ``rec``'s thumbnail: ``thumbs/<sha256>.png`` for formats with alpha,
    ``.jpg`` otherwise; None when the record's checksum is not a sha256 (a damaged ``.done.json``)."""
    if not _SHA.fullmatch(rec.sha256):
        return None
    return f"thumbs/{rec.sha256}.{'jpg' if rec.format.upper() == 'JPEG' else 'png'}"


def make_thumb(storage: Storage, rec: OutputRecord, key: str) -> str | None:
    """Write ``rec``'s thumbnail under ``key`` (from :func:`thumb_key`); returns ``key``, or None when
    the output cannot be read (the card then shows the file itself)."""
    from PIL import Image

    try:
        img = Image.open(io.BytesIO(storage.read_bytes(rec.key)))
        img.thumbnail((THUMB_PX * 2, THUMB_PX * 2))
        buf = io.BytesIO()
        if key.endswith(".png"):
            img.convert("RGBA" if "A" in img.getbands() else "RGB").save(buf, "PNG", optimize=True)
        else:
            img.convert("RGB").save(buf, "JPEG", quality=80)
        storage.write_bytes(key, buf.getvalue(), "image/png" if key.endswith(".png") else "image/jpeg")
        return key
    except Exception:  # a missing or unreadable file shows as a broken link, not a failed report
        return None


def _href(link: str) -> str:
    """A link for an attribute: presigned https URLs as they are, run keys as ``./key`` (so a key can
    never read as a scheme such as ``javascript:``)."""
    return link if link.startswith(("https://", "http://")) else f"./{link}"


class ReportWriter:
    """Streams products into ``report.html``: failures and product cards go to temporary chunk files
    as products arrive, and :meth:`publish` writes the head (counts, models, notes), the failures
    table and the cards into the final file in one step. Use as a context manager."""

    def __init__(self, storage: Storage):
        self.storage = storage
        self._failures, self._reviews, self._cards = chunk_file(), chunk_file(), chunk_file()
        self._new_thumbs = 0
        self._cards_written = 0

    def add(self, p: ProductResult) -> None:
        if p.status in ("failed", "invalid"):
            self._failures.write(_jinja.get_template("failure.html").render(p=p))
        if p.status == "needs_review":
            self._reviews.write(_jinja.get_template("review.html").render(p=p))
        if not p.outputs:
            return
        if self._cards_written % PAGE_PRODUCTS == 0:
            self._cards.write(self._end_section())
            number = self._cards_written // PAGE_PRODUCTS + 1
            self._cards.write(_jinja.get_template("section.html").render(number=number))
        figures = [self._figure(rec) for rec in p.outputs]
        card = _jinja.get_template("card.html").render(p=p, figures=figures, index=self._cards_written)
        self._cards.write(card)
        self._cards_written += 1

    def _end_section(self) -> str:
        """Closes the section being written: the first is plain HTML, later ones are templates."""
        if not self._cards_written:
            return ""
        return "\n</section>" if self._cards_written <= PAGE_PRODUCTS else "\n</section></template>"

    def _figure(self, rec: OutputRecord) -> dict:
        """The thumbnail is named by the output's checksum, so a rerun finds it and makes none."""
        key = thumb_key(rec)
        if key is not None and not self.storage.exists(key):
            if self._new_thumbs < MAX_NEW_THUMBS:
                self._new_thumbs += 1
                key = make_thumb(self.storage, rec, key)
            else:
                key = None
        link = _href(self.storage.link(rec.key))
        kind = rec.kind if rec.scene is None else f"scene {rec.scene + 1}"
        photo = f"photo {rec.photo}" if rec.photo > 1 else ""  # which of the product's photos
        shows = f"({rec.shows_variant}, photographed)" if rec.shows_variant else ""
        label = " ".join(x for x in (photo, kind, rec.preset or "", rec.variant or "", shows) if x)
        src = _href(self.storage.link(key)) if key else link
        return {"rec": rec, "link": link, "src": src, "label": label}

    def publish(self, header: RunManifest, counts: dict[str, int]) -> str:
        """Write ``report.html`` for the run ``header`` (notes included) and ``counts``; returns its URI."""
        staged = StagedFile(self.storage, "report.html", "text/html")
        try:
            staged.write(_jinja.get_template("head.html").render(m=header, counts=counts, keys=_COUNT_KEYS,
                                                                  css=_CSS))
            if self._failures.tell():
                staged.write("\n<h2>Failures</h2><table><tr><th>file:line</th><th>sku</th><th>status</th>"
                             "<th>reason</th></tr>")
                staged.copy_from(self._failures)
                staged.write("\n</table>")
            if self._reviews.tell():
                staged.write("\n<h2>Needs review</h2><p>Cutouts the segmenter doubts: check them "
                             "(<code>packshot review OUT</code>) before publishing.</p>"
                             "<table><tr><th>file:line</th><th>sku</th><th>why</th></tr>")
                staged.copy_from(self._reviews)
                staged.write("\n</table>")
            staged.write(f"\n<h2>Products</h2><p>{self._cards_written} products with files.</p>"
                         f"<noscript>Without JavaScript only the first {PAGE_PRODUCTS} show; all are in "
                         "manifest.csv.</noscript><nav class='pages'></nav>")
            staged.copy_from(self._cards)
            staged.write(self._end_section())
            staged.write(f"\n<div id='view'></div><nav class='pages'></nav><script>{_SCRIPT}</script>"
                         "\n</body></html>")
        except BaseException:
            staged.discard()
            raise
        return staged.publish()

    def close(self) -> None:
        self._failures.close()
        self._reviews.close()
        self._cards.close()

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_report(storage: Storage, manifest: RunManifest) -> str:
    """The contact sheet of a manifest held in memory (small runs, tests); flows use ReportWriter."""
    tally = RunTally()
    with ReportWriter(storage) as writer:
        for product in manifest.products:
            tally.add(product)
            writer.add(product)
        return writer.publish(manifest, tally.counts())


_MD_MARKS = re.compile(r"([\\`*_\[\]|#!~])")


def md_text(text: object) -> str:
    """Text from a catalog or a file system (SKUs, paths, errors) as plain text in Prefect's markdown:
    HTML escaped (no ``<img onerror=...>`` reaches the page) and markdown's marks backslash-escaped (no
    links, emphasis or table cells made from a SKU). One line: newlines become spaces."""
    return html.escape(_MD_MARKS.sub(r"\\\1", " ".join(str(text).split())), quote=True)


def md_url(url: str) -> str:
    """A URL as a markdown link target: only http(s) and file links, with the characters that could
    end the link percent-encoded."""
    if not url.startswith(("https://", "http://", "file://")):
        raise ValueError(f"not a link: {url[:40]}")
    return "".join(f"%{ord(c):02X}" if c in " ()<>[]\"'`\\" or ord(c) < 32 else c for c in url)


def report_href(report_link: str, review_url: str) -> str:
    """The contact sheet as a link a person can click: the presigned URL of an S3 run; for a local run,
    the file as ``packshot review`` serves it (browsers do not open ``file://`` links from a web page)."""
    if report_link.startswith(("https://", "http://")):
        return report_link
    return f"{review_url.rstrip('/')}/files/report.html"


def _command(text: str) -> str:
    """``text`` as a fenced code block the reader can copy, whatever backticks it holds."""
    fence = "`" * max(3, max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    return f"{fence}\n{text}\n{fence}"


def review_command(output: str) -> str:
    """How to open a run's review page (approve, reject, correct boxes)."""
    if "://" in output:  # the review page reads a local folder
        return f"aws s3 sync {shlex.quote(output)} ./run && packshot review ./run"
    return f"packshot review {shlex.quote(output)}"


def summary_markdown(header: RunManifest, tally: RunTally, report_uri: str, report_link: str = "",
                     review_url: str = "http://127.0.0.1:8765") -> str:
    """The Prefect summary artifact: counts, the contact sheet one click away, the review command,
    models, notes and the first failures. Every catalog value is escaped (:func:`md_text`)."""
    c = tally.counts()
    href = report_href(report_link or report_uri, review_url)
    local = not (report_link or report_uri).startswith(("https://", "http://"))
    lines = [
        f"# packshot run: {md_text(header.catalog)}",
        "",
        "| done | needs review | skipped | failed | invalid rows | outputs | failed checks |",
        "|---|---|---|---|---|---|---|",
        "| " + " | ".join(str(c[k]) for k in _COUNT_KEYS) + " |",
        "",
        f"**[Open the contact sheet]({md_url(href)})**" + (
            " (served by the review command below, run on the worker)" if local
            else " (a presigned link; it expires)"),
        "",
        f"Output: {md_text(header.output)}" + (f"; contact sheet: {md_text(report_uri)}" if local else ""),
        "",
        "Review the cutouts (approve, reject, correct a box) with:",
        "",
        _command(review_command(header.output)),
        "",
        f"then open [the review page]({md_url(review_url.rstrip('/') + '/')})." if local else "",
    ]
    if header.backends:
        lines += ["", "Backends: " + md_text(", ".join(f"{k}={v}" for k, v in header.backends.items()))]
    lines += [f"- {md_text(n)}" for n in header.notes]
    if tally.failures:
        lines += ["", "## Failures", ""]
        lines += [f"- {md_text(f'{p.source_file}:{p.source_line}')} {md_text(p.sku or '')}: "
                  f"{md_text(p.error)}" for p in tally.failures]
        if tally.problems > len(tally.failures):
            lines.append(f"- and {tally.problems - len(tally.failures)} more: see the manifest")
    if tally.to_review:
        lines += ["", "## Needs review", ""]
        lines += [f"- {md_text(f'{p.source_file}:{p.source_line}')} {md_text(p.sku or '')}: "
                  f"{md_text('; '.join(p.review_reasons))}" for p in tally.to_review]
        if c["needs_review"] > len(tally.to_review):
            lines.append(f"- and {c['needs_review'] - len(tally.to_review)} more: see the manifest")
    return "\n".join(lines)
