"""Eye datasets on disk: deterministic compressed shards, resumable writes, lazy torch reading.

Layout of a dataset directory::

    meta.json            domain, n, size, seed, shard_size, grey, resolved preset and geometry, command
    shard-00000.npz      samples [0, shard_size); keys images (N,H,W,C) uint8, masks (N,H,W) uint8,
    shard-00001.npz      gaze (N,2), head_pose (N,2), pupil_center (N,2), iris_landmarks (N,32,2),
    ...                  eyelid_landmarks (N,16,2) float32
    unityeyes/1.jpg ...  (``unityeyes=True``) per-sample image + json in the UnityEyes schema, 1-based names

Shards are zip files written with fixed timestamps, so the same seed gives byte-identical files. Chunks are
rendered by worker processes (one per usable core for large datasets; each chunk has its own random streams, so
the files do not depend on the number of workers) while a thread of this process compresses and writes the shard
before (zlib releases the GIL). This process is the folder's only writer; at most two shards of rendered chunks are
in flight and one waits to be written, so memory stays bounded.

UnityEyes json conventions (as read by GazeML-style loaders): 2-D landmark strings are ``"(x, y, z)"`` with
``y`` measured from the *bottom* of the image (``y_unity = H - y``) and ``z = 0``; ``eye_details.look_vec`` is
``"(x, -y, z, 0)"`` for our MPIIGaze gaze vector ``(x, y, z)`` (Unity's camera has y up), so that
``pitch = asin(look_y)`` and ``yaw = atan2(-look_x, -look_z)`` recover our gaze; ``head_pose`` is
``"(P, Y, 0)"`` degrees with ``P = -pitch mod 360`` and ``Y = 180 - yaw``; ``iris_size`` is the iris radius
over the eyeball radius and ``pupil_size`` the pupil radius over the iris radius.
"""

from __future__ import annotations

import io
import math
import multiprocessing
import os
from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from maskpurify.batch import EyeBatch
from maskpurify.config import MAX_SAMPLES, check_field, command_line, parse_size, to_dict
from maskpurify.errors import UserError
from maskpurify.fileio import atomic_write_bytes, atomic_write_json, clean_stale_temps, encode_image, is_temp_name, \
    read_json
from maskpurify.masks import EYE_LABELS
from maskpurify.world.domains import DomainPreset, GeometryConfig, default_geometry, get_preset
from maskpurify.world.renderer import CHUNK, RenderedEyes, render_samples

if TYPE_CHECKING:
    import torch

SHARD_KEYS = ("images", "masks", "gaze", "head_pose", "pupil_center", "iris_landmarks", "eyelid_landmarks")
FORMAT_VERSION = 1
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
#: Below this many samples a render stays in this process: starting worker processes costs more than it saves.
PARALLEL_MIN_SAMPLES = 8 * CHUNK


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.npz"


def save_npz_deterministic(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Like ``np.savez_compressed`` but byte-reproducible (fixed zip timestamps), written atomically."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(value), allow_pickle=False)
            archive.writestr(info, member.getvalue(), compresslevel=6)
    atomic_write_bytes(path, buffer.getvalue())


def _fmt(values: Any) -> str:
    return "(" + ", ".join(f"{float(v):.4f}" for v in values) + ")"


def unityeyes_record(batch: RenderedEyes, i: int, height: int) -> dict[str, Any]:
    """The UnityEyes json of sample ``i`` of ``batch`` (see the module docstring for the conventions)."""

    def points(xy: np.ndarray) -> list[str]:
        return [_fmt((x, height - y, 0.0)) for x, y in xy]

    g = batch.gaze_vector[i]
    pitch, yaw = np.degrees(batch.head_pose[i])
    return {
        "interior_margin_2d": points(batch.eyelid_landmarks[i]),
        "caruncle_2d": points(batch.caruncle_landmarks[i]),
        "iris_2d": points(batch.iris_landmarks[i]),
        "eye_details": {"look_vec": _fmt((g[0], -g[1], g[2], 0.0)), "pupil_size": f"{float(batch.pupil_size[i]):.4f}",
                        "iris_size": f"{float(batch.iris_size[i]):.4f}", "iris_texture": "procedural"},
        "head_pose": _fmt(((-pitch) % 360.0, 180.0 - yaw, 0.0)),
    }


def _meta(domain: str, n: int, size: tuple[int, int], seed: int, grey: bool, shard_size: int, unityeyes: bool,
          preset: DomainPreset, geometry: GeometryConfig) -> dict[str, Any]:
    return {"format": "maskpurify-eyes", "version": FORMAT_VERSION, "domain": domain, "n": n,
            "size": [size[0], size[1]], "seed": seed, "grey": grey, "shard_size": shard_size, "chunk": CHUNK,
            "unityeyes": unityeyes, "num_shards": -(-n // shard_size),
            "preset": to_dict(preset), "geometry": to_dict(geometry)}


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    strip = ("command", "complete")
    return {k: v for k, v in a.items() if k not in strip} == {k: v for k, v in b.items() if k not in strip}


def write_dataset(out_dir: str | Path, domain: str | DomainPreset, n: int, size: tuple[int, int] | str = (36, 60),
                  seed: int = 0, grey: bool = False, shard_size: int = 4096, unityeyes: bool = False,
                  overwrite: bool = False, geometry: GeometryConfig | None = None, progress: bool = True,
                  command: str | None = None, workers: int | None = None) -> Path:
    """Render ``n`` eyes of ``domain`` into ``out_dir`` (see the module docstring); returns the directory.

    An existing dataset with the same settings is resumed (complete shards are skipped); one with other
    settings, or a non-empty directory that is no dataset, is refused unless ``overwrite``. ``workers``: render
    processes (None: one per usable core when ``n`` is at least :data:`PARALLEL_MIN_SAMPLES`; 1: in this process);
    the files are the same for any number.
    """
    check_field("--n", "n", n)
    check_field("--seed", "seed", seed)
    check_field("--shard-size", "shard_size", shard_size)
    check_field("--workers", "workers", workers)
    size = parse_size(size)
    preset = get_preset(domain)
    geometry = geometry or default_geometry(preset.name)
    geometry.validate()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory")
    meta = _meta(preset.name, n, size, seed, grey, shard_size, unityeyes, preset, geometry)
    meta_path = out / "meta.json"
    resume = False
    if meta_path.is_file():
        try:
            old = read_json(meta_path)
        except UserError:  # unreadable or hostile: not this dataset (refused unless --overwrite)
            old = {}
        if not isinstance(old, dict):
            old = {}
        resume = _same(old, meta)
        if not resume:
            if not overwrite:
                raise UserError(f"{out}: holds a different dataset; pass --overwrite to replace it")
            _remove_dataset(out)
    elif out.is_dir() and any(not is_temp_name(p.name) for p in out.iterdir()) and not overwrite:
        raise UserError(f"{out}: directory is not empty; pass --overwrite to write into it")
    out.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(out)  # what a killed run left (this call is the folder's only writer)
    clean_stale_temps(out / "unityeyes")
    atomic_write_json(meta_path, {**meta, "complete": False, "command": command or command_line()})
    todo = []  # (shard index, its chunk-aligned sample ranges) of the shards still to write
    for index in range(meta["num_shards"]):
        start, stop = index * shard_size, min(n, (index + 1) * shard_size)
        if resume and (out / shard_name(index)).is_file() and (
                not unityeyes or (out / "unityeyes" / f"{stop}.json").is_file()):
            continue
        bounds = list(range(start, stop, CHUNK)) if start % CHUNK == 0 else \
            [start] + list(range(start - start % CHUNK + CHUNK, stop, CHUNK))
        todo.append((index, list(zip(bounds, bounds[1:] + [stop]))))
    remaining = sum(hi - lo for _, ranges in todo for lo, hi in ranges)
    if workers is None:
        workers = usable_cores() if remaining >= PARALLEL_MIN_SAMPLES else 1
    workers = max(1, min(workers, sum(len(ranges) for _, ranges in todo)))
    bar = tqdm(total=n, initial=n - remaining, unit="img", desc=f"render {preset.name}",
               disable=not progress or n < 2 * CHUNK, leave=False)
    job = (preset, size, seed, geometry, grey)
    # The writer thread compresses shard k while the chunks of the next shards render; waiting for it before
    # handing over the next keeps one shard in its queue. Leaving the block (an error included) waits for the shard
    # being written, which lands whole (atomic rename) or not at all; chunks not yet rendered are cancelled.
    pool = _render_pool(workers)
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="shard-writer") as writer:
            pending: Future[None] | None = None
            for index, parts in _rendered_shards(pool, job, todo):
                for lo, batch in parts:
                    if unityeyes:
                        _write_unityeyes(out / "unityeyes", batch, lo, size[0])
                    bar.update(len(batch))
                arrays = {k: np.concatenate([getattr(b, k) for _, b in parts]) for k in SHARD_KEYS}
                del parts
                if pending is not None:
                    pending.result()  # raises the writer's error here, in the caller's thread
                pending = writer.submit(save_npz_deterministic, out / shard_name(index), arrays)
            if pending is not None:
                pending.result()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    bar.close()
    atomic_write_json(meta_path, {**meta, "complete": True, "command": command or command_line()})
    return out


class _InProcess(Executor):
    """An executor that runs each call at once, in this process (``workers=1``: no process to start)."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to the caller by result(), as a pool would
            future.set_exception(exc)
        return future


def _render_pool(workers: int) -> Executor:
    if workers == 1:
        return _InProcess()
    # spawn, not fork: the caller may hold OpenMP or OpenCV thread pools that a forked child would inherit broken.
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_render_worker_setup)


def _render_worker_setup() -> None:
    """Worker set-up: one thread each, since there is a worker per core; Ctrl-C left to the parent; and the worker
    ends with its parent (a parent killed with SIGKILL would otherwise leave it waiting for work forever)."""
    import signal
    import threading

    import cv2
    from multiprocessing.connection import wait

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops the workers
    cv2.setNumThreads(1)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=lambda: (wait([parent.sentinel]), os._exit(1)), daemon=True).start()


def _render_chunk(job: tuple[DomainPreset, tuple[int, int], int, GeometryConfig, bool], lo: int,
                  hi: int) -> RenderedEyes:
    preset, size, seed, geometry, grey = job
    return render_samples(preset, hi - lo, size, seed, start=lo, geometry=geometry, grey=grey)


def _rendered_shards(pool: Executor, job: Any, todo: list[tuple[int, list[tuple[int, int]]]]
                     ) -> Iterator[tuple[int, list[tuple[int, RenderedEyes]]]]:
    """(shard index, its rendered chunks in order with their first samples) for each shard of ``todo``, with the
    chunks of the next shard already rendering while this one is handed over (at most two shards' chunks in
    flight)."""
    queued: deque[tuple[int, list[tuple[int, Future[RenderedEyes]]]]] = deque()
    shards = iter(todo)

    def queue_next() -> None:
        shard = next(shards, None)
        if shard is not None:
            index, ranges = shard
            queued.append((index, [(lo, pool.submit(_render_chunk, job, lo, hi)) for lo, hi in ranges]))

    queue_next()
    queue_next()
    while queued:
        index, futures = queued.popleft()
        parts = [(lo, future.result()) for lo, future in futures]
        queue_next()
        yield index, parts


def _write_unityeyes(folder: Path, batch: RenderedEyes, start: int, height: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(len(batch)):
        name = str(start + i + 1)
        image = batch.images[i]
        atomic_write_bytes(folder / f"{name}.jpg", encode_image(image[..., 0] if image.shape[-1] == 1 else image,
                                                                ".jpg", quality=95))
        atomic_write_json(folder / f"{name}.json", unityeyes_record(batch, i, height))


def _remove_dataset(out: Path) -> None:
    for path in out.glob("shard-*.npz"):
        path.unlink()
    folder = out / "unityeyes"
    if folder.is_dir():
        for path in folder.iterdir():
            if path.suffix in (".jpg", ".json"):
                path.unlink()
    (out / "meta.json").unlink(missing_ok=True)


def read_meta(path: str | Path) -> dict[str, Any]:
    """The meta.json of a dataset; UserError when missing, unreadable or incomplete."""
    path = Path(path)
    meta_path = path / "meta.json"
    if not meta_path.is_file():
        raise UserError(f"{path}: not an eye dataset (no meta.json)")
    meta = read_json(meta_path)
    if not isinstance(meta, dict) or meta.get("format") != "maskpurify-eyes":
        raise UserError(f"{meta_path}: not a maskpurify eye dataset")
    if not meta.get("complete", False):
        raise UserError(f"{path}: dataset is incomplete; run the same render command again to finish it")
    for key, high in (("n", MAX_SAMPLES), ("num_shards", MAX_SAMPLES), ("shard_size", MAX_SAMPLES)):
        value = meta.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
            raise UserError(f"{meta_path}: '{key}' must be an integer in 1..{high:,}, got {value!r}")
    if meta["num_shards"] != -(-meta["n"] // meta["shard_size"]):
        raise UserError(f"{meta_path}: num_shards {meta['num_shards']} does not fit n {meta['n']} and shard_size "
                        f"{meta['shard_size']}")
    return meta


#: Elements per sample each shard array may declare, beyond the image's pixels (``None``: H*W*3 for images,
#: H*W for masks). Generous for landmarks, so that another landmark count is refused by the validator with its own
#: message, not here.
_PER_SAMPLE = {"images": None, "masks": None, "gaze": 16, "head_pose": 16, "pupil_center": 16,
               "iris_landmarks": 4096, "eyelid_landmarks": 4096}
#: Largest shard (all its arrays decompressed) ever read: 2 GiB.
MAX_SHARD_BYTES = 2 * 1024 ** 3


def _npy_header(archive: zipfile.ZipFile, member: str) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from the header of ``member`` (an ``.npy`` inside the ``.npz``), without decompressing more
    than the header."""
    with archive.open(member) as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise ValueError(f"{member}: unsupported .npy version {version}")
    return tuple(int(v) for v in shape), dtype


def check_shard_headers(file: Path, meta: Mapping[str, Any], index: int) -> None:
    """Refuse shard ``file`` (number ``index``) when the arrays its ``.npy`` headers declare exceed what
    ``meta`` allows: more samples than the shard holds (``n`` and ``shard_size``), more elements per sample than
    the image size gives, or more than :data:`MAX_SHARD_BYTES` in all. Only the headers are read (nothing is
    decompressed beyond them), so a small file claiming gigabytes is one line, at no cost."""
    size = meta.get("size")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                and 0 < v <= 1 << 16 for v in size)):
        raise UserError(f"{file.parent / 'meta.json'}: 'size' must be [height, width] in pixels, got {size!r}")
    height, width = size
    shard_size, n = int(meta["shard_size"]), int(meta["n"])
    expected = max(0, min(shard_size, n - index * shard_size))
    total = 0
    with zipfile.ZipFile(file) as archive:
        names = set(archive.namelist())
        for key in SHARD_KEYS:
            if f"{key}.npy" not in names:
                continue  # the loader names the missing arrays
            shape, dtype = _npy_header(archive, f"{key}.npy")
            if dtype.hasobject:
                raise UserError(f"{file}: '{key}' holds Python objects; a shard holds numbers only")
            count = shape[0] if shape else 1
            per_sample = math.prod(shape[1:]) if shape else 1
            limit = _PER_SAMPLE[key] or height * width * (3 if key == "images" else 1)
            nbytes = math.prod(shape) * dtype.itemsize
            if count > expected:
                raise UserError(f"{file}: '{key}' claims {count:,} samples; meta.json allows {expected} in this "
                                f"shard (n {n}, shard_size {shard_size})")
            if per_sample > limit or dtype.itemsize > 8:
                raise UserError(f"{file}: '{key}' claims shape {shape} of {dtype} ({nbytes / 2 ** 20:,.0f} MiB); "
                                f"meta.json's {height}x{width} images allow at most {limit} values of 8 bytes per "
                                "sample")
            total += nbytes
    if total > MAX_SHARD_BYTES:
        raise UserError(f"{file}: shard would take {total / 2 ** 30:.1f} GiB decompressed; the limit is "
                        f"{MAX_SHARD_BYTES // 2 ** 30} GiB (render with a smaller --shard-size)")


def load_shard(path: Path, index: int, meta: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Shard ``index`` of the dataset at ``path`` as arrays, unchecked (see :func:`load_shard_checked`) but for
    its size: the ``.npy`` headers are checked against ``meta`` (read from ``path`` when None) before anything is
    decompressed (:func:`check_shard_headers`), so memory stays bounded whatever the file claims."""
    file = path / shard_name(index)
    try:
        check_shard_headers(file, read_meta(path) if meta is None else meta, index)
        with np.load(file, allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise ValueError("not an .npz archive")
            missing = [key for key in SHARD_KEYS if key not in data.files]
            if missing:
                raise UserError(f"{file}: shard lacks the arrays {missing}")
            return {key: data[key] for key in SHARD_KEYS}
    except UserError:
        raise
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise UserError(f"{file}: missing or corrupt shard ({str(exc).splitlines()[0] if str(exc) else exc!r})") \
            from None


#: The landmark arrays of a shard, carried by its :class:`~maskpurify.batch.EyeBatch` as ``landmarks``.
LANDMARK_KEYS = ("iris_landmarks", "eyelid_landmarks")


def shard_batch(arrays: Mapping[str, np.ndarray], source: str) -> EyeBatch:
    """The arrays of a shard (or of every shard, :func:`load_arrays`) as the validated batch; ``source`` names them
    in the one-line UserError. Rendered masks use the eye labels."""
    return EyeBatch(arrays["images"], arrays["masks"], EYE_LABELS, gaze=arrays["gaze"], head_pose=arrays["head_pose"],
                    pupil_center=arrays["pupil_center"], landmarks={key: arrays[key] for key in LANDMARK_KEYS},
                    source=source)


def load_shard_checked(path: Path, index: int, meta: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Shard ``index`` in its on-disk form, after :func:`shard_batch` has checked it."""
    shard = load_shard(path, index, meta)
    shard_batch(shard, str(path / shard_name(index)))
    return shard


def load_arrays_checked(path: str | Path, what: str = "--data") -> EyeBatch:
    """A rendered dataset folder as one validated batch: every command that reads a dataset goes through here."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{what} {path}: no such dataset folder")
    if not path.is_dir():
        raise UserError(f"{what} {path}: not a dataset folder")
    return shard_batch(load_arrays(path), f"{what} {path}")


def render_once(folder: str | Path, domain: str, n: int, size: tuple[int, int], seed: int,
                progress: bool = True) -> Path:
    """Render a dataset into ``folder`` unless a complete one is already there; an interrupted render is resumed
    (:func:`write_dataset` skips finished shards)."""
    folder = Path(folder)
    try:
        read_meta(folder)
    except UserError:
        write_dataset(folder, domain=domain, n=n, size=size, seed=seed, progress=progress)
    return folder


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Every shard of a (small) dataset concatenated in memory: {key: array} for the keys in SHARD_KEYS.

    Each shard is checked by :func:`shard_batch` (types, shapes, counts) and all shards must agree, so a bad
    shard is a one-line UserError naming it rather than a silent upcast."""
    path = Path(path)
    meta = read_meta(path)
    shards = [load_shard_checked(path, i, meta) for i in range(meta["num_shards"])]
    for index, shard in enumerate(shards):
        if index and any(shard[key].dtype != shards[0][key].dtype or shard[key].shape[1:] != shards[0][key].shape[1:]
                         for key in SHARD_KEYS):
            raise UserError(f"{path / shard_name(index)}: arrays differ in type or shape from {shard_name(0)}")
    out = {}
    for key in SHARD_KEYS:
        try:
            out[key] = np.concatenate([s[key] for s in shards])
        except ValueError as exc:  # shards that disagree in shape or rank
            raise UserError(f"{path}: shards disagree in their '{key}' arrays ({exc})") from None
    return out


class EyeDataset:
    """Lazy torch view of a dataset directory (one shard cached at a time), for a ``torch.utils.data.DataLoader``.

    Items: image float32 (C,H,W) in [0,1], mask int64 (H,W), gaze float32 (2,) pitch/yaw radians,
    head_pose float32 (2,), pupil_center float32 (2,) x/y pixels.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.meta = read_meta(self.path)
        self.n = int(self.meta["n"])
        self.shard_size = int(self.meta["shard_size"])
        self._cached: tuple[int, dict[str, np.ndarray]] | None = None

    def __len__(self) -> int:
        return self.n

    def _shard(self, index: int) -> dict[str, np.ndarray]:
        if self._cached is None or self._cached[0] != index:
            self._cached = (index, load_shard(self.path, index, self.meta))
        return self._cached[1]

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        import torch  # here, so that rendering a dataset does not import torch

        if idx < 0:
            idx += self.n
        if not 0 <= idx < self.n:
            raise IndexError(f"index {idx} out of range for {self.n} samples")
        shard = self._shard(idx // self.shard_size)
        j = idx % self.shard_size
        image = torch.from_numpy(np.ascontiguousarray(shard["images"][j].transpose(2, 0, 1))).float().div_(255.0)
        return {
            "image": image,
            "mask": torch.from_numpy(shard["masks"][j].astype(np.int64)),
            "gaze": torch.from_numpy(shard["gaze"][j].astype(np.float32)),
            "head_pose": torch.from_numpy(shard["head_pose"][j].astype(np.float32)),
            "pupil_center": torch.from_numpy(shard["pupil_center"][j].astype(np.float32)),
        }
