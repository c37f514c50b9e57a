"""``maskpurify serve``: the web page and its API in-process (the shipped networks, no browser), then the page in a
real headless Chromium (Debian's, through the system chromedriver; skipped when it or selenium is missing)."""

from __future__ import annotations

import base64
import http.client
import importlib.util
import io
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from maskpurify.fileio import encode_image

ROOT = Path(__file__).resolve().parents[1]


def _load_script() -> object:
    spec = importlib.util.spec_from_file_location("screenshot_serve", ROOT / "scripts" / "screenshot_serve.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules.setdefault("screenshot_serve", module)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="module")
def service() -> object:
    import torch

    from maskpurify.web import PurifyService

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a busy machine: one intra-op thread is as fast for one small image
    service = PurifyService.load("cpu")
    yield service
    service.close()
    torch.set_num_threads(threads)


def _start(service: object, **kwargs: object) -> object:
    from maskpurify.web import PurifyServer

    server = PurifyServer(service, port=0, quiet=True, **kwargs)  # type: ignore[arg-type]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def server(service: object) -> Iterator[object]:
    server = _start(service)
    yield server
    server.shutdown()
    server.server_close()


def _request(server: object, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    host, port = server.server_address[:2]  # type: ignore[attr-defined]
    conn = http.client.HTTPConnection(host, port, timeout=120)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def _post(server: object, data: bytes, name: str = "eye.png", **headers: str) -> tuple[int, dict]:
    status, head, body = _request(server, "POST", "/api/purify", data, {
        "Content-Type": "application/octet-stream", "X-Filename": name, **headers})
    assert head["Content-Type"] == "application/json"
    return status, json.loads(body)


def _png(b64: str) -> np.ndarray:
    raw = base64.b64decode(b64)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(Image.open(io.BytesIO(raw)))


def _eye_crop() -> np.ndarray:
    from maskpurify.evaluation.real_eyes import load_real_eyes

    return cv2.resize(load_real_eyes().images[0], (120, 72), interpolation=cv2.INTER_CUBIC)


def test_page_has_the_upload_input(server: object) -> None:
    status, head, body = _request(server, "GET", "/")
    html = body.decode("utf-8")
    assert status == 200 and head["Content-Type"].startswith("text/html")
    assert '<input id="file" type="file"' in html and "/api/purify" in html and "10 MB" in html
    assert _request(server, "GET", "/nothing")[0] == 404


def test_purify_an_eye_crop(server: object) -> None:
    image = _eye_crop()
    status, reply = _post(server, encode_image(image), "real%20eye.png")
    assert status == 200, reply
    assert reply["name"] == "real eye.png" and (reply["height"], reply["width"]) == (72, 120)
    assert reply["method"] == "segmenter" and reply["purified"] is True and reply["zoom"] is None
    assert _png(reply["images"]["purified"]).shape == image.shape
    for key in ("input", "overlay", "gaze"):
        assert _png(reply["images"][key]).shape == image.shape
    assert len(reply["eyes"]) == 1
    eye = reply["eyes"][0]
    assert eye["purified"] is True and eye["reason"] is None and eye["side"] == "left"
    for key in ("pitch", "yaw", "mask_pitch", "mask_yaw"):
        assert isinstance(eye[key], float) and abs(eye[key]) < 90
    for key in ("crop", "output", "mask"):
        assert _png(eye[key]).shape == (36, 60, 3)  # the working size, side by side on the page


def test_a_flat_image_is_passed_through_with_its_reason(server: object) -> None:
    status, reply = _post(server, encode_image(np.full((36, 60, 3), 128, np.uint8)), "grey.png")
    assert status == 200 and reply["purified"] is False
    assert reply["eyes"][0]["purified"] is False and reply["eyes"][0]["reason"]


def test_garbage_is_400_in_one_line(server: object) -> None:
    status, reply = _post(server, b"this is no image" * 10, "notes.txt")
    assert status == 400
    assert set(reply) == {"error"} and "\n" not in reply["error"]
    assert reply["error"].startswith("notes.txt: unreadable") and "maskpurify-serve" not in reply["error"]
    assert _post(server, b"", "empty.png") == (400, {"error": "empty.png: empty upload"})
    assert _post(server, encode_image(_eye_crop()), "x.png", **{"X-Eye": "middle"})[0] == 400


def test_oversized_upload_is_413_before_the_body_is_read(service: object) -> None:
    server = _start(service, max_upload_bytes=100)
    try:
        status, reply = _post(server, b"\0" * 1000, "big.png")
        assert status == 413
        assert reply == {"error": "upload of 1000 bytes is larger than the 100 bytes limit"}
        status, head, body = _request(server, "POST", "/api/purify", b"\0" * 1000,
                                      {"Expect": "100-continue", "Content-Type": "application/octet-stream"})
        assert status == 413
    finally:
        server.shutdown()
        server.server_close()
    from maskpurify.web import _size

    assert _size(10 << 20) == "10 MB" and _size(int(12.34 * (1 << 20)), up=True) == "12.4 MB"


def test_image_over_the_pixel_limit_is_413(service: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "max_pixels", 100)
    server = _start(service)
    try:
        status, reply = _post(server, encode_image(np.zeros((20, 20, 3), np.uint8)), "huge.png")
    finally:
        server.shutdown()
        server.server_close()
    assert status == 413 and reply["error"].startswith("huge.png: image too large: 20x20 RGB")


def test_defaults_bind_to_this_computer_only() -> None:
    from maskpurify.cli import build_parser
    from maskpurify.web import DEFAULT_HOST, PurifyServer

    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.max_upload_mb) == ("127.0.0.1", 7860, 10)
    assert DEFAULT_HOST == "127.0.0.1"
    server = PurifyServer(None, port=0)
    try:
        assert server.server_address[0] == "127.0.0.1" and server.url.startswith("http://127.0.0.1:")
    finally:
        server.server_close()


def test_requests_queue_through_one_lock(server: object, service: object) -> None:
    data = encode_image(_eye_crop())
    replies: list[int] = []
    threads = [threading.Thread(target=lambda: replies.append(_post(server, data)[0])) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert replies == [200, 200, 200] and not service.lock.locked()  # type: ignore[attr-defined]


def test_page_in_headless_chromium(tmp_path: Path) -> None:
    script = _load_script()
    missing = script.browser_missing()  # type: ignore[attr-defined]
    if missing:
        pytest.skip(missing)
    import skimage.data

    from maskpurify.purification.faces import mediapipe_available

    # A face photo when MediaPipe is installed (make setup-faces; CI has it), else an eye crop.
    faces = mediapipe_available()
    photo = tmp_path / ("astronaut.png" if faces else "eye.png")
    Image.fromarray(skimage.data.astronaut() if faces else _eye_crop()).save(photo)
    eyes, width = (2, 512) if faces else (1, _eye_crop().shape[1])
    with script.serve("--device", "cpu") as url, \
            script.chromium(tmp_path / "profile") as driver:  # type: ignore[attr-defined]
        assert url.startswith("http://127.0.0.1:")
        shown = script.upload_and_wait(driver, url, photo, eyes=eyes, timeout=120)  # type: ignore[attr-defined]
        assert shown["purified_width"] == width
        assert len(shown["rows"]) == eyes and all("purified" in row for row in shown["rows"])
        assert f"{eyes} of {eyes} eye{'s' if eyes > 1 else ''} purified" in shown["status"]
        shot = tmp_path / "serve.png"
        shot.write_bytes(script.full_page_png(driver))  # type: ignore[attr-defined]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000
    width, height = Image.open(shot).size
    assert width >= 1000 and height >= 900


def test_command_prints_the_url_and_exits_cleanly_on_ctrl_c(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from maskpurify.cli import main
    from maskpurify.web import PurifyServer, PurifyService

    class Fake:
        closed = False

        def close(self) -> None:
            Fake.closed = True

    def interrupted(self: PurifyServer, *args: object) -> None:
        assert self.service is not None and self.max_upload_bytes == 3 << 20
        raise KeyboardInterrupt

    monkeypatch.setattr(PurifyService, "load", classmethod(lambda cls, device: Fake()))
    monkeypatch.setattr(PurifyServer, "serve_forever", interrupted)
    assert main(["serve", "--port", "0", "--max-upload-mb", "3"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("serving on http://127.0.0.1:") and "stopped" in err and Fake.closed


def test_a_port_in_use_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    from maskpurify.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"maskpurify serve: error: cannot listen on 127.0.0.1:{port} (") and err.count("\n") == 1
