"""Generator calls per product, shared fills against one generation per preset, side by side (issue 23).

    PYTHONPATH=. .venv/bin/python bench/fill_sharing.py --limit 2

Runs the real pipeline (``process_batch``) over the demo catalog's first ``--limit`` products with the tiny
FLUX Fill backend (the call count does not depend on the model's size) and the classic segmenter, once
with ``PACKSHOT_ORCHESTRATION__SHARE_FILLS=true`` (the default) and once with ``false`` (one generation
per preset, as before issue 23), for two preset choices: the demo's own (its brands ask for ``shopify``
only) and the demo brands asking for every built-in preset that allows generated images (five square
presets). Prints one line per arm: generator images, images shared, generated outputs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
ALL_GENERATED = ["amazon-additional", "shopify", "etsy", "google-merchant", "ebay"]


def run(limit: int, share: bool, brands: Path, out: Path, presets: list[str] | None) -> dict:
    import orchestrator
    from orchestrator.settings import get_settings
    from packshot.catalog import load_catalog

    os.environ["PACKSHOT_ORCHESTRATION__SHARE_FILLS"] = "true" if share else "false"
    os.environ["PACKSHOT_BRAND_STYLES_DIR"] = str(brands)
    get_settings.cache_clear()  # the settings are read from the environment once per process
    orchestrator.clear_contexts()
    catalog = REPO / "catalogs" / "demo" / "catalog.csv"
    products = load_catalog(catalog).products[:limit]
    options = orchestrator.RunOptions(catalog=str(catalog), out=str(out), presets=presets,
                                      stages=["segment", "background", "lifestyle", "export"], force=True)
    ctx = orchestrator.get_context(options)
    before = ctx.generator.images_generated
    results = orchestrator.process_batch(products, options)
    generated_outputs = sum(1 for r in results for o in r.outputs if o.generated)
    return {"products": len(results), "done": sum(r.status == "done" for r in results),
            "generator_images": ctx.generator.images_generated - before,
            "reported_calls": sum(r.generator_calls for r in results),
            "shared": sum(r.fills_shared for r in results), "generated_outputs": generated_outputs,
            "errors": sorted({r.error for r in results if r.error})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=2, help="demo products per arm")
    args = ap.parse_args()
    os.environ.setdefault("PACKSHOT_GENERATIVE__BACKEND", "tiny")
    os.environ.setdefault("PACKSHOT_SEGMENT__BACKEND", "classic")
    os.environ.setdefault("PACKSHOT_DEVICE", "cpu")
    work = Path(tempfile.mkdtemp(prefix="packshot-fill-sharing-"))
    demo_brands = REPO / "brand_styles"
    wide = work / "brands-all-presets"
    wide.mkdir()
    for style in demo_brands.glob("*.yaml"):
        wanted = f"presets: [{', '.join(ALL_GENERATED)}]"
        text = re.sub(r"^presets: .*$", wanted, style.read_text(), flags=re.M)
        (wide / style.name).write_text(text)
    try:
        arms = (("demo presets", demo_brands, None),
                ("all 5 generated presets", wide, ["amazon-main", *ALL_GENERATED]))
        for label, brands, presets in arms:
            for share in (False, True):
                r = run(args.limit, share, brands, work / f"out-{label[:3]}-{share}", presets)
                print(f"{label:<24} share_fills={str(share).lower():<5} products={r['products']} "
                      f"done={r['done']} generated_outputs={r['generated_outputs']} "
                      f"generator_images={r['generator_images']} (reported {r['reported_calls']}, "
                      f"shared {r['shared']}) {'; '.join(r['errors'])}", flush=True)
    finally:
        import orchestrator

        orchestrator.clear_contexts()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
