"""``factorkit serve``: the FastAPI app (one static page + a JSON API) and the server around it.

* ``GET /`` the editor page; ``GET /static/NAME`` its script and style (a fixed list: no path from a
  client reaches the filesystem).
* ``GET /api/runs`` the runs served (ids are positions in the list found at start);
  ``GET /api/runs/{run}`` one run's controls, from the operations its model declares.
* ``POST /api/runs/{run}/images`` an image file as the raw request body (``curl --data-binary
  @face.png``), capped in bytes and pixels → an image id, its reconstruction, the values the model
  reads from it, the judge's reading. ``POST /api/runs/{run}/examples/{k|random}`` the same for a
  test image of the run's dataset.
* ``POST /api/runs/{run}/edit`` ``{"image": ID, "values": {"Smiling": 1.5}}``; ``/swap`` ``{"image": ID,
  "other": ID, "pieces": ["chunk3"]}``; ``/traverse`` ``{"image": ID, "values": {"4": 0.8}}``;
  ``/sample`` ``{"n": 8, "seed": 0}``. ``GET /api/runs/{run}/images/{id}.png`` an image's PNG.

FastAPI documents all of it at ``/docs`` (Swagger UI on the OpenAPI schema, its files served
locally from the fastapi-offline package: nothing is fetched from a CDN). Errors are ``{"detail": message}`` with a 4xx
status: 400 bad request, 404 unknown run or image, 413 too large, 415 not an image, 422 malformed
JSON. Bound to 127.0.0.1 (the default) the app also refuses any client or Host header that is not
local (a guard against DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import sys
import threading
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ..errors import UsageError
from ..train.rundir import load_config, with_edit_output
from ..viz.grids import png_bytes
from ..viz.io import ImageTooLarge, NotAnImage
from .editor import RunEditor, UnknownImage


class UnknownRun(UsageError):
    """A run id this server does not list."""

MAX_BYTES = 10 * 1024 * 1024  # an upload's cap
MAX_JSON = 64 * 1024  # every other request body's
STATIC = {"app.js": "text/javascript", "style.css": "text/css"}
LOCAL_NAMES = {"127.0.0.1", "localhost", "::1"}
_SKIP = {"checkpoints", "tb", "figures", ".git", "__pycache__"}


def find_runs(root: str | Path, depth: int = 3) -> list[Path]:
    """``root`` itself when it is a run directory, else the run directories under it (sorted)."""
    root = Path(root)
    if (root / "config.yaml").is_file():
        return [root]
    found: list[Path] = []
    if depth > 0 and root.is_dir():
        for child in sorted(root.iterdir()):
            if child.is_dir() and child.name not in _SKIP and not child.name.startswith("."):
                found.extend(find_runs(child, depth - 1))
    return found


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # nothing typed is silently ignored


class EditRequest(_Strict):
    image: str = Field(description="image id from /images or /examples")
    values: dict[str, float] = Field(default_factory=dict, description="attribute → value; the rest as read")


class SwapRequest(_Strict):
    image: str = Field(description="the image edited")
    other: str = Field(description="the image the pieces come from")
    pieces: list[str] = Field(description="chunk or attribute-piece names, as /api/runs/{run} lists them")


class TraverseRequest(_Strict):
    image: str
    values: dict[int, float] = Field(default_factory=dict, description="code dimension → value; the rest as encoded")


class SampleRequest(_Strict):
    n: int = Field(8, ge=1, le=32)
    seed: int = Field(0, ge=0, le=2**31 - 1)


class Runs:
    """The run directories served; each model is loaded once, on first use."""

    def __init__(self, root: str | Path, judge: Any = "auto", edit_output: str | None = None) -> None:
        self.root = Path(root)
        self.paths = find_runs(self.root)
        if not self.paths:
            raise UsageError(f"{self.root}: no factorkit runs here (no config.yaml in it or below it); "
                             "give a folder `factorkit train --out` wrote, or a folder of them")
        self.judge, self.edit_output = judge, edit_output
        if edit_output is not None:  # every run must take it, checked now rather than on a first click
            for p in self.paths:
                with_edit_output(load_config(p / "config.yaml"), edit_output, where=f"the run {p}: ")
        self._editors: dict[int, RunEditor] = {}
        self._lock = threading.Lock()

    def listing(self) -> list[dict[str, Any]]:
        out = []
        for i, p in enumerate(self.paths):
            label = str(p.relative_to(self.root)) if p != self.root else p.name
            out.append({"id": str(i), "name": label})
        return out

    def get(self, run: str) -> RunEditor:
        if not re.fullmatch(r"[0-9]{1,6}", run) or not 0 <= int(run) < len(self.paths):
            raise UnknownRun(f"unknown run {run!r}; GET /api/runs lists the {len(self.paths)} served here")
        i = int(run)
        with self._lock:
            if i not in self._editors:
                self._editors[i] = RunEditor(self.paths[i], judge=self.judge, edit_output=self.edit_output)
            return self._editors[i]


def _static(name: str) -> str:
    return resources.files("factorkit.serve").joinpath("static", name).read_text(encoding="utf-8")


def _docs_assets() -> dict[str, tuple[Path, str]]:
    """Swagger UI's files from the fastapi-offline package (MIT; swagger-ui 5, Apache-2.0): the API
    page needs no CDN. A fixed list of names, so no client path reaches the filesystem."""
    import fastapi_offline

    root = Path(fastapi_offline.__file__).parent / "static"
    return {"swagger-ui-bundle.js": (root / "swagger-ui-bundle.js", "text/javascript"),
            "swagger-ui.css": (root / "swagger-ui.css", "text/css"),
            "favicon.png": (root / "favicon.png", "image/png")}


def create_app(root: str | Path, judge: Any = "auto", local_only: bool = True, max_bytes: int = MAX_BYTES,
               edit_output: str | None = None) -> FastAPI:
    """The editor for the run(s) at ``root``. ``judge``: auto | off | a Judge (tests). ``edit_output``:
    every served run's ``model.edit_output`` for this session (``factorkit serve --edit-output``)."""
    runs = Runs(root, judge, edit_output)
    page, assets = _static("index.html"), {name: _static(name) for name in STATIC}
    app = FastAPI(title="factorkit editor", version="1", description=__doc__, docs_url=None, redoc_url=None)
    app.state.runs = runs
    docs_assets = _docs_assets()

    def fail(status: int, message: str) -> JSONResponse:
        return JSONResponse({"detail": message}, status_code=status)

    if local_only:
        @app.middleware("http")
        async def local_guard(request: Request, call_next):
            client = request.client.host if request.client else ""
            if not is_loopback(client):
                return fail(403, f"this editor is bound to 127.0.0.1 and serves this machine only (client {client}); "
                                 "restart it with --host to share it")
            origin = request.headers.get("origin")
            if origin is not None and not is_loopback(urlsplit(origin).hostname or ""):  # cross-site requests (CSRF)
                return fail(403, f"requests from the page {origin!r} are refused (cross-site); use the editor's own page")
            host = request.headers.get("host", "")
            name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:].split("]")[0]
            if name not in LOCAL_NAMES:
                return fail(403, f"Host {host!r} is not this machine's loopback name (DNS-rebinding guard); "
                                 "open http://127.0.0.1:PORT/")
            return await call_next(request)

    @app.middleware("http")
    async def json_cap(request: Request, call_next):
        length = request.headers.get("content-length", "")
        if not request.url.path.endswith("/images") and length.isascii() and length.isdigit() and int(length) > MAX_JSON:
            return fail(413, f"the request body is {int(length):,} bytes; JSON requests are capped at {MAX_JSON:,}")
        return await call_next(request)

    @app.exception_handler(UsageError)
    async def usage_error(request: Request, exc: UsageError):
        status = 404 if isinstance(exc, (UnknownImage, UnknownRun)) else 413 if isinstance(exc, ImageTooLarge) else \
            415 if isinstance(exc, NotAnImage) else 400
        return fail(status, str(exc))

    def editor(run: str) -> RunEditor:
        return runs.get(run)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in assets:
            return fail(404, f"no static file {name!r}")
        return Response(assets[name], media_type=STATIC[name])

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        """FastAPI's Swagger UI page on the OpenAPI schema, its script and style served from here."""
        return get_swagger_ui_html(openapi_url=app.openapi_url, title="factorkit editor API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon.png",
                                   swagger_ui_parameters={"validatorUrl": None})  # no call to validator.swagger.io

    @app.get("/docs-assets/{name}", include_in_schema=False)
    def docs_asset(name: str) -> Response:
        if name not in docs_assets:
            return fail(404, f"no docs asset {name!r}")
        path, media = docs_assets[name]
        return Response(path.read_bytes(), media_type=media, headers={"Cache-Control": "max-age=86400"})

    @app.get("/api/runs", summary="the runs this server edits")
    def list_runs() -> list[dict[str, Any]]:
        return runs.listing()

    @app.get("/api/runs/{run}", summary="a run's controls, from its model's operations")
    def spec(run: str) -> dict[str, Any]:
        return {"id": run, **editor(run).spec()}

    @app.post("/api/runs/{run}/images", summary="upload an image (the file's bytes as the body)")
    async def upload(run: str, request: Request) -> dict[str, Any]:
        ed = await run_in_threadpool(editor, run)
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_bytes:
            raise ImageTooLarge(f"the upload is {int(length):,} bytes; the limit is {max_bytes:,}: send a smaller image")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise ImageTooLarge(f"the upload is over the {max_bytes:,}-byte limit: send a smaller image")
            chunks.append(chunk)
        if size == 0:
            raise NotAnImage("the upload is empty: send the image file's bytes as the request body")
        name = unquote(request.headers.get("x-filename", ""))  # the page sends it URI-encoded
        name = "".join(ch for ch in name.replace("\\", "/").rsplit("/", 1)[-1] if ch.isprintable())[:80] or None
        return await run_in_threadpool(ed.add_upload, b"".join(chunks), name)

    @app.post("/api/runs/{run}/examples/{which}", summary="a test image of the run's dataset: 0..5 or random")
    def example(run: str, which: str) -> dict[str, Any]:
        return editor(run).add_example(which)

    @app.post("/api/runs/{run}/edit", summary="set attributes (binary ŷ, mddAE intensities, DNA-GAN pieces)")
    def edit(run: str, body: EditRequest) -> dict[str, Any]:
        return editor(run).edit(body.image, body.values)

    @app.post("/api/runs/{run}/swap", summary="the image with pieces of another")
    def swap(run: str, body: SwapRequest) -> dict[str, Any]:
        return editor(run).swap(body.image, body.other, body.pieces)

    @app.post("/api/runs/{run}/traverse", summary="set code dimensions / knobs")
    def traverse(run: str, body: TraverseRequest) -> dict[str, Any]:
        return editor(run).traverse(body.image, body.values)

    @app.post("/api/runs/{run}/sample", summary="new samples (models that sample)")
    def sample(run: str, body: SampleRequest) -> dict[str, Any]:
        return editor(run).sample(body.n, body.seed)

    @app.get("/api/runs/{run}/images/{key}.png", summary="an image's PNG at the model's size")
    def image_png(run: str, key: str) -> Response:
        return Response(png_bytes(editor(run).image(key)[0]), media_type="image/png")

    return app


def check_bind(host: str, port: int) -> None:
    """Refuse a port out of range, an unknown host or a port in use, before anything loads."""
    if not 1 <= port <= 65535:
        raise UsageError(f"--port {port}: give 1..65535")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise UsageError(f"--host {host!r}: not an address of this machine (try 127.0.0.1)") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind(address)
        except PermissionError:
            raise UsageError(f"--port {port}: permission denied (ports below 1024 need root); try --port 7860") from None
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror}); pass another --port") from None


def serve(root: str | Path, host: str = "127.0.0.1", port: int = 7860, judge: str = "auto",
          edit_output: str | None = None) -> None:
    import uvicorn

    check_bind(host, port)
    local = is_loopback(host)
    if not local:
        print(f"factorkit: warning: serving on {host}: anyone who can reach this machine on port {port} can use the "
              "editor and upload images (the default, 127.0.0.1, keeps it local)", file=sys.stderr)
    app = create_app(root, judge=judge, local_only=local, edit_output=edit_output)
    app.state.runs.get("0")  # the first model loads now, once; others on first use
    shown = f"[{host}]" if ":" in host else host
    print(f"factorkit serve: http://{shown}:{port}/  ({len(app.state.runs.paths)} run(s); API docs at /docs)",
          file=sys.stderr, flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
