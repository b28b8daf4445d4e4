"""What the server checks on an HTTP request before gradio handles it (ASGI middleware).

- ``UploadBudget``: gradio caps the size of each uploaded file but not how many a client
  leaves on the server's disk (one request may carry a thousand). Each upload request must
  state its size and stay within one file's cap, a client has at most two in flight, and
  the server keeps only each client's newest few uploads and a bounded total: older files
  are deleted.
- ``FileArguments``: a file argument of an endpoint must be a file uploaded to this server.
  gradio refuses anything else too, but with an empty error; this says why in a sentence.
"""

from __future__ import annotations

import inspect
import json
import os
import re
from collections import Counter, OrderedDict
from pathlib import Path

import gradio as gr

UPLOAD_ROUTE = "/gradio_api/upload"
# Routes that take an endpoint's arguments: the queue (browser, gradio_client) and the raw API.
_CALL_ROUTE = re.compile(r"/gradio_api/(?:queue/join|(call/v2|call|run|api)/([^/]+))/?$")
# Multipart framing around one file (boundaries, headers, the file name).
MULTIPART_SLACK = 64 * 2**10
MAX_IN_FLIGHT_PER_CLIENT, MAX_IN_FLIGHT = 2, 16
# Endpoint arguments are small JSON (file contents go through the upload route).
MAX_CALL_BODY = 2**20


def client_key(scope: dict) -> str:
    """Who sent a request: the address the nearest proxy saw (the last X-Forwarded-For
    entry: earlier ones are the client's own claim), else the peer's address."""
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-for":
            return value.decode("latin-1").split(",")[-1].strip()
    client = scope.get("client")
    return client[0] if client else ""


def _header(scope: dict, wanted: bytes) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == wanted:
            return value.decode("latin-1")
    return None


async def _refuse(send, status: int, message: str) -> None:
    payload = json.dumps({"detail": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


class UploadBudget:
    """Bounds what uploads leave on disk: ``keep_per_client`` newest files per client and
    ``max_total_bytes`` in all (oldest deleted first); each request at most one file's cap."""

    def __init__(self, app, upload_root: str | Path, max_file_bytes: int, keep_per_client: int,
                 max_total_bytes: int):
        self.app = app
        self.root = Path(os.path.realpath(upload_root))
        self.max_request = max_file_bytes + MULTIPART_SLACK
        self.keep = keep_per_client
        self.max_total = max_total_bytes
        # No BoundedCache: a client's own count is trimmed before the total, and a shared file outlives one holder.
        self._held: OrderedDict[tuple[str, Path], int] = OrderedDict()  # (client, file) -> bytes, oldest first
        self._in_flight: Counter[str] = Counter()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"].rstrip("/") != UPLOAD_ROUTE:
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length is None or not length.isdigit():
            await _refuse(send, 411, "an upload must state its size (a Content-Length header)")
            return
        if int(length) > self.max_request:
            await _refuse(send, 413, f"an upload of {int(length):,} bytes is over this app's limit of one file of "
                                     f"{self.max_request - MULTIPART_SLACK:,} bytes per upload")
            return
        client = client_key(scope)
        if self._in_flight[client] >= MAX_IN_FLIGHT_PER_CLIENT or sum(self._in_flight.values()) >= MAX_IN_FLIGHT:
            await _refuse(send, 429, "too many uploads at once: wait for the previous ones to finish")
            return
        start: dict = {}
        body = bytearray()

        async def held_back(message):
            # The reply (a short JSON list of paths) waits until older files are gone, so
            # the client never sees more of its uploads on disk than the budget allows.
            if message["type"] == "http.response.start":
                start.update(message)
                return
            if message["type"] != "http.response.body" or not start:
                await send(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body"):
                return
            if start["status"] == 200:
                self._hold(client, _paths(bytes(body)))
            await send(start)
            await send({"type": "http.response.body", "body": bytes(body)})

        self._in_flight[client] += 1
        try:
            await self.app(scope, receive, held_back)
        finally:
            self._in_flight[client] -= 1
            if not self._in_flight[client]:
                del self._in_flight[client]

    def _hold(self, client: str, paths: list[str]) -> None:
        for path in paths:
            file = Path(os.path.realpath(path))
            if file.is_relative_to(self.root) and file.is_file():
                self._held.pop((client, file), None)
                self._held[(client, file)] = file.stat().st_size
        mine = [key for key in self._held if key[0] == client]
        for key in mine[: max(0, len(mine) - self.keep)]:
            self._release(key)
        while len(self._held) > 1 and sum(self._held.values()) > self.max_total:
            self._release(next(iter(self._held)))

    def _release(self, key: tuple[str, Path]) -> None:
        del self._held[key]
        file = key[1]
        if any(held == file for _, held in self._held):
            return  # the same content, uploaded by another client too
        file.unlink(missing_ok=True)
        try:
            file.parent.rmdir()  # gradio's folder for this content, empty now
        except OSError:
            pass


def _paths(body: bytes) -> list[str]:
    try:
        paths = json.loads(body)
    except ValueError:
        return []
    return [p for p in paths if isinstance(p, str)] if isinstance(paths, list) else []


class FileArguments:
    """Refuses, at once and in a sentence, a call whose file argument is not a file that
    was uploaded to this server (a plain path string, a server path, a URL)."""

    def __init__(self, app, blocks: gr.Blocks, upload_root: str | Path):
        self.app = app
        self.blocks = blocks
        self.root = os.path.realpath(upload_root)

    async def __call__(self, scope, receive, send):
        route = _CALL_ROUTE.fullmatch(scope.get("path", "")) if scope["type"] == "http" else None
        if route is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            body.extend(message.get("body", b""))
            if len(body) > MAX_CALL_BODY:
                await _refuse(send, 413, f"a call's arguments may take at most {MAX_CALL_BODY:,} bytes "
                                         "(send file contents through the upload route)")
                return
            if not message.get("more_body"):
                break
        problem = self._problem(route.group(1), route.group(2), bytes(body))
        if problem:
            await _refuse(send, 400, problem)
            return
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    def _problem(self, kind: str | None, api_name: str | None, body: bytes) -> str | None:
        try:
            request = json.loads(body)
        except ValueError:
            return None  # gradio answers malformed JSON itself
        if not isinstance(request, dict):
            return None
        fn = self._function(request.get("fn_index") if kind is None else None, api_name)
        if fn is None:
            return None
        for name, value in self._file_arguments(fn, request, named=kind == "call/v2"):
            if not self._uploaded(value):
                return (f"{name} must be a file uploaded to this app: POST it to {UPLOAD_ROUTE}, then pass the "
                        'path it returns as {"path": <that path>, "meta": {"_type": "gradio.FileData"}} '
                        "(gradio_client's handle_file does both); paths on the server and URLs are not accepted")
        return None

    def _function(self, fn_index, api_name: str | None):
        if api_name is None:
            return self.blocks.fns.get(fn_index) if isinstance(fn_index, int) else None
        return next((fn for fn in self.blocks.fns.values() if fn.api_name == api_name), None)

    @staticmethod
    def _file_arguments(fn, request: dict, named: bool):
        """(parameter name, value) of each file input of ``fn`` in ``request``."""
        try:
            names = list(inspect.signature(fn.fn).parameters)
        except (TypeError, ValueError):
            names = []
        data = request.get("data")
        if not named and not isinstance(data, list):
            return
        inputs = list(fn.inputs)
        if not named and len(data) != len(inputs):
            # The raw API leaves out inputs it does not take (session state).
            inputs = [block for block in inputs if not block.skip_api]
        for index, block in enumerate(inputs):
            if not isinstance(block, gr.File):
                continue
            name = names[fn.inputs.index(block)] if fn.inputs.index(block) < len(names) else "a file argument"
            if named:
                yield name, request.get(name)
            elif index < len(data):
                yield name, data[index]

    def _uploaded(self, value) -> bool:
        if value is None:
            return True
        if isinstance(value, list):
            return all(self._uploaded(item) for item in value)
        if not isinstance(value, dict) or not isinstance(value.get("path"), str):
            return False
        if (value.get("meta") or {}).get("_type") != "gradio.FileData":
            return False
        path = os.path.realpath(value["path"])
        return os.path.commonpath([path, self.root]) == self.root
