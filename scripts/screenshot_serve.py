"""Screenshot of ``maskpurify serve`` in a real headless browser: start the server on a free port, open the page
in Debian's Chromium (Selenium with the system chromedriver: nothing is downloaded), upload a face photo and save
the page once the results are shown.

    .venv/bin/python scripts/screenshot_serve.py              # -> docs/serve.png (the README shows it)
    .venv/bin/python scripts/screenshot_serve.py --out x.png --image my_photo.jpg

Needs ``apt-get install chromium chromium-driver`` and ``pip install selenium`` (the ``test`` extra).
tests/test_serve.py drives the browser through the functions here.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
#: The page is laid out for this window; tall enough for the panels and a two-eye table.
WINDOW = (1400, 1150)


def browser_missing() -> str | None:
    """Why the headless browser cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium; it is in the test extra)"
    if not os.access(CHROMEDRIVER, os.X_OK):
        return f"no chromedriver at {CHROMEDRIVER} (apt-get install chromium-driver)"
    if not any(os.access(path, os.X_OK) for path in CHROMIUM):
        return f"no Chromium at {' or '.join(CHROMIUM)} (apt-get install chromium)"
    return None


@contextlib.contextmanager
def serve(*extra: str, timeout: float = 180.0) -> Iterator[str]:
    """``maskpurify serve --port 0`` in a subprocess; yields its URL once it serves, stops it with Ctrl-C."""
    cmd = [sys.executable, "-m", "maskpurify", "serve", "--port", "0", "--quiet", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    err: list[str] = []
    threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True).start()  # type: ignore[arg-type]
    try:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"maskpurify serve printed no URL within {timeout:.0f} s") from None
        if not line.startswith("serving on "):
            raise RuntimeError(f"maskpurify serve: unexpected first line {line!r}; stderr: {''.join(err)[-2000:]}")
        yield line.split()[-1]
    finally:
        if proc.poll() is None:
            proc.send_signal(2)  # SIGINT: the command's clean exit
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def chromium(profile: Path, window: tuple[int, int] = WINDOW) -> Iterator[Any]:
    """Headless Chromium through the system chromedriver (Selenium Manager never runs)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--window-size={window[0]},{window[1]}", f"--user-data-dir={profile}", "--hide-scrollbars"):
        options.add_argument(flag)
    binary = next((path for path in CHROMIUM if os.access(path, os.X_OK)), None)
    if binary:
        options.binary_location = binary
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def upload_and_wait(driver: Any, url: str, image: Path, eyes: int | None = None, timeout: float = 120.0) -> dict:
    """Open the page, upload ``image`` through the file input and wait until the results are shown (and the
    eye table has ``eyes`` rows, when given). Returns what the page shows: the purified image's natural size,
    the table's rows, the status line."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    driver.find_element(By.ID, "file").send_keys(str(Path(image).resolve()))

    def shown(d: Any) -> dict | bool:
        status = d.find_element(By.ID, "status")
        if "error" in (status.get_attribute("class") or ""):
            raise RuntimeError(f"the page shows an error: {status.text}")
        if not d.find_element(By.ID, "result").is_displayed():
            return False
        width = d.execute_script("return document.getElementById('img-purified').naturalWidth")
        rows = d.find_elements(By.CSS_SELECTOR, "#eyes tbody tr")
        loaded = d.execute_script("return Array.from(document.images).every(i => i.complete)")
        if not width or not loaded or (eyes is not None and len(rows) != eyes):
            return False
        return {"purified_width": width, "rows": [r.text for r in rows], "status": status.text}

    return WebDriverWait(driver, timeout, poll_frequency=0.25).until(shown)


def full_page_png(driver: Any) -> bytes:
    """The whole page as PNG bytes, however tall (Chrome DevTools' capture beyond the viewport)."""
    import base64

    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    return base64.b64decode(shot["data"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "serve.png"), help="screenshot (default docs/serve.png)")
    parser.add_argument("--image", help="photo to upload (default: skimage's astronaut)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    missing = browser_missing()
    if missing:
        print(f"screenshot_serve: {missing}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(args.image) if args.image else Path(tmp) / "astronaut.png"
        if not args.image:
            import skimage.data
            from PIL import Image

            Image.fromarray(skimage.data.astronaut()).save(image)
        with serve("--device", args.device) as url, chromium(Path(tmp) / "profile") as driver:
            shown = upload_and_wait(driver, url, image)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_bytes(full_page_png(driver))
    print(f"{args.out}: {shown['status']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
