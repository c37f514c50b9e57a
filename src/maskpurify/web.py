"""``maskpurify serve``: a local web page to try the purifier and the gaze reader on one photo or eye crop.

Standard library only (:class:`http.server.ThreadingHTTPServer`). ``GET /`` is one self-contained page (inline CSS
and JS); the page POSTs the raw bytes of the file the user picked to ``/api/purify`` (``application/octet-stream``,
the file name URL-encoded in ``X-Filename``, optionally ``X-Eye: left|right|auto``). The reply is JSON with base64
PNGs (input, purified, mask overlay, gaze picture; per eye the working-size crop before and after) and per eye its
side, verdict, the reason it was passed through and the gaze read from the purified eye and from the mask alone.
Errors are ``{"error": "one line"}``: 400 (not an image, a bad request), 413 (upload over ``--max-upload-mb``,
refused from Content-Length before the body is read; or an image over the pixel limit of :func:`read_image`).

One :class:`PurifyService` holds the networks, loaded once; a lock sends one request at a time through them, so
concurrent uploads queue.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import socket
import tempfile
import threading
import time
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from maskpurify.errors import UserError
from maskpurify.fileio import MAX_IMAGE_PIXELS, encode_image, read_image
from maskpurify.masks import overlay
from maskpurify.purification.gaze import EyeGaze, GazeReader, draw_gaze
from maskpurify.purification.pipeline import EYE_CHOICES, Pipeline

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_MAX_UPLOAD_MB = 10
#: Pictures other than the purified image are shown at most this large (longer side), to keep replies small.
DISPLAY_SIDE = 1600


def _png64(image: np.ndarray) -> str:
    return base64.b64encode(encode_image(np.ascontiguousarray(image), ".png")).decode("ascii")


def _for_display(image: np.ndarray) -> np.ndarray:
    side = max(image.shape[:2])
    if side <= DISPLAY_SIDE:
        return image
    scale = DISPLAY_SIDE / side
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def eye_region(shape: tuple[int, ...], boxes: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) around every eye box with room for the gaze arrows, inside the image; None when that is
    most of the image anyway (an eye crop), so there is nothing to zoom into."""
    if not boxes:
        return None
    height, width = shape[:2]
    pad = 0.9 * max(w for _, _, w, _ in boxes)
    x0 = max(0, int(min(x for x, _, _, _ in boxes) - pad))
    y0 = max(0, int(min(y for _, y, _, _ in boxes) - pad))
    x1 = min(width, int(math.ceil(max(x + w for x, _, w, _ in boxes) + pad)))
    y1 = min(height, int(math.ceil(max(y + h for _, y, _, h in boxes) + pad)))
    if x1 - x0 < 8 or y1 - y0 < 8 or (x1 - x0) * (y1 - y0) > 0.5 * width * height:
        return None
    return x0, y0, x1, y1


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) or "unknown error"


def _clean_name(raw: str | None) -> str:
    """The uploaded file's base name (URL-decoded), safe for a message and a temporary file name."""
    name = urllib.parse.unquote(raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable() and ch not in "\x00")[:120].strip()
    return name if name not in ("", ".", "..") else "upload"


class RequestError(Exception):
    """A problem with one request: HTTP status and one line for the page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = _one_line(message)


class PurifyService:
    """The pipeline and the gaze reader behind :meth:`handle`, one request at a time."""

    def __init__(self, pipeline: Pipeline, reader: GazeReader, max_pixels: int = MAX_IMAGE_PIXELS) -> None:
        self.pipeline = pipeline
        self.reader = reader
        self.max_pixels = max_pixels
        self.lock = threading.Lock()

    @classmethod
    def load(cls, device: str = "auto") -> PurifyService:
        pipeline = Pipeline.load(device=device)
        return cls(pipeline, GazeReader.load(device=str(pipeline.engine.device)))

    def close(self) -> None:
        self.pipeline.close()

    def decode(self, data: bytes, name: str) -> np.ndarray:
        """Uploaded bytes -> HxWx3 uint8, through :func:`read_image` (format whitelist, pixel limit from the
        header before decoding); its messages name the upload, not the temporary file."""
        if not data:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"{name}: empty upload")
        with tempfile.TemporaryDirectory(prefix="maskpurify-serve-") as folder:
            path = Path(folder) / "upload"
            path.write_bytes(data)
            try:
                return read_image(path, "RGB", self.max_pixels)
            except UserError as exc:
                message = str(exc).replace(str(path), name)
                status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE if "image too large" in message else \
                    HTTPStatus.BAD_REQUEST
                raise RequestError(status, message) from None

    def handle(self, data: bytes, name: str = "upload", eye: str = "auto") -> dict[str, Any]:
        """Purify and read the gaze of one uploaded image; the JSON-ready reply."""
        if eye not in EYE_CHOICES:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"eye {eye!r}: choose left, right or auto")
        image = self.decode(data, name)
        start = time.perf_counter()
        try:
            with self.lock:
                result = self.pipeline.purify(image, None, eye, name)
                gazes = self.reader.read([result])[0]
        except UserError as exc:
            raise RequestError(HTTPStatus.BAD_REQUEST, str(exc)) from None
        seconds = time.perf_counter() - start
        if not result.eyes:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"{name}: no eye found")
        eyes = []
        for eye_result, gaze in zip(result.eyes, gazes):
            eyes.append({
                "name": eye_result.name, "side": eye_result.side, "purified": eye_result.purified,
                "reason": eye_result.reason, "box": list(eye_result.box),
                "pitch": gaze.pitch, "yaw": gaze.yaw, "mask_pitch": gaze.mask_pitch, "mask_yaw": gaze.mask_yaw,
                "crop": _png64(eye_result.crop), "output": _png64(eye_result.output),
                "mask": _png64(overlay(eye_result.crop, eye_result.mask)),
            })
        height, width = image.shape[:2]
        pictures = {"input": image, "purified": result.image, "overlay": overlay(image, result.mask),
                    "gaze": draw_gaze(result.image, gazes)}
        region = eye_region(image.shape, [eye.box for eye in result.eyes])
        zoom = None
        if region is not None:
            zoom = {"box": [region[0], region[1], region[2] - region[0], region[3] - region[1]],
                    "images": {key: _png64(picture) for key, picture in _zoom(pictures, region, gazes).items()}}
        return {
            "name": name, "width": width, "height": height, "method": result.method,
            "purified": result.purified, "seconds": round(seconds, 3),
            "working_size": list(self.pipeline.working_size),
            "images": {key: _png64(picture if key == "purified" else _for_display(picture))
                       for key, picture in pictures.items()},
            "zoom": zoom,
            "eyes": eyes,
        }


#: The eye region is enlarged to about this width (nearest neighbour: pixels stay pixels), at most 8 times.
ZOOM_WIDTH = 640


def _zoom(pictures: dict[str, np.ndarray], region: tuple[int, int, int, int],
          gazes: list[EyeGaze]) -> dict[str, np.ndarray]:
    """The pictures cut to ``region`` and enlarged; the gaze arrows drawn anew at the enlarged size."""
    x0, y0, x1, y1 = region
    k = max(1, min(8, ZOOM_WIDTH // (x1 - x0)))

    def big(image: np.ndarray) -> np.ndarray:
        return cv2.resize(image[y0:y1, x0:x1], ((x1 - x0) * k, (y1 - y0) * k), interpolation=cv2.INTER_NEAREST)

    moved = [dataclasses.replace(g, box=((g.box[0] - x0) * k, (g.box[1] - y0) * k, g.box[2] * k, g.box[3] * k))
             for g in gazes]
    out = {key: big(picture) for key, picture in pictures.items() if key != "gaze"}
    out["gaze"] = draw_gaze(out["purified"], moved)
    return out


class _Handler(BaseHTTPRequestHandler):
    server: PurifyServer
    server_version = "maskpurify"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        if not self.server.quiet:
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj, allow_nan=False).encode("utf-8"), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": _one_line(message)})

    def _too_large(self) -> int | None:
        """The declared body length when it is over the limit (checked before a byte of the body is read)."""
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            return None
        return length if length > self.server.max_upload_bytes else None

    def handle_expect_100(self) -> bool:
        """A client that asks first (``Expect: 100-continue``, e.g. curl for large files) is refused before it
        sends the body."""
        length = self._too_large()
        if length is None:
            return super().handle_expect_100()
        self.close_connection = True
        self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, self._limit_message(length))
        return False

    def _limit_message(self, length: int) -> str:
        return f"upload of {_size(length, up=True)} is larger than the {_size(self.server.max_upload_bytes)} limit"

    def _drain(self, length: int) -> None:
        """After refusing a body, read and drop what the client already sends (briefly, at most a few MB), so
        that closing the socket does not reset the connection before the client reads the refusal."""
        left = min(length, 16 << 20)
        deadline = time.monotonic() + 2.0
        try:
            self.connection.settimeout(0.5)
            while left > 0 and time.monotonic() < deadline:
                chunk = self.rfile.read1(min(left, 1 << 16))
                if not chunk:
                    break
                left -= len(chunk)
        except (OSError, socket.timeout):
            pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = urllib.parse.urlsplit(self.path).path
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, page_html(self.server.max_upload_bytes).encode("utf-8"),
                       "text/html; charset=utf-8")
        elif path == "/favicon.ico":
            self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no page at {path}")

    do_HEAD = do_GET

    def do_POST(self) -> None:  # noqa: N802
        path = urllib.parse.urlsplit(self.path).path
        if path != "/api/purify":
            self.close_connection = True
            self._error(HTTPStatus.NOT_FOUND, f"no endpoint at {path}; POST images to /api/purify")
            return
        limit = self.server.max_upload_bytes
        try:
            length = int(self.headers.get("Content-Length", ""))
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            self._error(HTTPStatus.LENGTH_REQUIRED, "send the file with a Content-Length header")
            return
        if length > limit:  # refused before a byte of the body is read
            self.close_connection = True
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, self._limit_message(length))
            self._drain(length)
            return
        data = self.rfile.read(length)
        if len(data) != length:
            self.close_connection = True
            self._error(HTTPStatus.BAD_REQUEST, f"upload ended after {len(data)} of {length} bytes")
            return
        name = _clean_name(self.headers.get("X-Filename"))
        eye = (self.headers.get("X-Eye") or "auto").strip().lower()
        service = self.server.service
        if service is None:
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, "the networks are still loading; try again in a moment")
            return
        try:
            reply = service.handle(data, name, eye)
        except RequestError as exc:
            self._error(exc.status, exc.message)
            return
        except Exception as exc:  # noqa: BLE001 - one bad upload must not take the page down; say what happened
            self.log_error("purify failed: %r", exc)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{name}: internal error ({type(exc).__name__}: {exc})")
            return
        self._json(HTTPStatus.OK, reply)


def _size(size: int, up: bool = False) -> str:
    """A byte count for a message: "10 MB" (MiB, as --max-upload-mb counts them), "2.5 KB" or "100 bytes";
    ``up`` rounds up (an upload just over the limit never reads as equal to it)."""
    for unit, scale in (("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            value = size / scale
            value = math.ceil(value * 10) / 10 if up else round(value, 1)
            return f"{value:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"


class PurifyServer(ThreadingHTTPServer):
    """The web page and ``/api/purify`` over one :class:`PurifyService`. ``port`` 0 picks a free port
    (:attr:`url` tells which). ``service`` may be set after binding (the command binds first, so a port in use
    fails at once, then loads the networks); until then uploads get 503."""

    daemon_threads = True

    def __init__(self, service: PurifyService | None, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB << 20, quiet: bool = False) -> None:
        self.service = service
        self.max_upload_bytes = int(max_upload_bytes)
        self.quiet = quiet
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = str(host)
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


def page_html(max_upload_bytes: int) -> str:
    return _PAGE.replace("__MAX_UPLOAD_BYTES__", str(int(max_upload_bytes))).replace(
        "__MAX_UPLOAD_SIZE__", _size(max_upload_bytes))


_PAGE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>maskpurify</title>
<style>
  :root { --fg: #1d2330; --muted: #5d6677; --line: #d9dee7; --bg: #f5f7fa; --card: #fff; --accent: #2f6fde;
          --ok: #1f8a4c; --bad: #c2372f; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
         background: var(--bg); }
  header { padding: 18px 28px 8px; }
  header h1 { margin: 0; font-size: 22px; }
  header p { margin: 4px 0 0; color: var(--muted); }
  main { padding: 8px 28px 28px; max-width: 1400px; }
  #drop { display: flex; align-items: center; gap: 16px; flex-wrap: wrap; border: 2px dashed #aab4c5;
          border-radius: 10px; background: var(--card); padding: 16px 20px; }
  #drop.over { border-color: var(--accent); background: #eef4ff; }
  #drop label.button { background: var(--accent); color: #fff; padding: 8px 16px; border-radius: 6px;
                       cursor: pointer; font-weight: 600; }
  #file { position: absolute; width: 1px; height: 1px; opacity: 0; }
  #drop .hint { color: var(--muted); }
  #drop select { font: inherit; padding: 4px; }
  #status { margin: 14px 0 0; min-height: 1.4em; color: var(--muted); }
  #status.error { color: var(--bad); font-weight: 600; }
  h2 small { font-weight: normal; color: var(--muted); font-size: 14px; }
  .panels { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 16px; margin-top: 16px; }
  figure { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 10px; }
  figcaption { font-weight: 600; margin-bottom: 6px; }
  figcaption small { font-weight: normal; color: var(--muted); }
  figure img { width: 100%; height: auto; display: block; background: #222; border-radius: 4px; }
  img.small { image-rendering: pixelated; }
  h2 { font-size: 17px; margin: 26px 0 8px; }
  table { border-collapse: collapse; background: var(--card); border: 1px solid var(--line); width: 100%; }
  th, td { padding: 8px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: middle; }
  th { background: #eef1f6; font-size: 13px; text-transform: uppercase; letter-spacing: .03em; color: var(--muted); }
  td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
  td .crops { display: flex; gap: 8px; }
  td .crops div { text-align: center; font-size: 12px; color: var(--muted); }
  td .crops img { width: 150px; image-rendering: pixelated; display: block; border-radius: 3px; }
  .ok { color: var(--ok); font-weight: 600; }
  .skip { color: var(--bad); font-weight: 600; }
  .reason { color: var(--muted); font-size: 13px; }
  .legend { color: var(--muted); font-size: 13px; margin-top: 8px; }
  .sw { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin: 0 3px 0 10px; }
  [hidden] { display: none !important; }
</style>
</head>
<body>
<header>
  <h1>maskpurify</h1>
  <p>Purify a real eye image into the synthetic style, and read its gaze. Runs on this computer; nothing leaves it.</p>
</header>
<main>
  <div id="drop">
    <label class="button" for="file">Choose an image</label>
    <input id="file" type="file" accept="image/png,image/jpeg,image/bmp,image/tiff,image/webp">
    <span class="hint">or drop a face photo or an eye crop here (PNG, JPEG, BMP, TIFF, WebP; up to
      __MAX_UPLOAD_SIZE__)</span>
    <label>eye crop shows
      <select id="eye" title="which of the subject's eyes an eye crop shows; face photos: FaceMesh tells">
        <option value="auto">auto (left)</option><option value="left">left</option><option value="right">right</option>
      </select></label>
  </div>
  <p id="status" role="status">Pick an image to start.</p>
  <section id="result" hidden>
    <div id="panels" class="panels">
      <figure><figcaption>Input <small id="cap-input"></small></figcaption><img id="img-input" alt="input"></figure>
      <figure><figcaption>Purified <small>synthetic style</small></figcaption><img id="img-purified" alt="purified"></figure>
      <figure><figcaption>Mask <small id="cap-mask"></small></figcaption><img id="img-overlay" alt="mask overlay">
        <div class="legend"><span class="sw" style="background:#e6e6e6;border:1px solid #999"></span>sclera
          <span class="sw" style="background:#28a0dc"></span>iris <span class="sw" style="background:#dc283c"></span>pupil</div></figure>
      <figure><figcaption>Gaze <small>from the purified eye / from the mask</small></figcaption><img id="img-gaze" alt="gaze">
        <div class="legend">arrows: <span class="sw" style="background:#ffdc00"></span>purified
          <span class="sw" style="background:#00c8ff"></span>mask; boxes: <span class="sw" style="background:#3cc83c"></span>purified
          <span class="sw" style="background:#dc2828"></span>skipped</div></figure>
    </div>
    <div id="zoom" hidden>
      <h2>Around the eyes <small id="cap-zoom"></small></h2>
      <div class="panels">
        <figure><figcaption>Input</figcaption><img id="zoom-input" alt="input around the eyes"></figure>
        <figure><figcaption>Purified</figcaption><img id="zoom-purified" alt="purified around the eyes"></figure>
        <figure><figcaption>Mask</figcaption><img id="zoom-overlay" alt="mask around the eyes"></figure>
        <figure><figcaption>Gaze</figcaption><img id="zoom-gaze" alt="gaze around the eyes"></figure>
      </div>
    </div>
    <h2>Eyes</h2>
    <table id="eyes">
      <thead><tr><th>Eye</th><th>Side</th><th>Result</th><th>Gaze, purified<br>pitch / yaw</th>
        <th>Gaze, mask alone<br>pitch / yaw</th><th id="crops-head">Working-size crops</th></tr></thead>
      <tbody></tbody>
    </table>
    <p class="legend">Angles in degrees, in the photo's frame: positive pitch looks up, positive yaw towards the
      image's left. Crops are shown as the networks see them (a right eye mirrored to the canonical side).</p>
  </section>
</main>
<script>
"use strict";
const MAX_UPLOAD = __MAX_UPLOAD_BYTES__, MAX_UPLOAD_TEXT = "__MAX_UPLOAD_SIZE__";
const $ = (id) => document.getElementById(id);
const status = $("status");

function say(text, error) { status.textContent = text; status.className = error ? "error" : ""; }
function png(b64) { return "data:image/png;base64," + b64; }
function deg(v) { return (v >= 0 ? "+" : "\u2212") + Math.abs(v).toFixed(1) + "\u00b0"; }
function size(n) {
  if (n >= 1048576) return (Math.ceil(n / 104857.6) / 10).toString() + " MB";
  if (n >= 1024) return (Math.ceil(n / 102.4) / 10).toString() + " KB";
  return n + " bytes";
}

function show(img, b64) {
  img.onload = () => { img.classList.toggle("small", img.naturalWidth < 400); };
  img.src = png(b64);
}

function cell(row, content, cls) {
  const td = document.createElement("td");
  if (cls) td.className = cls;
  if (content instanceof Node) td.appendChild(content); else td.textContent = content;
  row.appendChild(td);
  return td;
}

function crop(label, b64) {
  const div = document.createElement("div");
  const img = document.createElement("img");
  img.src = png(b64); img.alt = label;
  div.appendChild(img); div.appendChild(document.createTextNode(label));
  return div;
}

function render(data) {
  show($("img-input"), data.images.input);
  show($("img-purified"), data.images.purified);
  show($("img-overlay"), data.images.overlay);
  show($("img-gaze"), data.images.gaze);
  $("cap-input").textContent = data.name + ", " + data.width + "\u00d7" + data.height;
  $("cap-mask").textContent = data.method === "faces" ? "from FaceMesh" : "from the segmenter";
  $("crops-head").textContent = "Working-size crops (" + data.working_size[0] + "\u00d7" + data.working_size[1] + ")";
  $("zoom").hidden = !data.zoom;
  if (data.zoom) {
    for (const key of ["input", "purified", "overlay", "gaze"]) show($("zoom-" + key), data.zoom.images[key]);
    const b = data.zoom.box;
    $("cap-zoom").textContent = b[2] + "\u00d7" + b[3] + " pixels at (" + b[0] + ", " + b[1] + ")";
  }
  const body = $("eyes").querySelector("tbody");
  body.replaceChildren();
  for (const eye of data.eyes) {
    const row = document.createElement("tr");
    cell(row, eye.name);
    cell(row, eye.side);
    const verdict = document.createElement("div");
    const head = document.createElement("div");
    head.className = eye.purified ? "ok" : "skip";
    head.textContent = eye.purified ? "purified" : "passed through";
    verdict.appendChild(head);
    if (eye.reason) {
      const why = document.createElement("div");
      why.className = "reason"; why.textContent = eye.reason;
      verdict.appendChild(why);
    }
    cell(row, verdict);
    cell(row, deg(eye.pitch) + " / " + deg(eye.yaw), "num");
    cell(row, deg(eye.mask_pitch) + " / " + deg(eye.mask_yaw), "num");
    const crops = document.createElement("div");
    crops.className = "crops";
    crops.appendChild(crop("input", eye.crop));
    crops.appendChild(crop("mask", eye.mask));
    crops.appendChild(crop(eye.purified ? "purified" : "unchanged", eye.output));
    cell(row, crops);
    body.appendChild(row);
  }
  $("result").hidden = false;
  const n = data.eyes.length, done = data.eyes.filter((e) => e.purified).length;
  say(data.name + ": " + done + " of " + n + " eye" + (n === 1 ? "" : "s") + " purified in " +
      data.seconds.toFixed(2) + " s.", false);
}

let busy = false;
async function upload(file) {
  if (!file) return;
  if (busy) { say("Still working on the previous image\u2026", false); return; }
  if (file.size > MAX_UPLOAD) {
    say("upload of " + size(file.size) + " is larger than the " + MAX_UPLOAD_TEXT + " limit", true);
    return;
  }
  busy = true;
  say("Purifying " + file.name + "\u2026", false);
  try {
    const response = await fetch("/api/purify", {
      method: "POST", body: file,
      headers: { "Content-Type": "application/octet-stream", "X-Filename": encodeURIComponent(file.name),
                 "X-Eye": $("eye").value },
    });
    let data;
    try { data = await response.json(); } catch (e) { data = { error: "the server sent no JSON (HTTP " + response.status + ")" }; }
    if (!response.ok || data.error) { say(data.error || ("HTTP " + response.status), true); return; }
    render(data);
  } catch (e) {
    say("could not reach the server: " + e.message, true);
  } finally {
    busy = false;
  }
}

$("file").addEventListener("change", (e) => { upload(e.target.files[0]); e.target.value = ""; });
const drop = $("drop");
for (const name of ["dragenter", "dragover"]) {
  drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.add("over"); });
}
for (const name of ["dragleave", "drop"]) {
  drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.remove("over"); });
}
document.addEventListener("dragover", (e) => e.preventDefault());
document.addEventListener("drop", (e) => { e.preventDefault(); upload(e.dataTransfer.files[0]); });
</script>
</body>
</html>
"""
