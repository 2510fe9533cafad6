"""A stand-in for an OPA server: OPA's REST data API answered by the embedded engine.

No OPA binary can be installed here, so tests run `OpaRestEngine` against this server on
127.0.0.1. It answers `POST /v1/data/<path>` (and `GET`, with no input) with
`{"result": ...}` (or `{}` when the document is undefined), `GET /v1/policies` with the
modules it holds and `GET /health` with `{}`, as OPA does. `reload()` takes in what
changed in its folder, as an OPA that watches its files would. `mode` makes it misbehave
on purpose: "hang" never answers, "garbage" answers non-JSON, "error" answers HTTP 500,
"nonsense" answers a result that is not a decision.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any, Literal

import anyio
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.policy import UNDEFINED, EmbeddedRegoEngine, PolicyError
from tests.gateway.policy.helpers import eventually

Mode = Literal["normal", "hang", "garbage", "error", "nonsense"]


class OpaTestServer:
    def __init__(self, folder: Path | None = None) -> None:
        self.engine = EmbeddedRegoEngine(folder, reload_interval=None, include_tests=True, strict=True)
        self.folder = self.engine.folder
        self.mode: Mode = "normal"
        self.requests = 0
        self.looks = 0
        self._release = anyio.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        app = Starlette(
            routes=[
                Route("/health", self._health, methods=["GET"]),
                Route("/v1/data/{path:path}", self._data, methods=["POST", "GET"]),
                Route("/v1/policies", self._policies, methods=["GET"]),
            ]
        )
        config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="none", http="h11")
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    async def _health(self, request: Request) -> Response:
        return JSONResponse({})

    async def reload(self) -> None:
        assert await self.engine.reload(), self.engine.status().error

    async def _policies(self, request: Request) -> Response:
        self.looks += 1
        modules = [
            {"id": str(path.relative_to(self.folder)), "raw": path.read_text()}
            for path in sorted(self.folder.rglob("*.rego"))
        ]
        return JSONResponse({"result": modules})

    async def _data(self, request: Request) -> Response:
        if request.method == "POST":
            self.requests += 1  # decisions and queries
        else:
            self.looks += 1  # what a follower of the policy reads
        if self.mode == "hang":
            await self._release.wait()
        if self.mode == "garbage":
            return Response(b"<html>proxy error</html>", media_type="text/html")
        if self.mode == "error":
            return JSONResponse({"code": "internal_error", "message": "eval_conflict_error"}, status_code=500)
        if self.mode == "nonsense":
            return JSONResponse({"result": {"allow": "yes"}})
        try:
            body: Any = orjson.loads(await request.body()) if request.method == "POST" else {}
        except orjson.JSONDecodeError:
            return JSONResponse({"code": "invalid_parameter", "message": "body is not JSON"}, status_code=400)
        try:
            value = await self.engine.query(request.path_params["path"], body.get("input"))
        except PolicyError as exc:
            return JSONResponse({"code": "internal_error", "message": exc.message}, status_code=500)
        return JSONResponse({} if value is UNDEFINED else {"result": value})

    async def __aenter__(self) -> OpaTestServer:
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[self._sock]))
        await eventually(lambda: self._server.started)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._release.set()
        self._server.should_exit = True
        if self._task is not None:
            await self._task
        self._sock.close()
        await self.engine.close()
