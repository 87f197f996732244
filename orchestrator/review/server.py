"""The review page: a local web app over one run (``packshot review OUT``), a folder or an S3 prefix.

``create_app(out)`` returns a FastAPI app: ``/`` is the page (Jinja2, autoescaped), ``/static``
its script and styles, ``/api/...`` JSON, ``/files/<key>`` the run's images. Only files the manifest
names (outputs, source previews) and the report's thumbnails are served, and only from inside the
run (an S3 run's images are read through the storage and passed on: the browser needs no S3 access).
Decisions go to ``review.json`` (see :mod:`orchestrator.review.decisions`), merged under the output's
``review`` lease, so two servers on one run lose nothing.

What another web page in the same browser can do is limited: the page may not be framed
(``frame-ancestors 'none'``, ``X-Frame-Options: DENY``); a state-changing request is accepted only
from the page's exact origin (scheme, host and port); request bodies are capped at
:data:`MAX_BODY_BYTES`; requests naming another host are refused (DNS rebinding).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
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
    valid_key,
)
from orchestrator.review.index import SHA, RunIndex, product_decision, thumb_key, warnings_of
from packshot.errors import PackshotError
from packshot.schemas.results import ProductResult
from packshot.storage import Storage, open_storage

HERE = Path(__file__).parent
DEFAULT_HOST = "127.0.0.1"
PAGE_MAX = 200
MAX_BODY_BYTES = 1024 * 1024  # a decision is a few hundred bytes; anything this big is not one
SECURITY_HEADERS = {"Content-Security-Policy": "frame-ancestors 'none'", "X-Frame-Options": "DENY",
                    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp",
               "mp4": "video/mp4", "gif": "image/gif"}
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

    def __init__(self, storage: Storage):
        self.storage = storage
        self._index = RunIndex.load(self.storage)
        self._lock = threading.Lock()
        self.store = ReviewStore(self.storage)
        self._thumbs: tuple[object, set[str] | None] = (None, None)

    @property
    def index(self) -> RunIndex:
        with self._lock:
            self._index = self._index.fresh()
            return self._index

    @property
    def review(self):
        """The decisions as saved now (another review server's included)."""
        return self.store.refresh()

    def thumbs(self, index: RunIndex) -> set[str] | None:
        """The report's thumbnails of an S3 run, listed once per manifest (None: a local folder)."""
        if self.storage.local_path("thumbs") is not None:
            return None
        with self._lock:
            if self._thumbs[0] is not index.version:
                self._thumbs = (index.version, {f.key for f in self.storage.list_files("thumbs")})
            return self._thumbs[1]


def _file_url(key: str) -> str:
    return "/files/" + quote(key)


def _product_json(p: ProductResult, state: ReviewState, index: RunIndex, review) -> dict:
    size = index.photo_size(p.sku) if p.sku else None
    outputs = []
    thumbs = state.thumbs(index)
    for o in p.outputs:
        d = review.decision_for(p, o)
        thumb = thumb_key(state.storage, o, thumbs)
        outputs.append({
            "key": o.key, "kind": o.kind, "preset": o.preset, "variant": o.variant, "scene": o.scene,
            "photo": o.photo, "shows_variant": o.shows_variant,
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


def create_app(out: str | Path | Storage, host: str = DEFAULT_HOST) -> FastAPI:
    """The review app over the run ``out`` (a folder, ``s3://bucket/prefix`` or a Storage; it must
    hold ``manifest.json``). Requests naming another host are refused (a web page cannot reach it by
    DNS rebinding)."""
    state = ReviewState(out if isinstance(out, Storage) else open_storage(out))
    app = FastAPI(title="packshot review", docs_url=None, redoc_url=None, openapi_url=None)
    allowed = sorted({"127.0.0.1", "localhost", host})
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed)

    @app.middleware("http")
    async def same_origin_writes(request: Request, call_next):
        """Writes only from the review page itself: a page of another origin gets 403. The origin
        must match exactly: scheme, host and port (another port on 127.0.0.1 is another site)."""
        if request.method not in ("GET", "HEAD"):
            origin = request.headers.get("origin")
            site = request.headers.get("sec-fetch-site")
            own = f"{request.url.scheme}://{request.headers.get('host', '')}".lower()
            foreign = origin is not None and origin.lower().rstrip("/") != own
            if foreign or site in ("cross-site", "same-site"):
                return JSONResponse({"detail": "cross-site request refused"}, status_code=403,
                                    headers=SECURITY_HEADERS)
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)

    @app.exception_handler(PackshotError)
    async def busy(_request: Request, exc: PackshotError) -> JSONResponse:
        """A decision that could not be saved (another server holds the lease too long, storage
        trouble): the page shows the one line and the decision can be sent again."""
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        """422 with what is wrong, never echoing the input (NaN or Infinity would not encode as JSON)."""
        problems = ["/".join(str(p) for p in e.get("loc", ())) + ": " + str(e.get("msg", "invalid"))
                    for e in exc.errors()[:5]]
        return JSONResponse({"detail": problems}, status_code=422)

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
        review = state.review
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
        review = state.review
        chosen = index.select(review, status=status, warning=warning, decision=decision, q=q)
        page = chosen[offset : offset + limit]
        return {"total": len(chosen), "offset": offset, "limit": limit,
                "items": [_product_json(p, state, index, review) for p in page]}

    @app.get("/api/review")
    def review() -> dict:
        return state.review.model_dump(mode="json")

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
    def files(key: str) -> Response:
        index = state.index
        allowed = (key in index.files or key == "report.html" or _is_thumb(key)) and valid_key(key)
        headers = {"Cache-Control": "private, max-age=300"}
        path = state.storage.local_path(key) if allowed else None
        if path is not None:  # a local run: only regular files inside the run folder
            root = state.storage.local_path("manifest.json").parent
            try:
                inside = path.resolve().is_relative_to(root) and path.resolve().is_file()
            except (OSError, ValueError):
                inside = False
            if inside:
                return FileResponse(path.resolve(), headers=headers)
        elif allowed:  # an S3 run: read through the storage and passed on
            try:
                data = state.storage.read_bytes(key)
            except Exception:
                data = None
            if data is not None:
                media = MEDIA_TYPES.get(key.rsplit(".", 1)[-1].lower(), "application/octet-stream")
                return Response(data, media_type=media, headers=headers)
        raise HTTPException(404, "not a file of this run")

    return app


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413: by their Content-Length before anything is
    read, or (chunked) as soon as the bytes received pass the limit; at most ``max_bytes`` are held."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        too_big = JSONResponse({"detail": f"request body over {self.max_bytes} bytes"}, status_code=413,
                               headers=SECURITY_HEADERS)
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await too_big(scope, receive, send)
        if length is not None or scope["method"] in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        body, more = b"", True  # chunked: read it here, up to the cap, then hand it on
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return await self.app(scope, receive, send)  # the client went away
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                return await too_big(scope, receive, send)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _is_thumb(key: str) -> bool:
    """A thumbnail name the report makes: ``thumbs/<sha256>.jpg|png``."""
    folder, _, name = key.partition("/")
    stem, _, ext = name.partition(".")
    return folder == "thumbs" and bool(SHA.fullmatch(stem)) and ext in ("jpg", "png")


def serve(out: str | Path, host: str = DEFAULT_HOST, port: int = 8765) -> None:  # pragma: no cover
    """Run the review page until interrupted (``packshot review``)."""
    serve_app(create_app(out, host), host, port)


def serve_app(app: FastAPI, host: str = DEFAULT_HOST, port: int = 8765) -> None:  # pragma: no cover
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning")
