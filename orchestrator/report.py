"""The run's visual report: a self-contained HTML contact sheet (thumbnails embedded), plus the
markdown summary used as a Prefect artifact."""

from __future__ import annotations

import base64
import html
import io

from PIL import Image

from orchestrator.manifest import RunTally, StagedFile, chunk_file
from packshot.schemas.results import OutputRecord, ProductResult, RunManifest
from packshot.storage import Storage

THUMB_PX = 220
_COUNT_KEYS = ("done", "skipped", "failed", "invalid", "outputs", "failed_checks")
MAX_EMBEDDED = 4000  # past this many thumbnails the sheet links files instead of embedding them

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{margin:0 0 4px} .meta{color:#666;margin-bottom:16px}
.counts span{display:inline-block;margin-right:14px;padding:4px 10px;border-radius:12px;background:#eee}
.counts .failed,.counts .invalid{background:#fde2e1} .counts .done{background:#e2f6e6}
table{border-collapse:collapse;margin:8px 0 20px} td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}
.sku{background:#fff;border:1px solid #e3e3e3;border-radius:8px;padding:12px;margin:12px 0}
.sku h3{margin:0 0 8px;font-size:15px} .grid{display:flex;flex-wrap:wrap;gap:10px}
figure{margin:0;width:220px} figure img{width:220px;height:220px;object-fit:contain;border:1px solid #ddd;
background:repeating-conic-gradient(#eee 0 25%,#fff 0 50%) 0 0/16px 16px}
figcaption{font-size:12px;color:#555;word-break:break-all} .bad img{border:3px solid #d33}
.bad figcaption{color:#b00} .note{color:#8a5a00}
"""


def _thumb(storage: Storage, rec: OutputRecord) -> str | None:
    # Thumbnails are cached by the output's sha256, so a nightly rerun's report reads them back
    # instead of decoding and resizing every image again.
    cached = f".cache/thumbs/{rec.sha256}"
    try:
        if storage.exists(cached):
            return storage.read_bytes(cached).decode()
        img = Image.open(io.BytesIO(storage.read_bytes(rec.key)))
        img.thumbnail((THUMB_PX * 2, THUMB_PX * 2))
        buf = io.BytesIO()
        if img.mode == "RGBA":
            img.save(buf, "PNG", optimize=True)
            mime = "png"
        else:
            img.convert("RGB").save(buf, "JPEG", quality=80)
            mime = "jpeg"
        uri = f"data:image/{mime};base64,{base64.b64encode(buf.getvalue()).decode()}"
        storage.write_bytes(cached, uri.encode(), "text/plain")
        return uri
    except Exception:  # a missing or unreadable file shows as a broken link, not a failed report
        return None


class ReportWriter:
    """Streams products into ``report.html``: failures and product cards go to temporary chunk files
    as products arrive, and :meth:`publish` writes the head (counts, models, notes), the failures
    table and the cards into the final file in one step. Use as a context manager."""

    def __init__(self, storage: Storage):
        self.storage = storage
        self._failures, self._cards = chunk_file(), chunk_file()
        self._embedded = 0

    def add(self, p: ProductResult) -> None:
        e = html.escape
        if p.status in ("failed", "invalid"):
            self._failures.write(
                f"\n<tr><td>{e(p.source_file)}:{p.source_line}</td><td>{e(p.sku or '')}</td>"
                f"<td>{p.status}</td><td>{e(p.error or '')}</td></tr>"
            )
        if not p.outputs:
            return
        out = [
            f"<div class='sku'><h3>{e(p.sku or '')} <small>({p.status}, {p.seconds:.1f} s)</small></h3>"
            "<div class='grid'>"
        ]
        for rec in p.outputs:
            src = None
            if self._embedded < MAX_EMBEDDED:
                src = _thumb(self.storage, rec)
                self._embedded += 1
            out.append(_figure(rec, src, self.storage.link(rec.key)))
        out.append("</div>")
        out += [f"<div class='note'>{e(n)}</div>" for n in p.notes]
        out.append("</div>")
        self._cards.write("\n" + "\n".join(out))

    def publish(self, header: RunManifest, counts: dict[str, int]) -> str:
        """Write ``report.html`` for the run ``header`` (notes included) and ``counts``; returns its URI."""
        staged = StagedFile(self.storage, "report.html", "text/html")
        try:
            staged.write(_head(header, counts))
            if self._failures.tell():
                staged.write("\n<h2>Failures</h2><table><tr><th>file:line</th><th>sku</th><th>status</th>"
                             "<th>reason</th></tr>")
                staged.copy_from(self._failures)
                staged.write("\n</table>")
            staged.write("\n<h2>Products</h2>")
            staged.copy_from(self._cards)
            staged.write("\n</body></html>")
        except BaseException:
            staged.discard()
            raise
        return staged.publish()

    def close(self) -> None:
        self._failures.close()
        self._cards.close()

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _head(manifest: RunManifest, counts: dict[str, int]) -> str:
    e = html.escape
    out = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>packshot: {e(manifest.catalog)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>packshot run</h1><div class='meta'>catalog <b>{e(manifest.catalog)}</b> "
        f"({e(manifest.catalog_format or '?')}) &rarr; {e(manifest.output)}<br>"
        f"stages: {e(', '.join(manifest.stages))} &middot; presets: {e(', '.join(manifest.presets))}"
        f" &middot; started {manifest.started:%Y-%m-%d %H:%M} UTC</div>",
        "<div class='counts'>",
    ]
    for name in _COUNT_KEYS:
        out.append(f"<span class='{name}'>{name.replace('_', ' ')}: <b>{counts[name]}</b></span>")
    out.append("</div>")
    if manifest.backends or manifest.licences or manifest.notes:
        out.append("<h2>Models</h2><table><tr><th>stage</th><th>backend</th></tr>")
        out += [f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in manifest.backends.items()]
        out.append("</table>")
        if manifest.licences:
            out.append("<table><tr><th>model</th><th>licence</th></tr>")
            out += [f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in manifest.licences.items()]
            out.append("</table>")
        out += [f"<div class='note'>{e(n)}</div>" for n in manifest.notes]
    return "\n".join(out)


def _figure(rec: OutputRecord, src: str | None, link: str) -> str:
    e = html.escape
    link = e(link)
    kind = rec.kind if rec.scene is None else f"scene {rec.scene + 1}"
    label = " ".join(x for x in (kind, rec.preset or "", rec.variant or "") if x)
    bad = " class='bad'" if rec.checks else ""
    checks = "".join(f"<br>&#10007; {e(c)}" for c in rec.checks)
    return (
        f"<figure{bad}><a href='{link}'><img loading='lazy' alt='{e(label)}' "
        f"src='{src or link}'></a><figcaption>{e(label)}<br>{rec.width}&times;{rec.height}, "
        f"{rec.bytes // 1024} KB{' &middot; generated' if rec.generated else ''}{checks}"
        "</figcaption></figure>"
    )


def summary_markdown(header: RunManifest, tally: RunTally, report_uri: str) -> str:
    """The Prefect summary artifact: counts, output, contact sheet, models, notes, the first failures."""
    c = tally.counts()
    lines = [
        f"# packshot run: {header.catalog}",
        "",
        "| done | skipped | failed | invalid rows | outputs | failed checks |",
        "|---|---|---|---|---|---|",
        "| " + " | ".join(str(c[k]) for k in _COUNT_KEYS) + " |",
        "",
        f"Output: `{header.output}`  ",
        f"Contact sheet: `{report_uri}`",
    ]
    if header.backends:
        lines += ["", "Backends: " + ", ".join(f"{k}={v}" for k, v in header.backends.items())]
    lines += [f"- {n}" for n in header.notes]
    if tally.failures:
        lines += ["", "## Failures", ""]
        lines += [f"- `{p.source_file}:{p.source_line}` {p.sku or ''}: {p.error}" for p in tally.failures]
        if tally.problems > len(tally.failures):
            lines.append(f"- and {tally.problems - len(tally.failures)} more: see the manifest")
    return "\n".join(lines)
