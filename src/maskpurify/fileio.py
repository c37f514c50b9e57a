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

#: Images with more pixels than this are refused (decompression-bomb guard and memory budget): 8192x4608 (an 8K
#: frame, 108 MiB as RGB). Checked from the header, before any decoder runs. PIL's own guard is set to the same
#: limit, so the two never disagree. The limit keeps ``maskpurify purify`` of any accepted image (its copies, the
#: 3:5 working box around it, the saved mask and overlay, the networks) under 2 GB of memory
#: (``tests/test_hardening.py`` measures the peak); a larger image is refused in one line saying how much memory
#: it would take.
MAX_IMAGE_PIXELS = 8192 * 4608
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

#: Names of the temporary files :func:`atomic_write` creates (``.NAME.XXXXXXXX.tmp``; NAME shortened and hashed,
#: :func:`temp_stem`, when the final name is too long for that to fit the file system's name limit).
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]{8}\.tmp$")
#: Longest file name (bytes) of the file systems we write to (NAME_MAX of ext4, XFS, btrfs, APFS, NTFS in UTF-16).
NAME_MAX = 255


def fit_name(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` bytes of UTF-8 without splitting a character."""
    return text.encode("utf-8")[:max(0, max_bytes)].decode("utf-8", errors="ignore")


def temp_stem(name: str, extra: int = 14) -> str:
    """What stands for the final ``name`` inside a temporary name that adds ``extra`` bytes (``.``, ``.XXXXXXXX``,
    ``.tmp``): ``name`` itself when the result fits :data:`NAME_MAX`, else its start and a hash of the whole
    (``start~0123456789ab``), so a legal name of up to 255 bytes can always be written through a temporary one."""
    if len(name.encode("utf-8")) + extra <= NAME_MAX:
        return name
    import hashlib

    digest = hashlib.sha256(name.encode("utf-8", errors="surrogateescape")).hexdigest()[:12]
    return f"{fit_name(name, NAME_MAX - extra - 13)}~{digest}"


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
    wanted = None if names is None else {temp_stem(name) for name in names}
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

    An interrupted write never leaves a truncated file under the final name. The temporary name fits the file
    system's name limit for any legal ``path`` (:func:`temp_stem`). A failure while writing (disk full, a file-size
    limit, an I/O error) removes the temporary file and is a one-line UserError naming ``path``
    (``PATH: cannot write: No space left on device``).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{temp_stem(path.name)}.", suffix=".tmp", dir=path.parent)
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
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise UserError(f"{path}: cannot write: {exc.strerror or exc}") from None
        raise


def copy_file_atomic(src: str | Path, dest: str | Path) -> None:
    """Copy the bytes of ``src`` to ``dest`` through :func:`atomic_write` (byte-identical, never half written)."""
    try:
        source = open(src, "rb")
    except OSError as exc:
        raise UserError(f"{src}: cannot read ({exc.strerror or exc})") from None
    with source, atomic_write(dest, "wb") as handle:
        for block in iter(lambda: source.read(1 << 20), b""):
            handle.write(block)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_write(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Strict JSON (NaN and infinities become null, so every JSON parser reads it), written atomically."""
    atomic_write_bytes(path, json_bytes(obj))


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


# ----------------------------------------------------------------------------------------------------------------
# Structured files (JSON, YAML): the one safe reader every sidecar, progress file, dataset meta, UnityEyes sample
# and --config goes through

#: Largest JSON or YAML file read (16 MiB): a sidecar, a progress file or a config is a few kB; a COCO index of a
#: large dataset a few MB.
MAX_STRUCTURED_BYTES = 16 * 1024 * 1024
#: Largest dataset index read (COCO ``instances_train2017.json`` is 448 MB): 2 GiB.
MAX_INDEX_BYTES = 2 * 1024 * 1024 * 1024
#: Deepest nesting of lists and mappings accepted (our own files nest 4 levels at most).
MAX_NESTING = 64
#: Longest number (digits, sign, point and exponent together) accepted: no real value needs more, and int() of a
#: very long digit string is quadratic.
MAX_NUMBER_CHARS = 100

_OPENERS = np.frombuffer(b"[{", dtype=np.uint8)
_CLOSERS = np.frombuffer(b"]}", dtype=np.uint8)
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


class _Refused(Exception):
    """A structured file breaks one of the limits above (converted into a UserError naming the file)."""


class NotValidSyntax(UserError):
    """Text that is not valid JSON / YAML at all (as opposed to valid text refused by a limit): ``--set`` keeps
    such a value as a plain string."""


def _limit(n: int) -> str:
    if n % (1024 ** 3) == 0:
        return f"{n // 1024 ** 3} GiB"
    return f"{n // (1024 * 1024)} MiB" if n % (1024 * 1024) == 0 else f"{n} bytes"


def _read_limited(path: Path, kind: str, max_bytes: int) -> str:
    """The text of ``path``: at most ``max_bytes`` bytes of strict UTF-8 without NUL characters."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise UserError(f"{path}: {kind} file too large (over the {_limit(max_bytes)} limit)")
    return _decode(data, str(path), kind)


def _decode(data: bytes, source: str, kind: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start:exc.start + 1].hex()
        raise UserError(f"{source}: not UTF-8 text (byte 0x{bad} at offset {exc.start}; save the {kind} file as "
                        "UTF-8)") from None
    if "\x00" in text:
        raise UserError(f"{source}: contains NUL characters (UTF-16 or a binary file?); save the {kind} file as "
                        "UTF-8")
    return text.removeprefix("\ufeff")


_NUMBER_CHARS = np.frombuffer(b"-+0123456789.eE", dtype=np.uint8)


def _json_scan(text: str, block: int = 1 << 24) -> tuple[int, int]:
    """(deepest bracket nesting, longest number) of JSON ``text``, strings skipped: counted before parsing,
    without recursion or a per-character Python loop, in blocks of ``block`` bytes (a large COCO index never
    needs more than a few copies of itself)."""
    codes = np.frombuffer(_JSON_STRING.sub("", text).encode("utf-8"), dtype=np.uint8)
    depth = deepest = run = longest = 0
    for start in range(0, codes.size, block):
        chunk = codes[start:start + block]
        steps = np.isin(chunk, _OPENERS).astype(np.int32) - np.isin(chunk, _CLOSERS).astype(np.int32)
        steps = steps[steps != 0]
        if steps.size:
            levels = np.cumsum(steps) + depth
            deepest, depth = max(deepest, int(levels.max())), int(levels[-1])
        breaks = np.flatnonzero(~np.isin(chunk, _NUMBER_CHARS))  # runs of number characters lie between these
        if breaks.size == 0:
            run += chunk.size
            longest = max(longest, run)
            continue
        inner = int(np.diff(breaks).max()) - 1 if breaks.size > 1 else 0
        longest = max(longest, run + int(breaks[0]), inner)
        run = chunk.size - 1 - int(breaks[-1])
        longest = max(longest, run)
    return deepest, longest


def parse_json(data: str | bytes, source: str, max_bytes: int = MAX_STRUCTURED_BYTES) -> Any:
    """Parse JSON held in memory under the limits of :func:`read_json`; ``source`` names it in the message."""
    if len(data) > max_bytes:
        raise UserError(f"{source}: JSON too large (over {_limit(max_bytes)})")
    if isinstance(data, bytes):
        data = _decode(data, source, "JSON")
    depth, longest = _json_scan(data)
    if depth > MAX_NESTING:
        raise UserError(f"{source}: bad JSON (nested {depth} levels deep; the limit is {MAX_NESTING})")
    if longest > MAX_NUMBER_CHARS:
        raise UserError(f"{source}: bad JSON (number with more than {MAX_NUMBER_CHARS} characters: {longest})")
    try:
        return json.loads(data)
    except RecursionError:
        raise UserError(f"{source}: bad JSON (nested too deeply; the limit is {MAX_NESTING} levels)") from None
    except (json.JSONDecodeError, ValueError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise NotValidSyntax(f"{source}: bad JSON ({detail[:200]})") from None


def read_json(path: str | Path, max_bytes: int = MAX_STRUCTURED_BYTES) -> Any:
    """Parse a JSON file, safely: at most ``max_bytes`` (16 MiB), strict UTF-8, nested at most
    :data:`MAX_NESTING` levels, numbers of at most :data:`MAX_NUMBER_CHARS` characters. Any problem (unreadable,
    too large, not UTF-8, bad JSON, too deep) is a one-line UserError naming the file."""
    path = Path(path)
    return parse_json(_read_limited(path, "JSON", max_bytes), str(path), max_bytes)


def _yaml_loader() -> type:
    """A SafeLoader with YAML 1.2 core-schema scalars and no anchors, aliases or deep nesting (built once)."""
    import yaml
    from yaml.events import AliasEvent

    class SafeLoader12(yaml.SafeLoader):  # type: ignore[misc]
        """Plain scalars resolve as in YAML 1.2 (core schema): ``1e-3`` is a float, ``030`` is 30, ``1:30``
        and ``yes`` are strings. Anchors and aliases are refused (no billion-laughs expansion), and so is
        nesting deeper than :data:`MAX_NESTING`."""

        yaml_implicit_resolvers: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
        _depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            if isinstance(event, AliasEvent) or getattr(event, "anchor", None) is not None:
                raise _Refused("YAML anchors and aliases (&name, *name) are not allowed; write the values out")
            self._depth += 1
            try:
                if self._depth > MAX_NESTING:
                    raise _Refused(f"nested more than {MAX_NESTING} levels deep")
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def construct_yaml_int(self, node: Any) -> int:
            value = str(self.construct_scalar(node))
            if len(value) > MAX_NUMBER_CHARS:
                raise _Refused(f"number with more than {MAX_NUMBER_CHARS} characters ({value[:20]}...)")
            sign, digits = (-1, value[1:]) if value[:1] == "-" else (1, value.lstrip("+"))
            if digits.startswith("0o"):
                return sign * int(digits[2:], 8)
            if digits.startswith("0x"):
                return sign * int(digits[2:], 16)
            return sign * int(digits, 10)

        def construct_yaml_float(self, node: Any) -> float:
            value = str(self.construct_scalar(node))
            if len(value) > MAX_NUMBER_CHARS:
                raise _Refused(f"number with more than {MAX_NUMBER_CHARS} characters ({value[:20]}...)")
            lower = value.lower()
            if lower in (".nan", "+.nan", "-.nan"):
                return math.nan
            if lower.endswith(".inf"):
                return -math.inf if lower.startswith("-") else math.inf
            return float(value)

    core = [
        ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
        ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
        ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
        ("tag:yaml.org,2002:float", r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                                    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", list("-+.0123456789")),
    ]
    for tag, pattern, first in core:
        SafeLoader12.add_implicit_resolver(tag, re.compile(pattern), first)
    SafeLoader12.add_constructor("tag:yaml.org,2002:int", SafeLoader12.construct_yaml_int)
    SafeLoader12.add_constructor("tag:yaml.org,2002:float", SafeLoader12.construct_yaml_float)
    return SafeLoader12


_YAML_LOADER: type | None = None


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML held in memory (a ``--set`` value, a config file's text) with the rules of :func:`read_yaml`;
    ``source`` names it in the message (a file, or ``--set KEY``)."""
    import yaml

    global _YAML_LOADER
    if _YAML_LOADER is None:
        _YAML_LOADER = _yaml_loader()
    if len(text) > MAX_STRUCTURED_BYTES:
        raise UserError(f"{source}: YAML too large (over {_limit(MAX_STRUCTURED_BYTES)})")
    if "\x00" in text:
        raise UserError(f"{source}: contains NUL characters; YAML must be UTF-8 text")
    loader = None
    try:
        loader = _YAML_LOADER(text)  # its reader already refuses control characters
        return loader.get_single_data()
    except _Refused as exc:
        raise UserError(f"{source}: {exc}") from None
    except RecursionError:
        raise UserError(f"{source}: nested too deeply (the limit is {MAX_NESTING} levels)") from None
    except yaml.YAMLError as exc:
        raise NotValidSyntax(f"{source}: not valid YAML ({' '.join(str(exc).split())[:200]})") from None
    except (ValueError, OverflowError) as exc:  # a malformed explicitly tagged scalar (!!int x, !!binary ...)
        raise UserError(f"{source}: not valid YAML ({str(exc).splitlines()[0][:200] if str(exc) else exc!r})") \
            from None
    finally:
        if loader is not None:
            loader.dispose()


def read_yaml(path: str | Path, max_bytes: int = MAX_STRUCTURED_BYTES) -> Any:
    """Parse a YAML file, safely: at most ``max_bytes`` (16 MiB), strict UTF-8, nested at most
    :data:`MAX_NESTING` levels, numbers of at most :data:`MAX_NUMBER_CHARS` characters, no anchors or aliases,
    and YAML 1.2 scalars (``1e-3`` is a number, ``030`` is 30, ``1:30`` and ``no`` are strings). Any problem is a
    one-line UserError naming the file."""
    path = Path(path)
    return parse_yaml(_read_limited(path, "YAML", max_bytes), str(path))


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


_SUFFIX_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
                   ".webp": "WEBP"}


def suffix_format(suffix: str) -> str | None:
    """The PIL format an output file name's suffix picks (``.jpg`` -> ``JPEG``), or None."""
    return _SUFFIX_FORMATS.get(suffix.lower())


def encode_image(array: np.ndarray, suffix: str = ".png", quality: int = 95) -> bytes:
    """Encode an HxW or HxWx3 uint8 array in the format named by ``suffix``."""
    fmt = suffix_format(suffix)
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


def image_format(path: str | Path) -> str | None:
    """The format PIL reads in ``path``'s header (``PNG``, ``JPEG``, ...; MPO is reported as JPEG), or None when
    it is no image PIL identifies."""
    try:
        with _open_header(Path(path)) as img:
            return "JPEG" if img.format == "MPO" else img.format
    except Exception:  # noqa: BLE001 - any failure means: not an image we know
        return None


#: Formats whose compression changes pixel values: a label map saved in one has lost its labels.
LOSSY_FORMATS = ("JPEG", "MPO")


def read_image(path: str | Path, mode: str | None = "RGB", max_pixels: int = MAX_IMAGE_PIXELS,
               labels: bool = False) -> np.ndarray:
    """Read an image as uint8 (``mode`` 'RGB' -> HxWx3, 'L' -> HxW, None -> as stored: a label map).

    The pixel limit is checked from the header before decoding. 16-bit images are scaled to 8 bits (for
    ``mode=None`` a 16-bit label map is kept when every value fits 8 bits), palette images become RGB (for
    ``mode=None`` they stay palette indices, i.e. labels), alpha is dropped; float images are refused. An EXIF
    orientation is honoured: the array is upright, as a viewer shows the file (outputs written from it carry no
    EXIF). ``labels``: the file is a label map, so a JPEG (whatever its name) is refused, since lossy compression
    changes labels; the format is the one PIL finds in the file, not the suffix.
    Raises UserError for a missing, unreadable, truncated, oversized or unsupported file.
    """
    path = _existing_image(path)
    width = height = 0
    try:
        with _open_header(path) as img:
            width, height = img.size
            _check_pixels(path, width, height, max_pixels, mode)
            if labels and img.format in LOSSY_FORMATS:
                raise UserError(f"{path}: is a JPEG: lossy compression changes labels; save masks as PNG")
            img.load()
            array = _to_uint8(_upright(img), mode, path)
    except UserError:
        raise
    except MemoryError:
        raise UserError(f"{path}: not enough memory to decode this {width}x{height} image") from None
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


def _upright(img: Image.Image) -> Image.Image:
    """``img`` turned as its EXIF orientation says (itself when it has none)."""
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block is no orientation
        return img
    if orientation in (None, 1) or not isinstance(orientation, int) or not 2 <= orientation <= 8:
        return img
    from PIL import ImageOps

    return ImageOps.exif_transpose(img)


def _mib(n: int) -> str:
    return f"{n / 2 ** 20:.0f} MiB"


def _check_pixels(path: Path, width: int, height: int, max_pixels: int, mode: str | None = "RGB") -> None:
    if width < 1 or height < 1:
        raise UserError(f"{path}: image header gives an empty size ({width}x{height})")
    if width * height > max_pixels:
        channels, kind = (1, "grey") if mode == "L" else (3, "RGB")
        raise UserError(f"{path}: image too large: {width}x{height} {kind} would take "
                        f"{_mib(width * height * channels)} ({width * height} pixels); the limit is {max_pixels} "
                        f"pixels ({_mib(max_pixels * channels)}); crop or shrink it")


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


# ----------------------------------------------------------------------------------------------------------------
# One owner per folder

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no locking
    fcntl = None  # type: ignore[assignment]


class FolderLock:
    """An exclusive, non-blocking ``flock`` on ``folder/name``: one owner per folder at a time.

    :meth:`acquire` raises a one-line UserError naming the folder and the pid of the owner when another process
    holds it. The kernel releases a ``flock`` when its owner exits however it exits (SIGKILL included), so a
    killed run never leaves a stuck lock: only the file stays, and it is taken over by the next run.
    :meth:`release` (``remove=True``) deletes the file; a process that opened it just before is not fooled, since
    the lock is only held once the file under the name is the one locked.
    """

    def __init__(self, folder: str | Path, name: str, what: str = "maskpurify run") -> None:
        self.folder = Path(folder)
        self.path = self.folder / name
        self.what = what
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def owner(self) -> str:
        """The pid written in the lock file, or '?'."""
        with contextlib.suppress(OSError, ValueError):
            text = self.path.read_bytes()[:32].decode("ascii").strip()
            if text.isdigit():
                return text
        return "?"

    def _busy(self) -> UserError:
        return UserError(f"{self.folder}: is in use by another {self.what} (pid {self.owner()}); wait for it to "
                         f"finish or choose another folder")

    def check(self) -> None:
        """Refuse now (without taking the lock, and without creating anything) when another process holds it."""
        if fcntl is None or self.held or not self.path.is_file():
            return
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise self._busy() from None
        except OSError:
            return
        finally:
            os.close(fd)  # closing releases the probe's lock

    def acquire(self) -> None:
        """Take the lock (creating the folder and the file) and write our pid into it; no-op when held."""
        if fcntl is None or self.held:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666 & ~current_umask())
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise self._busy() from None
            except BaseException:
                os.close(fd)
                raise
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if not same:  # the owner we waited on removed the file as it let go: lock the new one
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode("ascii"))
            self._fd = fd
            return
        raise self._busy()

    def release(self, remove: bool = False) -> None:
        """Let go of the lock; ``remove`` deletes the lock file first (while still holding it)."""
        if self._fd is None:
            return
        try:
            if remove:
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
        finally:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            if self._fd is not None:
                os.close(self._fd)
