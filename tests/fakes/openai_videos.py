"""Fake OpenAI Videos API (Sora): ``POST /v1/videos`` (multipart), ``GET /v1/videos/{id}[/content]``.

Checks what the real one checks that matters to us: bearer key, allowed ``seconds`` and ``size``, and
that the ``input_reference`` image has exactly the requested pixel size. ``gone = True`` answers
like the withdrawn API (``model_not_found``).
"""

from __future__ import annotations

import io
import time
import uuid
from email.parser import BytesParser
from email.policy import default as default_policy

from PIL import Image

from tests.fakes.server import FakeAPI, Request, Response

SIZES = {"sora-2": {"1280x720", "720x1280"}, "sora-2-pro": {"1280x720", "720x1280", "1792x1024", "1024x1792"}}


def parse_multipart(content_type: str, body: bytes) -> dict[str, bytes]:
    message = BytesParser(policy=default_policy).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    return {
        part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
        for part in message.iter_parts()
    }


class FakeOpenAIVideos(FakeAPI):
    def __init__(self, api_key: str, polls_to_finish: int = 2):
        super().__init__(api_key)
        self.polls_to_finish = polls_to_finish
        self.outcomes: dict[str, str] = {}  # prompt marker -> "moderation"
        self.gone = False
        self.videos: dict[str, dict] = {}

    def route_name(self, request: Request) -> str:
        if request.path == "/v1/videos" and request.method == "POST":
            return "create"
        if request.path.startswith("/v1/videos/"):
            return "download" if request.path.endswith("/content") else "retrieve"
        return "unknown"

    def error(self, status: int, message: str, code: str | None = None) -> Response:
        kind = "rate_limit_error" if status == 429 else "invalid_request_error"
        return Response.json(
            status, {"error": {"message": message, "type": kind, "param": None, "code": code}}
        )

    def route(self, name: str, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            given = request.headers.get("authorization", "").removeprefix("Bearer ")
            return self.error(401, f"Incorrect API key provided: {given}.", "invalid_api_key")
        if self.gone:
            return self.error(
                404, "The model `sora-2` does not exist or you do not have access to it.", "model_not_found"
            )
        if name == "create":
            return self._create(parse_multipart(request.headers["content-type"], request.body))
        video = self.videos.get(request.path.split("/")[3])
        if video is None:
            return self.error(404, "Video not found")
        if name == "retrieve":
            return Response.json(200, self._advance(video))
        if request.query.get("variant", ["video"])[0] != "video" or video["status"] != "completed":
            return self.error(404, "content not available")
        return Response(200, video["content"], {"Content-Type": "video/mp4"})

    def _create(self, form: dict[str, bytes]) -> Response:
        model = form.get("model", b"sora-2").decode()
        size = form.get("size", b"720x1280").decode()
        seconds = form.get("seconds", b"4").decode()
        prompt = form.get("prompt", b"").decode()
        if model not in SIZES:
            return self.error(400, f"Invalid model {model}")
        if size not in SIZES[model]:
            return self.error(400, f"Invalid size {size} for {model}", "invalid_value")
        if seconds not in ("4", "8", "12"):
            return self.error(400, f"Invalid seconds {seconds}", "invalid_value")
        if "input_reference" in form:
            width, height = Image.open(io.BytesIO(form["input_reference"])).size
            if f"{width}x{height}" != size:
                return self.error(
                    400, "Inpaint image must match the requested width and height", "invalid_value"
                )
        video_id = f"video_{uuid.uuid4().hex}"
        outcome = next((o for marker, o in self.outcomes.items() if marker in prompt), "succeed")
        with self.lock:
            self.videos[video_id] = {
                "id": video_id,
                "object": "video",
                "created_at": int(time.time()),
                "model": model,
                "progress": 0,
                "seconds": seconds,
                "size": size,
                "status": "queued",
                "prompt": prompt,
                "polls": 0,
                "outcome": outcome,
                "content": b"\x00\x00\x00\x18ftypmp42" + f"fake sora clip {video_id}".encode(),
            }
        return Response.json(200, self._public(self.videos[video_id]))

    def _advance(self, video: dict) -> dict:
        with self.lock:
            if video["status"] in ("queued", "in_progress"):
                video["polls"] += 1
                if video["polls"] >= self.polls_to_finish:
                    video["status"] = "failed" if video["outcome"] == "moderation" else "completed"
                    video["progress"] = 100
                else:
                    video["status"], video["progress"] = "in_progress", 50
            return self._public(video)

    @staticmethod
    def _public(video: dict) -> dict:
        out = {
            k: video[k]
            for k in (
                "id",
                "object",
                "created_at",
                "model",
                "progress",
                "seconds",
                "size",
                "status",
                "prompt",
            )
        }
        if video["status"] == "failed":
            out["error"] = {
                "code": "moderation_blocked",
                "message": "Your request was blocked by our moderation system.",
            }
        return out
