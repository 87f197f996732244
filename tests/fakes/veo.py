"""Fake Gemini API for Veo image-to-video: ``POST /v1beta/models/{model}:predictLongRunning``,
``GET /v1beta/{operation name}``, ``GET /v1beta/files/{id}:download?alt=media``.

Follows the documented contract (``x-goog-api-key`` header, ``instances[0].prompt`` and ``image``
with ``bytesBase64Encoded``, ``parameters.durationSeconds`` 4/6/8 and ``aspectRatio`` 16:9 or 9:16,
long-running operations with ``done``, ``error``, or ``response.generateVideoResponse`` holding
``generatedSamples`` or a safety filter count). A marker in the prompt picks the outcome.
"""

from __future__ import annotations

import base64
import io
import json
import uuid

from PIL import Image

from tests.fakes.server import FakeAPI, Request, Response

MODELS = {"veo-3.1-generate-preview", "veo-3.1-fast-generate-preview"}
STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
          429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 502: "UNAVAILABLE", 503: "UNAVAILABLE"}


class FakeVeo(FakeAPI):
    def __init__(self, api_key: str, polls_to_finish: int = 2):
        super().__init__(api_key)
        self.polls_to_finish = polls_to_finish
        self.outcomes: dict[str, str] = {}  # prompt marker -> "safety" | "internal"
        self.paused = False  # operations stay running while True
        self.operations: dict[str, dict] = {}
        self.files: dict[str, bytes] = {}

    def route_name(self, request: Request) -> str:
        path = request.path
        if path.endswith(":predictLongRunning"):
            return "create"
        if "/operations/" in path:
            return "retrieve"
        if path.startswith("/v1beta/files/") and path.endswith(":download"):
            return "download"
        return "unknown"

    def error(self, status: int, message: str) -> Response:
        return Response.json(status, {"error": {"code": status, "message": message,
                                                "status": STATUS.get(status, "UNKNOWN")}})

    def route(self, name: str, request: Request) -> Response:
        if request.headers.get("x-goog-api-key") != self.api_key:
            return self.error(400, "API key not valid. Please pass a valid API key.")
        if name == "create":
            model = request.path.removeprefix("/v1beta/models/").removesuffix(":predictLongRunning")
            return self._create(model, json.loads(request.body))
        if name == "retrieve":
            operation = self.operations.get(request.path.removeprefix("/v1beta/"))
            if operation is None:
                return self.error(404, "Operation not found")
            return Response.json(200, self._advance(operation))
        if name == "download":
            data = self.files.get(request.path.removeprefix("/v1beta/files/").removesuffix(":download"))
            if data is None:
                return self.error(404, "File not found")
            return Response(200, data, {"Content-Type": "video/mp4"})
        return self.error(404, "no such route")

    def _create(self, model: str, body: dict) -> Response:
        if model not in MODELS:
            return self.error(404, f"models/{model} is not found for API version v1beta")
        instance = (body.get("instances") or [{}])[0]
        params = body.get("parameters", {})
        if params.get("durationSeconds") not in (4, 6, 8):
            return self.error(400, "durationSeconds must be 4, 6 or 8")
        if params.get("aspectRatio") not in ("16:9", "9:16"):
            return self.error(400, "aspectRatio must be 16:9 or 9:16")
        image = instance.get("image") or {}
        if not image.get("bytesBase64Encoded") or image.get("mimeType") not in ("image/png", "image/jpeg"):
            return self.error(400, "image must carry bytesBase64Encoded and a PNG or JPEG mimeType")
        size = Image.open(io.BytesIO(base64.b64decode(image["bytesBase64Encoded"]))).size
        prompt = instance.get("prompt", "")
        outcome = next((o for marker, o in self.outcomes.items() if marker in prompt), "succeed")
        name = f"models/{model}/operations/{uuid.uuid4().hex[:12]}"
        with self.lock:
            self.operations[name] = {"name": name, "model": model, "prompt": prompt, "image_size": size,
                                     "duration": params["durationSeconds"], "ratio": params["aspectRatio"],
                                     "outcome": outcome, "polls": 0, "done": False}
        return Response.json(200, {"name": name})

    def _advance(self, operation: dict) -> dict:
        with self.lock:
            if not operation["done"] and not self.paused:
                operation["polls"] += 1
                operation["done"] = operation["polls"] >= self.polls_to_finish
            out: dict = {"name": operation["name"], "done": operation["done"]}
            if not operation["done"]:
                return out
            if operation["outcome"] == "internal":
                out["error"] = {"code": 13, "message": "Video generation failed due to an internal error."}
            elif operation["outcome"] == "safety":
                out["response"] = {"@type": "type.googleapis.com/google.ai.generativelanguage.v1beta."
                                   "PredictLongRunningResponse", "generateVideoResponse": {
                                       "raiMediaFilteredCount": 1,
                                       "raiMediaFilteredReasons": ["The input image violates policy."]}}
            else:
                file_id = operation.setdefault("file", uuid.uuid4().hex[:16])
                self.files.setdefault(file_id, b"\x00\x00\x00\x18ftypmp42" + f"veo clip {file_id}".encode())
                uri = f"https://generativelanguage.googleapis.com/v1beta/files/{file_id}:download?alt=media"
                out["response"] = {"generateVideoResponse": {"generatedSamples": [{"video": {"uri": uri}}]}}
            return out
