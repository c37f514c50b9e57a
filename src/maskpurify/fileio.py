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
from collections.abc import Iterable, Iterator, Mapping
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


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is a temporary file of :func:`atomic_write` (``.NAME.XXXXXXXX.tmp``)."""
    return _TEMP_NAME.match(name) is not None


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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # name the file the user asked for, not our temporary one
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None
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
    """Refuse to replace an existing user file unless ``overwrite`` is set (see :class:`OutputGuard` for the
    full check of a run's outputs)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise UserError(f"{path}: already exists; pass --overwrite to replace it")
    return path


def apply_umask(path: str | Path, directory: bool = False) -> None:
    """Give a file written through a private temporary name (mkstemp: 0600) the permissions a plain write
    would have: 0666 (0777 for a folder) minus the umask."""
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


def _real(path: Path) -> Path:
    """``path`` with symbolic links resolved as far as it exists (absolute, normalised)."""
    return Path(os.path.realpath(path))


def _same_file(a: Path, b: Path) -> bool:
    if _real(a) == _real(b):
        return True
    with contextlib.suppress(OSError):
        return a.exists() and b.exists() and os.path.samefile(a, b)  # hard links
    return False


class OutputGuard:
    """The one check every output path of a run goes through (:meth:`claim`).

    An output is refused, with one line naming it, when it is the same file as an input (symbolic and hard
    links resolved; ``--overwrite`` does not change this), when another output of the same run already claimed
    it, when it lies outside ``root`` (the output folder the user chose, if any), when it exists and
    ``overwrite`` is off, or when it is a folder where a file is expected. Files written through
    :meth:`write_bytes` / :func:`atomic_write` are atomic and follow the umask.
    """

    def __init__(self, root: str | Path | None = None, inputs: Iterable[str | Path] = (),
                 overwrite: bool = False) -> None:
        self.root = None if root is None else Path(root)
        self.overwrite = overwrite
        self.inputs: list[Path] = []
        self.claimed: dict[Path, tuple[Path, str]] = {}
        for path in inputs:
            self.add_input(path)

    def add_input(self, path: str | Path) -> None:
        """Declare a file (or folder) this run reads: no output may be it."""
        self.inputs.append(Path(path))

    def claim(self, path: str | Path, what: str = "output", overwrite: bool | None = None,
              folder: bool = False, inputs: Iterable[str | Path | None] = ()) -> Path:
        """Check ``path`` as an output (a file, or with ``folder`` a folder) and record it; returns it.
        ``overwrite`` overrides the guard's setting for this one path (e.g. a resumed run's own outputs).
        ``inputs``: files read for this output only (an image and its mask in a folder run), checked like the
        guard's own inputs without being kept."""
        path = Path(path)
        real = _real(path)
        label = f"{what} {path}" if what else str(path)
        for source in [*self.inputs, *(Path(p) for p in inputs if p is not None)]:
            if _same_file(path, source):
                raise UserError(f"{label}: is the input {source} (links resolved); refusing to overwrite an input")
            if folder and source.exists() and _real(source).is_relative_to(real):
                raise UserError(f"{label}: contains the input {source}; choose an output folder outside it")
        if real in self.claimed:
            other, other_what = self.claimed[real]
            raise UserError(f"{label}: also given as {other_what} {other}; two outputs of one run cannot share "
                            "a file")
        if self.root is not None:
            root = _real(self.root)
            if real != root and not real.is_relative_to(root):
                raise UserError(f"{label}: lies outside the output folder {self.root} (resolves to {real})")
        if path.exists() or path.is_symlink():
            if folder and not path.is_dir():
                raise UserError(f"{label}: exists and is not a folder")
            if not folder and path.is_dir():
                raise UserError(f"{label}: is a folder; expected a file path")
            allowed = self.overwrite if overwrite is None else overwrite
            if not allowed and not folder:
                raise UserError(f"{label}: already exists; pass --overwrite to replace it")
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise UserError(f"{label}: {parent} is not a folder")
        self.claimed[real] = (path, what)
        return path

    def write_bytes(self, path: str | Path, data: bytes, what: str = "output",
                    overwrite: bool | None = None) -> Path:
        """Claim ``path`` and write ``data`` to it atomically."""
        path = self.claim(path, what, overwrite)
        atomic_write_bytes(path, data)
        return path


def check_outputs(outputs: Mapping[str, str | Path | None], inputs: Mapping[str, str | Path | None] | None = None,
                  root: str | Path | None = None, overwrite: bool = False) -> dict[str, Path]:
    """One-shot :class:`OutputGuard` for a command's named outputs, e.g.
    ``check_outputs({"--out": out, "--mask-video": mask_video}, {"--input": source}, overwrite=args.overwrite)``;
    None entries are skipped. Returns the outputs as Paths."""
    guard = OutputGuard(root, overwrite=overwrite)
    for path in (inputs or {}).values():
        if path is not None:
            guard.add_input(path)
    return {what: guard.claim(path, what) for what, path in outputs.items() if path is not None}


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_fingerprint(path: str | Path) -> dict[str, Any]:
    """{"size", "sha256"} of an input file: a resumed run compares it with what it recorded, so an input that
    changed under the same name is processed again instead of being reported as already done."""
    return {"size": Path(path).stat().st_size, "sha256": sha256_file(path)}


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


#: Formats :func:`read_image` lets PIL identify (MPO: JPEGs from phone cameras); nothing else is ever decoded.
READ_FORMATS = ("PNG", "JPEG", "MPO", "BMP", "TIFF", "WEBP")
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


def image_size(path: str | Path, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[int, int]:
    """(width, height) from the image header alone; UserError when above ``max_pixels`` or not an image.

    PIL's ``Image.open`` parses only the header, so a file whose header claims 40000x40000 is refused here
    before any pixel is decoded.
    """
    path = _existing_image(path)
    try:
        with _open_header(path) as img:
            width, height = img.size
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to parse a user's file is that file's problem
        raise _unreadable(path, exc, max_pixels) from None
    _check_pixels(path, width, height, max_pixels)
    return width, height


def read_image(path: str | Path, mode: str | None = "RGB", max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Read an image as uint8 (``mode`` 'RGB' -> HxWx3, 'L' -> HxW, None -> as stored: a label map).

    The pixel limit is checked from the header before decoding. 16-bit images are scaled to 8 bits (for
    ``mode=None`` a 16-bit label map is kept when every value fits 8 bits), palette images become RGB (for
    ``mode=None`` they stay palette indices, i.e. labels), alpha is dropped; float images are refused.
    Raises UserError for a missing, unreadable, truncated, oversized or unsupported file.
    """
    path = _existing_image(path)
    try:
        with _open_header(path) as img:
            width, height = img.size
            _check_pixels(path, width, height, max_pixels)
            img.load()
            array = _to_uint8(img, mode, path)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - a hostile or broken file may fail anywhere inside a decoder
        raise _unreadable(path, exc, max_pixels) from None
    if array.dtype != np.uint8:
        raise UserError(f"{path}: expected an 8-bit image, found {array.dtype}")
    return array


def _existing_image(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not an image file")
    if not path.is_file():
        raise UserError(f"{path}: no such image file")
    return path


@contextlib.contextmanager
def _open_header(path: Path) -> Iterator[Image.Image]:
    with warnings.catch_warnings():
        # Our own check (:func:`_check_pixels`) gives the message; PIL's warning would only be noise.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path, formats=_read_formats()) as img:
            yield img


def _read_formats() -> list[str]:
    Image.init()  # registers every plugin once (cheap after the first call)
    return [fmt for fmt in READ_FORMATS if fmt in Image.OPEN]


def _check_pixels(path: Path, width: int, height: int, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise UserError(f"{path}: image header gives an empty size ({width}x{height})")
    if width * height > max_pixels:
        raise UserError(f"{path}: image too large ({width}x{height} = {width * height} pixels; limit "
                        f"{max_pixels} pixels)")


def _unreadable(path: Path, exc: Exception, max_pixels: int) -> UserError:
    if isinstance(exc, Image.DecompressionBombError):
        found = _BOMB_PIXELS.search(str(exc))
        size = f"{found.group(1)} pixels" if found else "too many pixels"
        return UserError(f"{path}: image too large ({size}; limit {min(max_pixels, MAX_IMAGE_PIXELS)} pixels)")
    if isinstance(exc, UnidentifiedImageError):
        return UserError(f"{path}: unreadable or truncated image (not a {'/'.join(READ_FORMATS[:-1])} or "
                         f"{READ_FORMATS[-1]} file)")
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return UserError(f"{path}: unreadable or truncated image ({detail[:200]})")


_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def _to_uint8(img: Image.Image, mode: str | None, path: Path) -> np.ndarray:
    """Convert a loaded image to uint8 without saturating: 16 bits are scaled, not clipped."""
    if img.mode == "F":
        raise UserError(f"{path}: floating-point image; save it as an 8-bit (or 16-bit) image")
    if img.mode in _SIXTEEN_BIT or img.mode == "I":
        values = np.asarray(img).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise UserError(f"{path}: 32-bit integer image with values outside 0..65535; save it as an 8-bit "
                            "image")
        if mode is None:  # a label map: labels are values, never rescaled
            if values.size and values.max() > 255:
                raise UserError(f"{path}: 16-bit label map with values above 255 (max {int(values.max())}); "
                                "save the mask as an 8-bit single-channel PNG")
            return values.astype(np.uint8)
        grey = ((values * 255 + 32767) // 65535).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2) if mode == "RGB" else grey
    if mode is None:
        if img.mode in ("L", "P", "RGB"):
            return np.asarray(img)
        target = "L" if img.mode in ("1", "LA", "La") else "RGB"
        return np.asarray(img.convert(target))
    if img.mode != mode:
        if img.mode in ("P", "PA") and mode == "L":
            img = img.convert("RGB")  # through the palette's colours, not its indices
        img = img.convert(mode)
    return np.asarray(img)


def resolve_within(root: str | Path, name: object, source: str, what: str = "file") -> Path:
    """``root / name`` for a file that a dataset index names (COCO ``file_name``, ...).

    Refuses names that are absolute, climb out with ``..``, or lead outside ``root`` through a symbolic link:
    an index may only point inside its own dataset. ``source`` names the index in the message.
    """
    if not isinstance(name, str) or not name.strip() or "\x00" in name:
        raise UserError(f"{source}: {what} name {name!r} is not a valid relative path")
    posix = name.replace("\\", "/")
    parts = [part for part in posix.split("/") if part not in ("", ".")]
    if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix) or ".." in parts or not parts:
        raise UserError(f"{source}: {what} name {name!r} is absolute or climbs out with '..'; names must be "
                        f"relative to {root}")
    path = Path(root).joinpath(*parts)
    check_within(root, path, source, what)
    return path


def check_within(root: str | Path, path: str | Path, source: str, what: str = "file") -> Path:
    """Refuse ``path`` when, symbolic links resolved, it lies outside ``root``; returns ``path``."""
    real_root, real = Path(root).resolve(), Path(path).resolve()
    if real != real_root and not real.is_relative_to(real_root):
        raise UserError(f"{source}: {what} {path} leads outside {root} (to {real}); refusing to read it")
    return Path(path)
