"""Fake Runway developer API: ``POST /v1/image_to_video``, ``GET/DELETE /v1/tasks/{id}``, output files.

Follows the documented contract (version header, bearer key, ratios, 5 MB data URIs, task statuses,
``failureCode``, expiring output URLs). What a task does is chosen by a marker in its prompt text
(``outcomes``), so concurrent submissions stay deterministic.
"""

from __future__ import annotations

import base64
import io
import json
import uuid
from datetime import UTC, datetime

from PIL import Image

from tests.fakes.server import FakeAPI, Request, Response

RATIOS = {"1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672"}
CREDITS_PER_S = {"gen4_turbo": 5, "gen4.5": 12}


class FakeRunway(FakeAPI):
    def __init__(self, api_key: str, polls_to_finish: int = 2):
        super().__init__(api_key)
        self.polls_to_finish = polls_to_finish
        self.outcomes: dict[str, str] = {}  # prompt marker -> "safety" | "internal" | "expire-url"
        self.retired_models = {"gen3a_turbo"}
        self.paused = False  # tasks stay RUNNING while True
        self.tasks: dict[str, dict] = {}
        self.active = 0
        self.max_active = 0
        self.video_bytes: bytes | None = None  # a real MP4 to serve instead of the placeholder bytes

    def route_name(self, request: Request) -> str:
        if request.path == "/v1/image_to_video":
            return "create"
        if request.path.startswith("/v1/tasks/"):
            return "retrieve" if request.method == "GET" else "delete"
        if request.path.startswith("/outputs/"):
            return "download"
        return "unknown"

    def error(self, status: int, message: str) -> Response:
        return Response.json(status, {"error": message})

    def route(self, name: str, request: Request) -> Response:
        if name != "download":
            if request.headers.get("authorization") != f"Bearer {self.api_key}":
                given = request.headers.get("authorization", "").removeprefix("Bearer ")
                return self.error(401, f"Invalid API key '{given}'")  # echoes the key, as some APIs do
            if request.headers.get("x-runway-version") != "2024-11-06":
                return self.error(400, "X-Runway-Version header is required")
        if name == "create":
            return self._create(json.loads(request.body))
        if name in ("retrieve", "delete"):
            task = self.tasks.get(request.path.rsplit("/", 1)[1])
            if task is None:
                return self.error(404, "Task not found")
            if name == "delete":
                task["status"] = "CANCELLED"
                return Response(204)
            return Response.json(200, self._advance(task))
        if name == "download":
            task_id, version = request.path.split("/")[2], request.path.split("/")[3]
            task = self.tasks.get(task_id)
            if task is None or (task["outcome"] == "expire-url" and version == "v1.mp4"):
                return Response(
                    403, b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
                )
            return Response(200, task["video"], {"Content-Type": "video/mp4"})
        return self.error(404, "no such route")

    def _create(self, body: dict) -> Response:
        model = body.get("model")
        if model in self.retired_models:
            return self.error(400, f"Model {model} has been retired and is no longer available")
        if model not in CREDITS_PER_S:
            return self.error(400, f"Invalid model {model}")
        if body.get("ratio") not in RATIOS:
            return self.error(400, f"Invalid ratio {body.get('ratio')}")
        duration = body.get("duration")
        if not isinstance(duration, int) or not 2 <= duration <= 10:
            return self.error(400, "duration must be an integer from 2 to 10")
        prompt = body.get("promptText", "")
        if not prompt or len(prompt) > 1000:
            return self.error(400, "promptText must be 1 to 1000 characters")
        uri = body.get("promptImage", "")
        if not uri.startswith(
            ("data:image/png;base64,", "data:image/jpeg;base64,", "data:image/webp;base64,")
        ):
            return self.error(400, "promptImage must be an https URL or an image data URI")
        if len(uri) > 5 * 1024 * 1024:
            return self.error(400, "data URI larger than 5MB")
        image = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
        outcome = next((o for marker, o in self.outcomes.items() if marker in prompt), "succeed")
        task_id = str(uuid.uuid4())
        with self.lock:
            self.tasks[task_id] = {
                "id": task_id,
                "model": model,
                "ratio": body["ratio"],
                "duration": duration,
                "prompt": prompt,
                "image_size": image.size,
                "polls": 0,
                "outcome": outcome,
                "urls": 0,
                "status": "PENDING",
                "credits": CREDITS_PER_S[model] * duration,
                "video": self.video_bytes or b"\x00\x00\x00\x18ftypmp42" + f"fake clip {task_id}".encode(),
            }
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        return Response.json(200, {"id": task_id})

    def _advance(self, task: dict) -> dict:
        with self.lock:
            created = datetime.now(UTC).isoformat()
            if task["status"] in ("PENDING", "THROTTLED", "RUNNING") and not self.paused:
                task["polls"] += 1
                if task["polls"] >= self.polls_to_finish:
                    task["status"] = {"safety": "FAILED", "internal": "FAILED"}.get(
                        task["outcome"], "SUCCEEDED"
                    )
                    self.active -= 1
                else:
                    task["status"] = "THROTTLED" if task["polls"] == 1 else "RUNNING"
            status = task["status"]
            out: dict = {"id": task["id"], "status": status, "createdAt": created}
            if status in ("PENDING", "THROTTLED", "RUNNING"):
                out["estimatedCost"] = {"credits": task["credits"]}
                if status == "RUNNING":
                    out["progress"] = 0.5
            elif status == "SUCCEEDED":
                task["urls"] += 1  # each fetch mints a fresh signed URL
                out["output"] = [f"{self.base_url}/outputs/{task['id']}/v{task['urls']}.mp4"]
                out["cost"] = {"credits": task["credits"]}
            elif status == "FAILED":
                safety = task["outcome"] == "safety"
                out["failure"] = (
                    "The input image was flagged by content moderation" if safety else "Internal error"
                )
                out["failureCode"] = "SAFETY.INPUT.IMAGE" if safety else "INTERNAL.BAD_OUTPUT.CODE01"
                out["cost"] = {"credits": 0}
            else:
                out["cost"] = {"credits": 0}
            return out
