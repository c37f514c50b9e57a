"""The RGB-mask contract: one place where masks are loaded, validated, resized and split into regions.

A mask is a single-channel uint8 label map with the image's height and width. Labels come from a declared
:class:`LabelSet`; the *attention* region is a subset of those labels (for eyes: sclera + iris + pupil), the
rest is *background*. Masks are checked once, at the boundary, and trusted inside the package.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from maskpurify.errors import UserError
from maskpurify.fileio import read_image

SKIN, SCLERA, IRIS, PUPIL = 0, 1, 2, 3


@dataclass(frozen=True)
class LabelSet:
    """Names of the labels 0..n-1 and which of them form the attention region."""

    names: tuple[str, ...] = ("skin", "sclera", "iris", "pupil")
    attention: tuple[int, ...] = (SCLERA, IRIS, PUPIL)
    #: Optional colour palette (label -> RGB) for colour-coded mask files.
    palette: tuple[tuple[int, int, int], ...] | None = None

    def __post_init__(self) -> None:
        if not self.names:
            raise UserError("label set: at least one label name is required")
        bad = [a for a in self.attention if not 0 <= a < len(self.names)]
        if bad:
            raise UserError(f"label set: attention labels {bad} are not in 0..{len(self.names) - 1}")
        if self.palette is not None and len(self.palette) != len(self.names):
            raise UserError(f"label set: palette has {len(self.palette)} colours for {len(self.names)} labels")

    @property
    def num_labels(self) -> int:
        return len(self.names)

    def to_json(self) -> dict[str, Any]:
        """The form a checkpoint sidecar stores, so a loader knows the labels its network was trained on."""
        out: dict[str, Any] = {"names": list(self.names), "attention": list(self.attention)}
        if self.palette is not None:
            out["palette"] = [list(c) for c in self.palette]
        return out

    @classmethod
    def from_json(cls, value: Any, source: str) -> LabelSet:
        """Inverse of :meth:`to_json`; also reads a bare list of names (the shipped segmenter's sidecar), whose
        attention region is every label but the first. The eye and binary sets come back as :data:`EYE_LABELS`
        and :data:`BINARY_LABELS`, which code tells apart by identity."""
        if isinstance(value, list):
            value = {"names": value, "attention": list(range(1, len(value)))}
        try:
            labels = cls(names=tuple(str(n) for n in value["names"]),
                         attention=tuple(int(a) for a in value["attention"]),
                         palette=None if value.get("palette") is None
                         else tuple((int(r), int(g), int(b)) for r, g, b in value["palette"]))
        except (TypeError, KeyError, ValueError, AttributeError):
            raise UserError(f"{source}: 'labels' must be {{names: [...], attention: [...]}}, got {value!r}") from None
        return next((known for known in (EYE_LABELS, BINARY_LABELS) if labels == known), labels)


EYE_LABELS = LabelSet()
#: Default palette for writing colour previews of eye masks (skin, sclera, iris, pupil).
EYE_PALETTE: tuple[tuple[int, int, int], ...] = ((0, 0, 0), (230, 230, 230), (40, 160, 220), (220, 40, 60))
#: Grey level of each eye label in a label image: a flat cartoon eye (mid skin, bright sclera, mid iris, dark pupil).
LABEL_GREY: tuple[float, ...] = (0.6, 0.9, 0.35, 0.05)
#: A binary mask: 0 background, 1 attention.
BINARY_LABELS = LabelSet(names=("background", "attention"), attention=(1,))

#: The working size (height, width) of checkpoint sidecars written before it was recorded: the shipped
#: weights' eye crops.
LEGACY_WORKING_SIZE = (36, 60)


@dataclass(frozen=True)
class DataSpec:
    """The data a network works on: the image size it was trained at (height, width) and the label set of its
    masks. Stored in every network's sidecar, so loaders and the engine read it instead of assuming 36x60 eyes."""

    size: tuple[int, int] = LEGACY_WORKING_SIZE
    labels: LabelSet = EYE_LABELS

    def to_meta(self) -> dict[str, Any]:
        return {"working_size": [int(self.size[0]), int(self.size[1])], "labels": self.labels.to_json()}

    @classmethod
    def from_meta(cls, meta: dict[str, Any], source: str | Path, default: DataSpec) -> DataSpec:
        """The spec a sidecar records; a field it lacks (older sidecars) is ``default``'s: the network's own,
        from its config (36x60 and the label set its label count implies)."""
        size = meta.get("working_size", default.size)
        if not (isinstance(size, (list, tuple)) and len(size) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
            raise UserError(f"{source}: sidecar 'working_size' must be [height, width] in pixels, got {size!r}")
        labels = LabelSet.from_json(meta["labels"], str(source)) if "labels" in meta else default.labels
        return cls((int(size[0]), int(size[1])), labels)


def label_set_for(num_labels: int, attention: Sequence[int]) -> LabelSet:
    """The label set a network with this config was trained on (eye labels, binary, or generic), so a checkpoint's
    config names its label contract."""
    attention = tuple(int(a) for a in attention)
    if num_labels == EYE_LABELS.num_labels and attention == EYE_LABELS.attention:
        return EYE_LABELS
    if num_labels == BINARY_LABELS.num_labels and attention == BINARY_LABELS.attention:
        return BINARY_LABELS
    return LabelSet(names=tuple(f"label{i}" for i in range(num_labels)), attention=attention)


#: Which eye a crop shows, from the subject's point of view.
EYE_SIDES = ("left", "right")
#: The side the renderer draws and every network is trained on: the subject's left eye as a camera sees it (no
#: selfie mirroring), i.e. the inner corner (caruncle) on the image's left. A crop of the other eye is mirrored
#: horizontally before the networks and mirrored back after (gaze yaw negated).
CANONICAL_EYE = "left"


def validate_mask(mask: np.ndarray, image_shape: Sequence[int] | None = None, labels: LabelSet = EYE_LABELS,
                  source: str = "mask", require_attention: bool = True) -> np.ndarray:
    """Check a label map against the contract and return it as a contiguous uint8 array.

    Raises UserError naming ``source`` for: more than one channel, non-integer dtype, size mismatch,
    labels outside the declared set (listed), or an empty attention region.
    """
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[:, :, 0]
    if mask.ndim != 2:
        raise UserError(f"{source}: mask must be a single-channel label map, got shape {tuple(mask.shape)}"
                        + (" (a 3-channel mask needs a palette)" if mask.ndim == 3 else ""))
    if not (np.issubdtype(mask.dtype, np.integer) or mask.dtype == bool):
        raise UserError(f"{source}: mask must hold integer labels, got dtype {mask.dtype}")
    if image_shape is not None and tuple(mask.shape) != tuple(image_shape[:2]):
        raise UserError(f"{source}: mask size {mask.shape[1]}x{mask.shape[0]} does not match image size "
                        f"{image_shape[1]}x{image_shape[0]}")
    present = np.unique(mask)
    unknown = [int(v) for v in present if not 0 <= v < labels.num_labels]
    if unknown:
        raise UserError(f"{source}: unknown mask labels {unknown} (allowed: 0..{labels.num_labels - 1} = "
                        f"{', '.join(labels.names)})")
    if require_attention and not np.isin(present, labels.attention).any():
        names = ", ".join(labels.names[a] for a in labels.attention)
        raise UserError(f"{source}: empty attention region (no pixel labelled {names})")
    return np.ascontiguousarray(mask, dtype=np.uint8)


def mirror_flags(eye: str | Sequence[str], n: int, option: str = "--eye") -> np.ndarray:
    """(n,) bool, True for crops of the non-canonical eye: one side for all crops or one per crop.

    A name other than ``left``/``right`` is a UserError naming ``option``."""
    sides = [eye] * n if isinstance(eye, str) else list(eye)
    if len(sides) != n:
        raise UserError(f"{option}: got {len(sides)} eye sides for {n} images")
    bad = sorted({str(s) for s in sides if s not in EYE_SIDES})
    if bad:
        raise UserError(f"{option} {bad[0]}: choose left or right (the canonical side is {CANONICAL_EYE}: the "
                        "subject's left eye, inner corner on the image's left)")
    return np.array([s != CANONICAL_EYE for s in sides], dtype=bool)


def mirror_eyes(array: np.ndarray, flags: np.ndarray | bool = True, channels: bool = False) -> np.ndarray:
    """Mirror a batch of crops (N,H,W) or, with ``channels``, (N,H,W,C) left-right where ``flags`` is True.

    The one place the canonical-side flip happens (images, masks, outputs): the renderer draws only one eye, so
    the other eye must reach the networks mirrored and leave them mirrored back. Mirroring twice is the
    identity. Returns a new contiguous array; the input is never modified."""
    array = np.asarray(array)
    axis = array.ndim - (2 if channels else 1)
    if axis != 2:
        raise ValueError(f"mirror_eyes expects (N,H,W{',C' if channels else ''}), got shape {array.shape}")
    flags = np.broadcast_to(np.asarray(flags, dtype=bool), (len(array),))
    out = np.array(array, copy=True)
    if flags.any():
        out[flags] = array[flags][:, :, ::-1]
    return out


def mirror_gaze(pitchyaw: np.ndarray, flags: np.ndarray | bool = True) -> np.ndarray:
    """(N, 2) pitch/yaw with yaw negated where ``flags``: what a left-right mirror does to a gaze (or head pose)
    direction (x flips sign in camera coordinates; pitch is unchanged)."""
    out = np.array(pitchyaw, dtype=np.float64, copy=True).reshape(-1, 2)
    flags = np.broadcast_to(np.asarray(flags, dtype=bool), (len(out),))
    out[flags, 1] = -out[flags, 1]
    return out.reshape(np.shape(pitchyaw))


#: Thresholds of :func:`eye_problem`, as fractions so that they hold at any image size. Calibrated on 1000 wild
#: and 1000 synthetic renders (seeds 1234567, 7654321): none of their exact masks trips any of them, nor any
#: FaceMesh reference mask of the real-eye check set; see eye_problem for the rates on the segmenter's masks.
EYE_CHECK = {
    "min_eye_fraction": 0.01,  # eye region (sclera+iris+pupil) / image; renders: >= 0.05
    "min_eye_thickness": 0.12,  # eye region area / its width / image height (a closed lid is a line): thinner
    # than any render (exact masks >= 0.126, 1st percentile 0.152), so outside what the networks were trained on;
    # the segmenter's masks of wild renders: 0.05% below; real crops (check set, tune half): open >= 0.127,
    # closed <= 0.113
    "min_iris_fraction_of_eye": 0.08,  # iris+pupil / eye region; renders: >= 0.21
    "min_iris_fraction": 0.004,  # iris+pupil / image; renders: >= 0.019
    "max_eye_pieces": 3,  # pieces of the eye region holding >= 2% of it; renders: 1
    "max_eye_bits": 4,  # separate bits of the eye region of any size (noise leaves specks); renders: 1
    "min_largest_eye_piece": 0.7,  # largest piece / eye region; renders: 1
    "min_largest_iris_piece": 0.5,  # largest iris+pupil piece / iris+pupil; renders: 1
    "max_iris_width": 0.5,  # width of the largest iris piece / image width; renders: <= 0.27
    "max_iris_aspect": 1.6,  # its height / width (+2 px); renders: <= 1.27
    "max_pupil_on_sclera": 0.5,  # share of the pupil's border touching sclera; renders: 0
    "min_sclera_fraction_of_eye": 0.05,  # sclera / eye region; renders: >= 0.38
}


def eye_problem(mask: np.ndarray) -> str | None:
    """Why an eye label map is not a plausible eye (a short reason), or None when it is.

    An automatic mask of a closed eye, of a blank or noisy image or of something that is no eye comes back as
    fragments; purifying with it would paint an eye that is not there, so callers pass such images through and
    say so. The checks are geometric (see :data:`EYE_CHECK`): an eye region of reasonable size in at most a few
    pieces, an iris of reasonable size in one main piece and shape, a pupil inside the iris, some sclera.
    Measured (``maskpurify.evaluation.real_eyes.eye_check_rates``) with the segmenter shipped before the issue-12
    retraining: 0 of 1000 exact masks of wild renders and 0 of 1000 synthetic ones are flagged, on the
    calibration seeds and on fresh ones (555, 556); of the segmenter's own masks, 0% on synthetic and 3.6-3.8% on
    wild renders, and those are bad masks (mean IoU 0.20-0.23 over sclera, iris and pupil, against 0.61-0.62 on
    the rest); none of the 12 FaceMesh masks of the real-eye check set; all 43 blank, flat and noise images.
    """
    return eye_problems(np.asarray(mask)[None])[0]


def eye_problems(masks: np.ndarray) -> list[str | None]:
    """:func:`eye_problem` for a batch (N,H,W) of label maps. Pixel counts and connected pieces are found for the
    whole batch at once, so the check costs little next to the networks."""
    c = EYE_CHECK
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"eye_problems expects (N,H,W) label maps, got shape {masks.shape}")
    n, h, w = masks.shape
    if n == 0:
        return []
    eye = masks > 0
    disc = masks >= IRIS  # iris or pupil (labels above PUPIL are refused by validate_mask)
    pupil = masks == PUPIL
    sclera = eye & ~disc
    n_eye, n_disc = eye.sum((1, 2)), disc.sum((1, 2))
    n_pupil, n_sclera = pupil.sum((1, 2)), sclera.sum((1, 2))
    eye_columns = eye.any(axis=1).sum(1)
    # The 1-pixel ring around the pupil (8-neighbourhood) and how much of it is sclera.
    padded = np.pad(pupil, ((0, 0), (1, 1), (1, 1)))
    grown = np.zeros_like(pupil)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            grown |= padded[:, dy:dy + h, dx:dx + w]
    ring = grown & ~pupil
    n_ring, ring_on_sclera = ring.sum((1, 2)), (ring & sclera).sum((1, 2))
    eye_pieces, _ = _pieces(eye)
    disc_pieces, disc_boxes = _pieces(disc)
    out: list[str | None] = []
    for i in range(n):
        out.append(_problem(c, h, w, int(n_eye[i]), int(n_disc[i]), int(n_pupil[i]), int(n_sclera[i]),
                            int(eye_columns[i]), int(n_ring[i]), int(ring_on_sclera[i]), eye_pieces[i],
                            disc_pieces[i], (int(disc_boxes[i, 0]), int(disc_boxes[i, 1]))))
    return out


def _pieces(region: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """8-connected pieces of each image of a boolean (N,H,W) batch: the piece areas per image, and the (height,
    width) of each image's largest piece ((0, 0) where there is none)."""
    from scipy import ndimage

    n, h, w = region.shape
    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[1] = True  # 8-connectivity within an image, none across images
    labels, count = ndimage.label(region, structure=in_plane)
    areas = np.bincount(labels.ravel(), minlength=count + 1)
    # Labels are numbered in scan order, so each image's pieces carry a contiguous run of labels.
    last = np.maximum.accumulate(labels.reshape(n, -1).max(1))
    first = np.concatenate([[0], last[:-1]]) + 1
    per_image = [areas[a:b + 1] for a, b in zip(first, last)]
    largest = np.array([a + int(np.argmax(p)) if len(p) else -1 for a, p in zip(first, per_image)])
    chosen = labels == largest[:, None, None]
    rows, cols = chosen.any(2), chosen.any(1)
    height = np.where(rows.any(1), h - np.argmax(rows[:, ::-1], 1) - np.argmax(rows, 1), 0)
    width = np.where(cols.any(1), w - np.argmax(cols[:, ::-1], 1) - np.argmax(cols, 1), 0)
    return per_image, np.stack([height, width], 1)


def _problem(c: Mapping[str, float], h: int, w: int, n_eye: int, n_disc: int, n_pupil: int, n_sclera: int,
             eye_columns: int, n_ring: int, ring_on_sclera: int, eye: np.ndarray, disc: np.ndarray,
             disc_box: tuple[int, int]) -> str | None:
    """The checks of :func:`eye_problem` in order, on one image's counts, piece areas and largest iris piece."""
    if n_eye == 0:
        return "no eye in the mask (no sclera, iris or pupil pixel)"
    if n_eye < c["min_eye_fraction"] * h * w:
        return f"eye region too small ({100 * n_eye / (h * w):.1f}% of the image)"
    thickness = n_eye / max(1, eye_columns)
    if thickness < c["min_eye_thickness"] * h:
        return f"eye closed (the eye region is a slit {thickness:.1f} px high)"
    if n_disc == 0:
        return "no iris"
    if n_disc < c["min_iris_fraction_of_eye"] * n_eye or n_disc < c["min_iris_fraction"] * h * w:
        return f"iris too small ({100 * n_disc / n_eye:.0f}% of the eye region)"
    sizes = eye
    pieces = int((sizes >= max(2, 0.02 * n_eye)).sum())
    if pieces > c["max_eye_pieces"] or sizes.max() < c["min_largest_eye_piece"] * n_eye:
        return f"eye region in {max(pieces, 2)} pieces (largest {100 * sizes.max() / n_eye:.0f}%)"
    if len(sizes) > c["max_eye_bits"]:
        return f"eye region speckled ({len(sizes)} separate bits)"
    area, (iris_h, iris_w) = int(disc.max()), disc_box
    if area < c["min_largest_iris_piece"] * n_disc:
        return f"iris in pieces (largest {100 * area / n_disc:.0f}%)"
    if iris_w > c["max_iris_width"] * w:
        return f"iris wider than {c['max_iris_width']:.0%} of the image"
    if iris_h > c["max_iris_aspect"] * iris_w + 2:
        return f"iris much taller than wide ({iris_h}x{iris_w} px)"
    if n_pupil >= 2 and ring_on_sclera > c["max_pupil_on_sclera"] * n_ring:
        return "pupil outside the iris"
    if n_sclera < c["min_sclera_fraction_of_eye"] * n_eye:
        return "no sclera around the iris"
    return None


def label_image(mask: np.ndarray) -> np.ndarray:
    """(..., H, W) eye label map -> (..., H, W, 3) uint8 cartoon eye (grey levels :data:`LABEL_GREY`).

    A gaze estimator trained on these reads gaze from the region geometry alone (see ``GazeNetConfig.inputs``)."""
    lut = np.round(np.array(LABEL_GREY) * 255).astype(np.uint8)
    return np.repeat(lut[mask][..., None], 3, axis=-1)


def labels_from_colours(rgb: np.ndarray, palette: Sequence[Sequence[int]], source: str = "mask") -> np.ndarray:
    """Map a colour-coded HxWx3 mask to labels through an explicit palette; unknown colours are an error."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise UserError(f"{source}: a colour-coded mask must be HxWx3, got shape {tuple(rgb.shape)}")
    packed = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    keys = np.array([(r << 16) | (g << 8) | b for r, g, b in palette], dtype=np.int32)
    order = np.argsort(keys)
    pos = np.searchsorted(keys[order], packed).clip(0, len(keys) - 1)
    found = keys[order][pos] == packed
    if not found.all():
        ys, xs = np.nonzero(~found)
        colours = sorted({tuple(int(c) for c in rgb[y, x, :3]) for y, x in zip(ys[:1000], xs[:1000])})[:5]
        raise UserError(f"{source}: mask colours {colours} are not in the palette")
    return order[pos].astype(np.uint8)


def load_mask(path: str | Path, image_shape: Sequence[int] | None = None, labels: LabelSet = EYE_LABELS,
              binary: bool = False) -> np.ndarray:
    """Read and validate a mask file.

    - single-channel PNG: integer labels (``binary=True``: any non-zero value is attention, label 1);
    - 3-channel PNG: decoded through ``labels.palette``; without a palette it is refused unless all three
      channels are equal (a grey label map saved as RGB);
    - a JPEG (by its content, whatever its name) is refused: lossy compression changes labels.
    """
    path = Path(path)
    array = read_image(path, mode=None, labels=True)
    if array.ndim == 3:
        if labels.palette is not None:
            array = labels_from_colours(array, labels.palette, source=str(path))
        elif (array[..., 0] == array[..., 1]).all() and (array[..., 0] == array[..., 2]).all():
            array = array[..., 0]
        else:
            raise UserError(f"{path}: 3-channel colour mask; save a single-channel label map or declare a palette")
    if binary:
        array = (array > 0).astype(np.uint8)
        labels = BINARY_LABELS
    return validate_mask(array, image_shape, labels, source=str(path))


def attention_region(mask: np.ndarray, labels: LabelSet = EYE_LABELS) -> np.ndarray:
    """Boolean map of the attention region (True) vs background (False)."""
    return np.isin(mask, labels.attention)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a label map to (height, width) by nearest neighbour: labels are never blended. Pixel centres are
    mapped as for images (INTER_NEAREST_EXACT); OpenCV's INTER_NEAREST samples each output pixel's top-left
    source instead, moving the labels up to half a pixel right and down of the image they belong to."""
    height, width = size
    return cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST_EXACT)


def erode_region(region: np.ndarray, pixels: int) -> np.ndarray:
    """Shrink a boolean region by ``pixels`` so style statistics do not bleed across its boundary."""
    if pixels <= 0:
        return region
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.erode(region.astype(np.uint8), kernel).astype(bool)


def colourise(mask: np.ndarray, palette: Sequence[Sequence[int]] = EYE_PALETTE) -> np.ndarray:
    """An RGB picture of a label map, for previews."""
    lut = np.zeros((256, 3), np.uint8)
    lut[: len(palette)] = np.asarray(palette, np.uint8)
    return lut[mask]


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.45,
            palette: Sequence[Sequence[int]] = EYE_PALETTE) -> np.ndarray:
    """Blend a colourised mask over an RGB (or grey) image; background label 0 stays untouched. Computed in bands
    of rows, so memory stays a small multiple of the image's whatever its size."""
    rgb = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
    out = np.empty(rgb.shape[:2] + (3,), np.uint8)
    rows = max(1, (1 << 20) // max(1, rgb.shape[1]))
    for top in range(0, rgb.shape[0], rows):
        part, labels = rgb[top:top + rows], mask[top:top + rows]
        colour = colourise(labels, palette).astype(np.float32)
        blend = np.where(labels[..., None] > 0, (1 - alpha) * part + alpha * colour, part)
        out[top:top + rows] = blend.round().astype(np.uint8)
    return out


def region_centroid(mask: np.ndarray, label_ids: Sequence[int] | int) -> tuple[float, float] | None:
    """(x, y) centroid of the pixels carrying any of ``label_ids``, or None when there are none."""
    ys, xs = np.nonzero(np.isin(mask, np.atleast_1d(label_ids)))
    if len(xs) == 0:
        return None
    return float(xs.mean()), float(ys.mean())


def label_set_from_mapping(data: Mapping[str, object]) -> LabelSet:
    """Build a LabelSet from a config mapping {names: [...], attention: [...], palette: [[r,g,b], ...]}."""
    names = tuple(str(n) for n in data.get("names", EYE_LABELS.names))  # type: ignore[union-attr]
    attention = tuple(int(a) for a in data.get("attention", EYE_LABELS.attention))  # type: ignore[union-attr]
    palette = data.get("palette")
    return LabelSet(names, attention, tuple(tuple(int(c) for c in p) for p in palette) if palette else None)  # type: ignore[union-attr]
