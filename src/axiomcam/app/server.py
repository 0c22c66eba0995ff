"""``axiomcam serve``: the explorer as a local web page.

A standard-library HTTP server (:class:`http.server.ThreadingHTTPServer`) serves one page
(``page.html``: its CSS and JavaScript inline, no other file, no external address) and a
small JSON API the page calls:

==========================================  =================================================
``GET  /``                                   the page
``GET  /api/info``                           model, layers (default marked), methods, class
                                             names, samples
``POST /api/images?name=FILE``               an upload (the file's bytes as the body): its
                                             id, size, notice and top-5 classes
``POST /api/images?sample=NAME``             the same for a bundled sample image
``GET  /api/images/ID.png``                  the image (as explained, downscaled if huge)
``POST /api/jobs``                           ``{"image", "target", "layer", "methods"}``
                                             (and ``"counterfactual": true`` for the
                                             evidence against the class): starts
                                             explaining, returns the job's id
``GET  /api/jobs/ID``                        progress, then each method's results
``GET  /api/jobs/ID/N/heatmap.png``          method ``N``'s coloured map alone
``GET  /api/jobs/ID/N/overlay.png?alpha=A``  the map over the image (``?download=1``: as a
                                             file to save)
==========================================  =================================================

Errors are ``{"error": "..."}`` with status 400 (bad input) or 404 (unknown id or path);
the server keeps running. Jobs run one at a time on a worker thread (the model is used by
one computation at a time); the page polls their progress.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import itertools
import json
import logging
import math
import queue
import re
import threading
import traceback
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from PIL import Image

from .. import __version__
from ..figures import method_title
from ..methods import method_info
from .explorer import (
    DEFAULT_METHODS,
    MAX_UPLOAD_BYTES,
    METHODS,
    Explorer,
    MethodResult,
    OpenedImage,
)

__all__ = ["AppServer", "serve"]

logger = logging.getLogger("axiomcam")

#: images and finished jobs kept in memory (the oldest are forgotten first)
KEEP_IMAGES = 32
KEEP_JOBS = 64
#: the names a page on this machine reaches a loopback-bound server by
_LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}
#: an upload over the limit is read (and dropped) up to this size before the answer
_DRAIN_LIMIT = 2**30


class _RequestError(Exception):
    """Answered as ``{"error": message}`` with ``status``."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _Job:
    id: str
    opened: OpenedImage
    image_id: str
    class_index: int
    layer: str
    methods: list[str]
    counterfactual: bool = False
    state: str = "queued"  # queued -> running -> done | failed
    progress: float = 0.0
    message: str = "waiting for the model"
    results: list[MethodResult] = field(default_factory=list)
    error: str | None = None


class _Bounded(OrderedDict):
    """A dict that forgets its oldest entries beyond ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: str, value: object) -> None:
        super().__setitem__(key, value)
        while len(self) > self.limit:
            self.popitem(last=False)


class AppServer(ThreadingHTTPServer):
    """The app's HTTP server: holds the explorer, the opened images and the jobs.

    Args:
        explorer: what computes (:class:`axiomcam.app.explorer.Explorer`).
        host, port: where to listen (port 0: any free port, see :attr:`url`).
    """

    daemon_threads = True

    def __init__(self, explorer: Explorer, host: str = "127.0.0.1", port: int = 7860) -> None:
        self.explorer = explorer
        self.images: _Bounded = _Bounded(KEEP_IMAGES)
        self.jobs: _Bounded = _Bounded(KEEP_JOBS)
        self.lock = threading.Lock()  # guards images and jobs
        self._ids = itertools.count(1)
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self.page = resources.files(__package__).joinpath("page.html").read_bytes()
        # binds, or closes itself and raises (a port in use): the worker starts after
        super().__init__((host, port), _Handler)
        self._worker = threading.Thread(target=self._work, name="axiomcam-worker", daemon=True)
        self._worker.start()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids)}"

    def submit(self, job: _Job) -> None:
        with self.lock:
            self.jobs[job.id] = job
        self._queue.put(job)

    def server_close(self) -> None:
        self._queue.put(None)
        super().server_close()

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            job.state, job.message = "running", "starting"

            def report(fraction: float, text: str, job: _Job = job) -> None:
                job.progress, job.message = min(max(fraction, 0.0), 1.0), text

            try:
                self.explorer.explain(job.opened, job.class_index, job.layer, job.methods,
                                      progress=report, on_result=job.results.append,
                                      counterfactual=job.counterfactual)
                job.state, job.progress, job.message = "done", 1.0, "done"
            except Exception as error:  # the page shows it; the server goes on
                logger.debug("job %s failed:\n%s", job.id, traceback.format_exc())
                job.state, job.error = "failed", f"{type(error).__name__}: {error}" \
                    if not isinstance(error, ValueError) else str(error)


class _Handler(BaseHTTPRequestHandler):
    server: AppServer
    server_version = f"axiomcam/{__version__}"

    # -- plumbing

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, payload: object, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _png(self, picture: Image.Image, download: str | None = None) -> None:
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        headers = ({"Content-Disposition": f"attachment; filename*=UTF-8''{quote(download)}"}
                   if download else None)
        self._send(HTTPStatus.OK, buffer.getvalue(), "image/png", headers)

    def _body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise _RequestError("the request's Content-Length is not a number") from None
        if length > MAX_UPLOAD_BYTES:
            # read what is being sent (kept nowhere) so that the browser gets this answer,
            # not a connection reset in the middle of its upload
            remaining = min(length, _DRAIN_LIMIT)
            while remaining > 0 and (chunk := self.rfile.read(min(remaining, 2**20))):
                remaining -= len(chunk)
            self.close_connection = True
            raise _RequestError(f"the upload is {length / 2**20:.0f} MB; the app takes images "
                                f"up to {MAX_UPLOAD_BYTES // 2**20} MB")
        return self.rfile.read(length) if length else b""

    def _route(self, routes: list[tuple[str, Callable[..., None]]]) -> None:
        parts = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        try:
            self._check_origin()
            for pattern, handler in routes:
                match = re.fullmatch(pattern, parts.path)
                if match:
                    handler(query, *match.groups())
                    return
            raise _RequestError(f"no such page: {parts.path}", HTTPStatus.NOT_FOUND)
        except _RequestError as error:
            self._json({"error": str(error)}, error.status)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser went away
        except Exception as error:  # a bug: say so in the page, keep serving
            logger.error("%s %s failed:\n%s", self.command, self.path, traceback.format_exc())
            self._json({"error": f"internal error: {type(error).__name__}: {error}"},
                       HTTPStatus.INTERNAL_SERVER_ERROR)

    def _check_origin(self) -> None:
        """Only this machine's pages, when the app listens on this machine only.

        Another site's page can make the browser send requests here: a ``Host`` that is not
        a loopback name (DNS rebinding) is refused, and a POST must carry the content type
        the app's own page sends, which a plain HTML form cannot.
        """
        if ipaddress.ip_address(self.server.server_address[0]).is_loopback:
            host = urlsplit(f"//{self.headers.get('Host', '')}").hostname or ""
            if host not in _LOOPBACK_NAMES:
                raise _RequestError(f"the app answers only at a loopback address, not at "
                                    f"{host!r}", HTTPStatus.FORBIDDEN)
        if self.command == "POST":
            wanted = "application/json" if self.path.startswith("/api/jobs") \
                else "application/octet-stream"
            got = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            if got != wanted:
                raise _RequestError(f"this request must be sent as {wanted}, not "
                                    f"{got or 'no content type'}",
                                    HTTPStatus.UNSUPPORTED_MEDIA_TYPE)

    def do_GET(self) -> None:
        self._route([
            (r"/", self._page),
            (r"/api/info", self._info),
            (r"/api/images/(\w+)\.png", self._image_png),
            (r"/api/jobs/(\w+)", self._job_status),
            (r"/api/jobs/(\w+)/(\d+)/(heatmap|overlay)\.png", self._picture),
        ])

    def do_POST(self) -> None:
        self._route([(r"/api/images", self._open_image), (r"/api/jobs", self._start_job)])

    # -- pages

    def _page(self, query: dict[str, str]) -> None:
        self._send(HTTPStatus.OK, self.server.page, "text/html; charset=utf-8")

    def _info(self, query: dict[str, str]) -> None:
        explorer = self.server.explorer
        pretrained = explorer.pretrained
        self._json({
            "version": __version__,
            "model": pretrained.name,
            "input_size": pretrained.input_size,
            "channels": pretrained.channels, "score": pretrained.score,
            "notes": list(pretrained.notes),
            "layers": [{"name": name, "shape": list(shape[1:]),
                        "default": name == explorer.default_layer}
                       for name, shape in explorer.layers],
            "default_layer": explorer.default_layer,
            "methods": [{"name": method, "title": method_title(method),
                         "default": method in DEFAULT_METHODS,
                         "counterfactual": method_info(method).counterfactual}
                        for method in METHODS],
            "class_names": pretrained.class_names,
            "samples": [{"name": name, "description": text}
                        for name, text in explorer.samples().items()],
            "max_upload_mb": MAX_UPLOAD_BYTES // 2**20,
        })

    def _open_image(self, query: dict[str, str]) -> None:
        explorer = self.server.explorer
        try:
            if "sample" in query:
                if query["sample"] not in explorer.samples():
                    raise ValueError(f"unknown sample image {query['sample']!r}")
                opened = explorer.open_sample(query["sample"])
            else:
                opened = explorer.open_upload(self._body(), query.get("name") or "the upload")
        except ValueError as error:
            raise _RequestError(str(error)) from None
        image_id = self.server.new_id("i")
        with self.server.lock:
            self.server.images[image_id] = opened
        self._json({"id": image_id, "name": opened.name, "width": opened.image.width,
                    "height": opened.image.height, "notice": opened.notice,
                    "top_classes": opened.top_classes,
                    "url": f"/api/images/{image_id}.png"})

    def _image_png(self, query: dict[str, str], image_id: str) -> None:
        self._png(self._opened(image_id).image)

    def _start_job(self, query: dict[str, str]) -> None:
        try:
            request = json.loads(self._body() or b"{}")
        except json.JSONDecodeError as error:
            raise _RequestError(f"the request is not JSON: {error}") from None
        if not isinstance(request, dict):
            raise _RequestError("the request must be a JSON object")
        explorer = self.server.explorer
        image_id = str(request.get("image", ""))
        opened = self._opened(image_id)
        methods = request.get("methods")
        if not isinstance(methods, list):
            raise _RequestError("methods must be a list of method names")
        counterfactual = request.get("counterfactual", False)
        if not isinstance(counterfactual, bool):
            raise _RequestError(f"counterfactual must be true or false, not "
                                f"{json.dumps(counterfactual)}")
        try:
            class_index = explorer.resolve_class(str(request.get("target", "")).strip())
            layer = explorer.resolve_layer(str(request.get("layer") or "").strip() or None)
            methods = explorer.check_methods([str(method) for method in methods])
        except ValueError as error:
            raise _RequestError(str(error)) from None
        job = _Job(self.server.new_id("j"), opened, image_id, class_index, layer, methods,
                   counterfactual)
        self.server.submit(job)
        self._json({"id": job.id, "class_index": class_index,
                    "class_name": explorer.pretrained.class_names[class_index],
                    "layer": layer, "counterfactual": counterfactual})

    def _job_status(self, query: dict[str, str], job_id: str) -> None:
        job = self._job(job_id)
        names = self.server.explorer.pretrained.class_names
        probability = float(job.opened.probabilities[job.class_index])
        self._json({
            "id": job.id, "state": job.state, "progress": job.progress,
            "message": job.message, "error": job.error,
            "class_index": job.class_index, "class_name": names[job.class_index],
            "probability": probability, "layer": job.layer,
            "counterfactual": job.counterfactual,
            "results": [_result_json(job, index, result)
                        for index, result in enumerate(job.results)],
        })

    def _picture(self, query: dict[str, str], job_id: str, index: str, kind: str) -> None:
        job = self._job(job_id)
        if int(index) >= len(job.results):
            raise _RequestError(f"job {job_id} has no result {index}", HTTPStatus.NOT_FOUND)
        result = job.results[int(index)]
        if result.heatmap is None:
            raise _RequestError(f"{result.title} has no map: {result.error}",
                                HTTPStatus.NOT_FOUND)
        stem = _file_stem(job, result, self.server.explorer.pretrained.class_names)
        download = query.get("download") == "1"
        if kind == "heatmap":
            self._png(result.heatmap, f"{stem}_map.png" if download else None)
            return
        try:
            alpha = float(query.get("alpha", "0.5"))
        except ValueError:
            raise _RequestError(f"alpha must be a number, not {query['alpha']!r}") from None
        try:
            picture = self.server.explorer.overlay_picture(job.opened, result, alpha)
        except ValueError as error:
            raise _RequestError(str(error)) from None
        self._png(picture, f"{stem}_overlay_a{alpha:.2f}.png" if download else None)

    # -- lookups

    def _opened(self, image_id: str) -> OpenedImage:
        with self.server.lock:
            opened = self.server.images.get(image_id)
        if opened is None:
            raise _RequestError(f"no image {image_id!r} (the server keeps the last "
                                f"{KEEP_IMAGES}: upload it again)", HTTPStatus.NOT_FOUND)
        return opened

    def _job(self, job_id: str) -> _Job:
        with self.server.lock:
            job = self.server.jobs.get(job_id)
        if job is None:
            raise _RequestError(f"no job {job_id!r}", HTTPStatus.NOT_FOUND)
        return job


def _number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _result_json(job: _Job, index: int, result: MethodResult) -> dict[str, object]:
    base = f"/api/jobs/{job.id}/{index}"
    has_map = result.heatmap is not None
    return {
        "method": result.method, "title": result.title, "error": result.error,
        "heatmap": f"{base}/heatmap.png" if has_map else None,
        "overlay": f"{base}/overlay.png" if has_map else None,
        "conservation_error": _number(result.conservation_error),
        "sensitivity_error": _number(result.sensitivity_error),
        "bias_share": _number(result.bias_share),
        "deletion_auc": _number(result.deletion_auc),
        "axioms_note": result.axioms_note, "seconds": result.seconds,
    }


def _slug(text: str) -> str:
    return re.sub(r"[^\w-]+", "-", text).strip("-")


def _file_stem(job: _Job, result: MethodResult, class_names: list[str]) -> str:
    """``chelsea_xgradcam_285-Egyptian-cat_features-18``: a download's name says what it
    shows."""
    image = _slug(job.opened.name.rsplit(".", 1)[0]) or "image"
    target = _slug(f"{job.class_index}-{class_names[job.class_index]}")
    method = _slug(result.method.replace("+", "p")) + ("-counterfactual"
                                                        if job.counterfactual else "")
    return f"{image}_{method}_{target}_{_slug(job.layer)}"


def serve(explorer: Explorer, host: str = "127.0.0.1", port: int = 7860,
          ready: Callable[[str], None] | None = None) -> None:
    """Serve the app until interrupted (Ctrl-C).

    Args:
        explorer: the model's explorer.
        host, port: where to listen (port 0: any free port).
        ready: told the page's address once the server listens.
    """
    with AppServer(explorer, host, port) as server:
        (ready or print)(server.url)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
