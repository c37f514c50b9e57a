"""Safe file I/O: atomic writes, no silent overwrites, validated image reads, output paths checked in one place."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from maskpurify.errors import UserError

#: Images with more pixels than this are refused (decompression-bomb guard); 8k x 8k. Checked from the header,
#: before any decoder runs. PIL's own guard is set to the same limit, so the two never disagree.
MAX_IMAGE_PIXELS = 8192 * 8192
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

#: Names of the temporary files :func:`atomic_write` creates (``.NAME.XXXXXXXX.tmp``).
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]{8}\.tmp$")


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux: /proc), so that files written
    through a temporary name get the permissions a plain ``open(path, "w")`` would."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_dir(path: str | Path) -> None:
    """Make a rename or a new entry in directory ``path`` durable (no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def json_bytes(obj: Any) -> bytes:
    """Strict JSON (NaN and infinities become null, so every JSON parser reads it) as UTF-8 bytes."""
    return (json.dumps(_finite(obj), indent=2, sort_keys=False, default=_json_default, allow_nan=False)
            + "\n").encode("utf-8")


def clean_stale_temps(folder: str | Path, names: Iterable[str] | None = None) -> list[Path]:
    """Remove temporary files that a killed :func:`atomic_write` left in ``folder`` (not recursive): those of the
    given final ``names``, or all of them when None. Only the single writer of ``folder`` may call this."""
    folder = Path(folder)
    wanted = None if names is None else set(names)
    removed = []
    if not folder.is_dir():
        return removed
    for child in folder.iterdir():
        match = _TEMP_NAME.match(child.name)
        if match and (wanted is None or match.group("name") in wanted) and child.is_file():
            with contextlib.suppress(FileNotFoundError):
                child.unlink()
            removed.append(child)
    return removed


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success it is fsynced and renamed over ``path``.

    An interrupted write never leaves a truncated file under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600 files; give what a plain write would
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_write(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Strict JSON (NaN and infinities become null, so every JSON parser reads it), written atomically."""
    atomic_write_bytes(path, json_bytes(obj))


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; an unreadable file or bad JSON is a one-line UserError naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: bad JSON ({exc})") from None


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.floating):
        return _finite(float(obj))
    return obj


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def ensure_writable(path: str | Path, overwrite: bool) -> Path:
    """Refuse to replace an existing user file unless ``overwrite`` is set."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise UserError(f"{path}: already exists; pass --overwrite to replace it")
    return path


def encode_image(array: np.ndarray, suffix: str = ".png", quality: int = 95) -> bytes:
    """Encode an HxW or HxWx3 uint8 array in the format named by ``suffix``."""
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
           ".webp": "WEBP"}.get(suffix.lower())
    if fmt is None:
        raise UserError(f"unsupported image format '{suffix}' (use one of {', '.join(IMAGE_SUFFIXES)})")
    buffer = io.BytesIO()
    kwargs = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def save_image(path: str | Path, array: np.ndarray) -> None:
    """Atomically write an image; the format follows the file suffix."""
    atomic_write_bytes(path, encode_image(array, Path(path).suffix))


def read_image(path: str | Path, mode: str = "RGB", max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Read an image as uint8 (``mode`` 'RGB' -> HxWx3, 'L' -> HxW, None -> as stored).

    Raises UserError for a missing, unreadable, truncated or oversized file.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such image file")
    try:
        with Image.open(path) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise UserError(f"{path}: image too large ({width}x{height} pixels; limit {max_pixels} pixels)")
            img.load()
            if mode is not None and img.mode != mode:
                img = img.convert(mode)
            array = np.asarray(img)
    except UserError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"{path}: unreadable or truncated image ({exc})") from None
    if array.dtype != np.uint8:
        raise UserError(f"{path}: expected an 8-bit image, found {array.dtype}")
    return array
