"""The review page: a local web app over one run folder (``packshot review OUT``).

``create_app(out_dir)`` returns a FastAPI app: ``/`` is the page (Jinja2, autoescaped), ``/static``
its script and styles, ``/api/...`` JSON, ``/files/<key>`` the run's images. Only files the manifest
names (outputs, source previews) and the report's thumbnails are served, and only from inside the
run folder. Decisions go to ``review.json`` (see :mod:`orchestrator.review.decisions`).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, ValidationError
from starlette.middleware.trustedhost import TrustedHostMiddleware

from orchestrator.review.decisions import (
    Correction,
    Decision,
    DecisionStatus,
    ReviewStore,
    export_approved,
    recolor_redo,
)
from orchestrator.review.index import SHA, RunIndex, product_decision, thumb_key, warnings_of
from packshot.schemas.results import ProductResult
from packshot.storage import LocalStorage

HERE = Path(__file__).parent
DEFAULT_HOST = "127.0.0.1"
PAGE_MAX = 200
_jinja = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))


class DecisionIn(BaseModel):
    """A decision as the page sends it (the server adds the time)."""

    sku: str
    key: str | None = None
    status: DecisionStatus
    reason: str = ""
    reviewer: str | None = None
    correction: Correction | None = None


class ReviewState:
    """The run index and the review store of one app, refreshed when the manifest changes."""

    def __init__(self, out_dir: Path):
        self.storage = LocalStorage(out_dir)
        self._index = RunIndex.load(self.storage)
        self._lock = threading.Lock()
        self.store = ReviewStore(self.storage)

    @property
    def index(self) -> RunIndex:
        with self._lock:
            self._index = self._index.fresh()
            return self._index


def _file_url(key: str) -> str:
    return "/files/" + quote(key)


def _product_json(p: ProductResult, state: ReviewState, index: RunIndex) -> dict:
    review = state.store.review
    size = index.photo_size(p.sku) if p.sku else None
    outputs = []
    for o in p.outputs:
        d = review.decision_for(p, o)
        thumb = thumb_key(state.storage, o)
        outputs.append({
            "key": o.key, "kind": o.kind, "preset": o.preset, "variant": o.variant, "scene": o.scene,
            "width": o.width, "height": o.height, "generated": o.generated, "checks": o.checks,
            "url": _file_url(o.key), "thumb": _file_url(thumb or o.key),
            "decision": d.model_dump(mode="json") if d else None,
            "redo": recolor_redo(o, review.corrections.get(p.sku or ""))[1] if d and d.status == "rejected"
            else "",
        })
    preview = p.source_preview if p.source_preview in index.files else None
    return {
        "sku": p.sku, "status": p.status, "error": p.error, "warnings": warnings_of(p),
        "review_reasons": list(p.review_reasons),
        "source_image": p.source_image, "source_preview": _file_url(preview) if preview else None,
        "photo_size": list(size) if size else None, "outputs": outputs,
        "decision": product_decision(p, review), "source": f"{p.source_file}:{p.source_line}",
    }


def create_app(out_dir: str | Path, host: str = DEFAULT_HOST) -> FastAPI:
    """The review app over the local run folder ``out_dir`` (it must hold ``manifest.json``).
    Requests naming another host are refused (a web page cannot reach it by DNS rebinding)."""
    state = ReviewState(Path(out_dir))
    app = FastAPI(title="packshot review", docs_url=None, redoc_url=None, openapi_url=None)
    allowed = sorted({"127.0.0.1", "localhost", host})
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed)

    @app.middleware("http")
    async def same_origin_writes(request: Request, call_next):
        """Writes only from the review page itself: another site's page in the browser gets 403."""
        origin = request.headers.get("origin")
        if request.method not in ("GET", "HEAD") and origin and urlsplit(origin).hostname not in allowed:
            return JSONResponse({"detail": "cross-site request refused"}, status_code=403)
        return await call_next(request)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        index = state.index
        return _jinja.get_template("review.html").render(
            run=index.manifest, counts=index.counts(), takes_points=index.takes_points, note=state.store.note,
            page_size=50,
        )

    @app.get("/api/summary")
    def summary() -> dict:
        index = state.index
        review = state.store.review
        decided = {"approved": 0, "rejected": 0, "undecided": 0}
        for p in index.manifest.products:
            decided[product_decision(p, review)] += 1
        return {"catalog": index.manifest.catalog, "output": index.manifest.output,
                "counts": index.counts(), "decisions": decided, "takes_points": index.takes_points,
                "note": state.store.note}

    @app.get("/api/products")
    def products(status: str = "", warning: str = "", decision: str = "", q: str = "",
                 offset: Annotated[int, Query(ge=0)] = 0,
                 limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 50) -> dict:
        index = state.index
        chosen = index.select(state.store.review, status=status, warning=warning, decision=decision, q=q)
        page = chosen[offset : offset + limit]
        return {"total": len(chosen), "offset": offset, "limit": limit,
                "items": [_product_json(p, state, index) for p in page]}

    @app.get("/api/review")
    def review() -> dict:
        return state.store.review.model_dump(mode="json")

    @app.post("/api/decisions")
    def decide(body: DecisionIn) -> dict:
        try:
            decision = Decision(**body.model_dump())
        except ValidationError as exc:
            raise HTTPException(422, str(exc.errors()[0]["msg"])) from None
        index = state.index
        problem = index.check(decision)
        if problem:
            raise HTTPException(422, problem)
        decision.basis = index.basis(decision)
        record = index.output(decision.sku, decision.key) if decision.key is not None else None
        return state.store.decide(decision, record).model_dump(mode="json")

    @app.delete("/api/decisions")
    def undo(sku: str, key: str | None = None) -> dict:
        return {"removed": state.store.undo(sku, key)}

    @app.post("/api/export")
    def export() -> dict:
        json_uri, csv_uri, count = export_approved(state.storage)
        return {"json": json_uri, "csv": csv_uri, "outputs": count}

    @app.get("/files/{key:path}")
    def files(key: str) -> FileResponse:
        index = state.index
        allowed = key in index.files or _is_thumb(key)
        path = state.storage.root / key
        try:
            inside = path.resolve().is_relative_to(state.storage.root) and path.resolve().is_file()
        except (OSError, ValueError):
            inside = False
        if not (allowed and inside):
            raise HTTPException(404, "not a file of this run")
        return FileResponse(path.resolve(), headers={"Cache-Control": "private, max-age=300"})

    return app


def _is_thumb(key: str) -> bool:
    """A thumbnail name the report makes: ``thumbs/<sha256>.jpg|png``."""
    folder, _, name = key.partition("/")
    stem, _, ext = name.partition(".")
    return folder == "thumbs" and bool(SHA.fullmatch(stem)) and ext in ("jpg", "png")


def serve(out_dir: str | Path, host: str = DEFAULT_HOST, port: int = 8765) -> None:  # pragma: no cover
    """Run the review page until interrupted (``packshot review``)."""
    import uvicorn

    uvicorn.run(create_app(out_dir, host), host=host, port=port, log_level="warning")
