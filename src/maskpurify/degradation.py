"""The project's own randomised degradation model (domain randomisation) for clean synthetic eyes.

A network that must work on real eyes it has never seen (the eye segmenter, a domain-randomised gaze
estimator, the purifier's paired pre-training) is trained on synthetic renders pushed through this model: every
image gets an independent draw of imaging conditions far broader than any one camera, so that the ``wild``
preset and real photos fall *inside* what was seen. It is written apart from the renderer's ``wild`` preset
(which is the test of generalisation and is never trained on) and applies in image space to any uint8 eye
with its label mask, so it also serves other synthetic sources (UnityEyes).

Terms, each drawn per image (see :class:`DegradationConfig` for the ranges):

- geometry: scale, aspect, roll and offset of the crop (image and mask warped together, so the labels stay
  exact; gaze is unchanged by an in-plane similarity only approximately, so :func:`degrade` reports whether
  geometry was applied and gaze users switch it off);
- light: a directional ramp and a soft spot light with random colour, ambient level, hard or soft cast shadows;
- camera: exposure, gamma, contrast, white balance, monochrome and near-infrared looks (bright iris, dark
  pupil), vignetting;
- appearance: skin tone and lash variation, makeup-like darkening along the lid margins;
- occluders: glasses frames, specular spots and broad reflections;
- sensor and transmission: low resolution, Gaussian and motion blur, noise, JPEG.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from maskpurify.config import check_ranges
from maskpurify.errors import UserError
from maskpurify.masks import IRIS, SKIN

Range = tuple[float, float]


@dataclass(frozen=True)
class DegradationConfig:
    """Probabilities and ranges of every term; ``strength`` scales all probabilities (0 = identity)."""

    strength: float = 1.0
    # geometry
    geometry_prob: float = 0.8
    scale: Range = (0.8, 1.35)
    aspect: Range = (0.85, 1.2)
    roll_deg: Range = (-18.0, 18.0)
    offset_frac: Range = (-0.12, 0.12)
    # light
    ramp_prob: float = 0.7
    ramp_amplitude: Range = (0.1, 0.9)
    spot_prob: float = 0.4
    ambient: Range = (0.25, 1.0)
    light_colour: float = 0.35
    shadow_prob: float = 0.45
    shadow_darkness: Range = (0.25, 0.85)
    # camera
    exposure_ev: Range = (-1.6, 1.3)
    gamma: Range = (0.5, 2.0)
    contrast: Range = (0.4, 1.6)
    white_balance: float = 0.3
    mono_prob: float = 0.15
    nir_prob: float = 0.1
    vignette_prob: float = 0.25
    # appearance
    skin_prob: float = 0.5
    lash_prob: float = 0.4
    liner_prob: float = 0.25
    # occluders
    frame_prob: float = 0.12
    specular_prob: float = 0.5
    reflection_prob: float = 0.4
    # sensor and transmission
    lowres_prob: float = 0.35
    lowres_factor: Range = (1.3, 4.0)
    blur_prob: float = 0.5
    blur_sigma: Range = (0.3, 2.0)
    motion_prob: float = 0.2
    motion_length: Range = (2.0, 7.0)
    noise_prob: float = 0.7
    noise_sigma: Range = (0.005, 0.09)
    jpeg_prob: float = 0.6
    jpeg_quality: Range = (10.0, 90.0)

    def __post_init__(self) -> None:
        if not np.isfinite(self.strength) or self.strength < 0:
            raise UserError(f"degradation.strength must be a finite number >= 0, got {self.strength}")
        check_ranges(self, "degradation")
        if not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100:
            raise UserError("degradation.jpeg_quality must lie within [1, 100]")


def _u(rng: np.random.Generator, r: Range) -> float:
    return float(rng.uniform(r[0], r[1]))


def _warp(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, c: DegradationConfig
          ) -> tuple[np.ndarray, np.ndarray]:
    """A random similarity + aspect change about the image centre; border pixels are replicated."""
    h, w = mask.shape
    scale = _u(rng, c.scale)
    aspect = _u(rng, c.aspect)
    angle = np.deg2rad(_u(rng, c.roll_deg))
    sx, sy = scale * np.sqrt(aspect), scale / np.sqrt(aspect)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    a = rot @ np.diag([sx, sy])
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    shift = np.array([_u(rng, c.offset_frac) * w, _u(rng, c.offset_frac) * h])
    matrix = np.hstack([a, (centre + shift - a @ centre)[:, None]]).astype(np.float32)
    image = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mask = cv2.warpAffine(mask, matrix, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
    return image, mask


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return (xx - (w - 1) / 2) / (w / 2), (yy - (h - 1) / 2) / (h / 2)


def _soft(region: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(region.astype(np.float32), (0, 0), sigma)


def _light(x: np.ndarray, rng: np.random.Generator, c: DegradationConfig, p: float) -> np.ndarray:
    h, w = x.shape[:2]
    xx, yy = _grid(h, w)
    light = np.full((h, w), _u(rng, c.ambient), np.float32)
    if rng.random() < c.ramp_prob * p:
        theta = rng.uniform(0, 2 * np.pi)
        light = light + _u(rng, c.ramp_amplitude) * (np.cos(theta) * xx + np.sin(theta) * yy)
    if rng.random() < c.spot_prob * p:
        cx, cy, radius = rng.uniform(-1.2, 1.2), rng.uniform(-1.2, 1.2), rng.uniform(0.3, 1.2)
        light = light + rng.uniform(0.2, 0.9) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * radius ** 2))
    light = np.clip(light, 0.05, None)
    colour = 1 + rng.uniform(-1, 1, 3).astype(np.float32) * c.light_colour * p
    x = x * light[..., None] * colour
    if rng.random() < c.shadow_prob * p:
        # a half-plane or band of shadow with a soft or hard edge (a cast shadow from a brow, nose or frame)
        theta = rng.uniform(0, 2 * np.pi)
        dist = np.cos(theta) * xx + np.sin(theta) * yy - rng.uniform(-0.8, 0.8)
        if rng.random() < 0.4:
            dist = np.abs(dist) - rng.uniform(0.1, 0.5)
        edge = rng.uniform(0.01, 0.3)
        inside = 1 / (1 + np.exp(np.clip(dist / edge, -50, 50)))
        x = x * (1 - _u(rng, c.shadow_darkness) * inside)[..., None]
    return x


def _camera(x: np.ndarray, mask: np.ndarray, rng: np.random.Generator, c: DegradationConfig, p: float
            ) -> np.ndarray:
    if rng.random() < c.nir_prob * p:
        # near-infrared: irises of every colour turn light grey, the pupil stays dark, skin glows
        grey = x.mean(-1, keepdims=True)
        iris = _soft(mask == IRIS, 0.6)[..., None]
        grey = grey * (1 - iris) + iris * rng.uniform(0.35, 0.7) * (0.7 + 0.6 * grey)
        skin = _soft(mask == SKIN, 0.8)[..., None]
        grey = grey * (1 + skin * rng.uniform(0.0, 0.4))
        x = np.repeat(grey, 3, -1)
    elif rng.random() < c.mono_prob * p:
        weights = rng.dirichlet([2, 2, 2]).astype(np.float32)
        x = np.repeat((x * weights).sum(-1, keepdims=True), 3, -1)
    x = x / max(float(x.mean()), 1e-3) * 0.42  # auto-exposure metering, then the exposure error
    x = x * 2 ** _u(rng, (c.exposure_ev[0] * p, c.exposure_ev[1] * p))
    x = x * (1 + rng.uniform(-1, 1, 3).astype(np.float32) * c.white_balance * p)
    mean = x.mean()
    x = (x - mean) * _u(rng, (1 + (c.contrast[0] - 1) * p, 1 + (c.contrast[1] - 1) * p)) + mean
    x = np.clip(x, 0, 1) ** _u(rng, (1 + (c.gamma[0] - 1) * p, 1 + (c.gamma[1] - 1) * p))
    if rng.random() < c.vignette_prob * p:
        xx, yy = _grid(*x.shape[:2])
        x = x * (1 - rng.uniform(0.1, 0.5) * (xx ** 2 + yy ** 2) / 2)[..., None]
    return x


def _appearance(x: np.ndarray, mask: np.ndarray, rng: np.random.Generator, c: DegradationConfig, p: float
                ) -> np.ndarray:
    attention = (mask != SKIN).astype(np.uint8)
    if rng.random() < c.skin_prob * p:
        skin = _soft(mask == SKIN, 1.0)[..., None]
        tone = rng.uniform(0.45, 1.4) * (1 + rng.uniform(-0.2, 0.2, 3)).astype(np.float32)
        x = x * (1 - skin + skin * tone)
    if attention.any() and rng.random() < c.liner_prob * p:
        width = int(rng.integers(1, 4))
        ring = cv2.dilate(attention, np.ones((2 * width + 1, 2 * width + 1), np.uint8)) & (1 - attention)
        x = x * (1 - rng.uniform(0.3, 0.85) * _soft(ring, 0.7))[..., None]
    if attention.any() and rng.random() < c.lash_prob * p:
        # dark strokes rooted on the upper lid margin
        h, w = mask.shape
        cols = np.flatnonzero(attention.any(0))
        tops = attention.argmax(0)
        layer = np.zeros((h, w), np.float32)
        for col in rng.choice(cols, size=min(len(cols), int(rng.integers(5, 25))), replace=False):
            length = rng.uniform(2, 6)
            angle = rng.uniform(-2.2, -0.9)
            end = (int(col + length * np.cos(angle)), int(tops[col] + length * np.sin(angle)))
            cv2.line(layer, (int(col), int(tops[col])), end, 1.0, 1, cv2.LINE_AA)
        x = x * (1 - rng.uniform(0.3, 0.8) * np.clip(layer, 0, 1))[..., None]
    return x


def _occluders(x: np.ndarray, rng: np.random.Generator, c: DegradationConfig, p: float) -> np.ndarray:
    h, w = x.shape[:2]
    if rng.random() < c.frame_prob * p:
        # a glasses frame crossing the crop: a thick line or the rim of a large ellipse
        layer = np.zeros((h, w), np.float32)
        thickness = int(rng.integers(1, 4))
        if rng.random() < 0.5:
            y0, y1 = rng.uniform(-0.1, 0.25) * h, rng.uniform(-0.1, 0.25) * h
            if rng.random() < 0.5:
                y0, y1 = h - 1 - y0, h - 1 - y1
            cv2.line(layer, (0, int(y0)), (w - 1, int(y1)), 1.0, thickness, cv2.LINE_AA)
        else:
            centre = (int(w / 2 + rng.uniform(-0.3, 0.3) * w), int(h / 2 + rng.uniform(-0.2, 0.2) * h))
            axes = (int(rng.uniform(0.55, 0.9) * w), int(rng.uniform(0.55, 0.9) * h))
            cv2.ellipse(layer, centre, axes, float(rng.uniform(-10, 10)), 0, 360, 1.0, thickness, cv2.LINE_AA)
        colour = rng.uniform(0, 0.6, 3).astype(np.float32) * (1 if rng.random() < 0.7 else 1.6)
        alpha = layer[..., None] * rng.uniform(0.6, 1.0)
        x = x * (1 - alpha) + colour * alpha
    if rng.random() < c.specular_prob * p:
        for _ in range(int(rng.integers(1, 4))):
            centre = (rng.uniform(0, w), rng.uniform(0, h))
            spot = np.zeros((h, w), np.float32)
            cv2.ellipse(spot, (int(centre[0]), int(centre[1])), (int(rng.integers(1, 4)), int(rng.integers(1, 3))),
                        float(rng.uniform(0, 180)), 0, 360, 1.0, -1, cv2.LINE_AA)
            x = x + _soft(spot, rng.uniform(0.3, 1.0))[..., None] * rng.uniform(0.3, 1.0)
    if rng.random() < c.reflection_prob * p:
        # reflections on glasses: a broad bright band, or streaks at any angle (lens edges, window frames),
        # sometimes crossing; tinted, from faint to nearly opaque
        xx, yy = _grid(h, w)
        if rng.random() < 0.4:
            theta = rng.uniform(0, np.pi)
            layer = np.exp(-((np.cos(theta) * xx + np.sin(theta) * yy - rng.uniform(-0.8, 0.8))
                             / rng.uniform(0.1, 0.6)) ** 2).astype(np.float32)
        else:
            layer = np.zeros((h, w), np.float32)
            for _ in range(int(rng.integers(1, 4))):
                theta = rng.uniform(0, np.pi)
                centre = np.array([rng.uniform(0, w), rng.uniform(0, h)])
                direction = np.array([np.cos(theta), np.sin(theta)]) * 2 * (w + h)
                a, b = (centre - direction).astype(int), (centre + direction).astype(int)
                cv2.line(layer, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), 1.0, int(rng.integers(1, 6)),
                         cv2.LINE_AA)
            layer = np.clip(_soft(layer, rng.uniform(0.3, 1.8)) * rng.uniform(1.0, 2.0), 0, 1)
        tint = rng.uniform(0.6, 1.0, 3).astype(np.float32)
        alpha = layer[..., None] * rng.uniform(0.15, 0.9)
        x = x * (1 - alpha) + tint * alpha * max(float(x.max()), 0.5)
    return x


def _sensor(img: np.ndarray, rng: np.random.Generator, c: DegradationConfig, p: float) -> np.ndarray:
    """Sensor and transmission terms on a uint8 image."""
    h, w = img.shape[:2]
    if rng.random() < c.lowres_prob * p:
        f = _u(rng, c.lowres_factor)
        small = cv2.resize(img, (max(4, round(w / f)), max(3, round(h / f))), interpolation=cv2.INTER_AREA)
        img = cv2.resize(small, (w, h), interpolation=[cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_NEAREST]
                         [int(rng.integers(0, 3))])
    if rng.random() < c.blur_prob * p:
        img = cv2.GaussianBlur(img, (0, 0), _u(rng, c.blur_sigma))
    if rng.random() < c.motion_prob * p:
        length = _u(rng, c.motion_length)
        k = int(np.ceil(length)) | 1
        kernel = np.zeros((k, k), np.float32)
        angle = rng.uniform(0, np.pi)
        d = (length - 1) / 2
        cv2.line(kernel, (int(k // 2 - d * np.cos(angle)), int(k // 2 - d * np.sin(angle))),
                 (int(k // 2 + d * np.cos(angle)), int(k // 2 + d * np.sin(angle))), 1.0, 1, cv2.LINE_AA)
        img = cv2.filter2D(img, -1, kernel / max(kernel.sum(), 1e-6), borderType=cv2.BORDER_REPLICATE)
    if rng.random() < c.noise_prob * p:
        sigma = _u(rng, c.noise_sigma) * 255
        noise = rng.normal(0, sigma, img.shape if rng.random() < 0.6 else img.shape[:2] + (1,))
        if rng.random() < 0.3:  # shot noise: stronger in bright pixels
            noise = noise * np.sqrt(img / 255.0 + 0.05)
        img = np.clip(img + noise, 0, 255).astype(np.uint8)
    if rng.random() < c.jpeg_prob * p:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(_u(rng, c.jpeg_quality))])
        if ok:
            img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED).reshape(img.shape)
    return img


def no_eye(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A crop that holds no eye, labelled all skin, made from an eye crop: the eye painted over with the skin
    around it (as a closed eye or a misplaced box would show), a flat or graded patch of its skin colour, or
    noise. A segmenter that never sees such crops finds an eye in every blank or noisy image."""
    h, w = mask.shape
    skin = mask == SKIN
    colour = image[skin].mean(0) if skin.any() else rng.uniform(40, 220, 3)
    kind = rng.integers(0, 4)
    if kind == 0:
        hole = cv2.dilate((~skin).astype(np.uint8), np.ones((5, 5), np.uint8))
        out = cv2.inpaint(image, hole, 3, cv2.INPAINT_TELEA)
        # a closed lid: a dark line where the lids meet
        rows = np.flatnonzero((~skin).any(1))
        if len(rows) and rng.random() < 0.7:
            y = int(rows.mean())
            cv2.line(out, (int(w * 0.15), y + int(rng.integers(-2, 3))), (int(w * 0.85), y), 
                     tuple(float(v) for v in colour * rng.uniform(0.3, 0.7)), int(rng.integers(1, 3)), cv2.LINE_AA)
    elif kind == 1:
        xx, yy = _grid(h, w)
        theta = rng.uniform(0, 2 * np.pi)
        ramp = 1 + rng.uniform(0, 0.6) * (np.cos(theta) * xx + np.sin(theta) * yy)
        out = np.clip(colour * ramp[..., None] * rng.uniform(0.5, 1.5), 0, 255).astype(np.uint8)
    elif kind == 2:
        out = rng.integers(0, 256, image.shape, dtype=np.uint8)
        if rng.random() < 0.5:
            out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 3.0))
    else:
        out = np.full_like(image, int(rng.integers(0, 256)))
    return out, np.zeros_like(mask)


def degrade_one(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
                config: DegradationConfig = DegradationConfig(), geometry: bool = True
                ) -> tuple[np.ndarray, np.ndarray]:
    """One uint8 (H,W,3) eye and its (H,W) label map -> a degraded copy of both (the mask changes only by the
    geometric warp)."""
    if config.strength <= 0:
        return image, mask
    # each image gets its own severity, so mild and clean-looking eyes stay in the mix
    p = config.strength * float(rng.uniform(0.2, 1.0))
    if geometry and rng.random() < config.geometry_prob * min(p, 1.0):
        image, mask = _warp(image, mask, rng, config)
    x = image.astype(np.float32) / 255.0
    x = _appearance(x, mask, rng, config, p)
    x = _light(x, rng, config, p)
    x = _camera(x, mask, rng, config, p)
    x = _occluders(x, rng, config, p)
    img = (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)
    return _sensor(img, rng, config, p), mask


def degrade(images: np.ndarray, masks: np.ndarray, rng: np.random.Generator,
            config: DegradationConfig = DegradationConfig(), geometry: bool = True
            ) -> tuple[np.ndarray, np.ndarray]:
    """A batch of uint8 (N,H,W,3) eyes and (N,H,W) label maps -> degraded copies, one independent draw each.

    ``geometry=False`` keeps every pixel where it is (for gaze and paired pre-training targets)."""
    images = np.asarray(images)
    masks = np.asarray(masks)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise UserError(f"degrade: images must be uint8 (N,H,W,3), got {images.dtype} {tuple(images.shape)}")
    if masks.shape != images.shape[:3]:
        raise UserError(f"degrade: masks {tuple(masks.shape)} do not match images {tuple(images.shape[:3])}")
    out_images = np.empty_like(images)
    out_masks = np.empty_like(masks)
    for i in range(len(images)):
        out_images[i], out_masks[i] = degrade_one(images[i], masks[i], rng, config, geometry)
    return out_images, out_masks


#: The mask errors of :func:`corrupt_masks`, each what an automatic mask gets wrong on real photos.
MASK_ERRORS = ("shift", "second", "no_pupil", "no_iris", "other", "resize")


def _disc(mask: np.ndarray) -> np.ndarray:
    return mask >= IRIS


def _move(region: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """A boolean region translated by whole pixels (what falls off the border is lost)."""
    h, w = region.shape
    out = np.zeros_like(region)
    ys, xs = slice(max(0, dy), min(h, h + dy)), slice(max(0, dx), min(w, w + dx))
    yt, xt = slice(max(0, -dy), min(h, h - dy)), slice(max(0, -dx), min(w, w - dx))
    out[ys, xs] = region[yt, xt]
    return out


def corrupt_mask(mask: np.ndarray, rng: np.random.Generator, other: np.ndarray | None = None) -> np.ndarray:
    """One eye label map with one error of :data:`MASK_ERRORS` drawn at random: the iris moved, a second iris
    drawn elsewhere (on the sclera, the lids or the skin), the pupil or the whole iris missing, another eye's
    mask, or the iris grown or shrunk. The purifier is trained to give back the clean eye whatever such a mask
    says (``PurifierTrainConfig.mask_errors``), so that on a real photo a wrong mask paints nothing."""
    from maskpurify.masks import PUPIL, SCLERA

    mask = np.array(mask, dtype=np.uint8, copy=True)
    h, w = mask.shape
    eye, disc = mask > SKIN, _disc(mask)
    kind = MASK_ERRORS[int(rng.integers(len(MASK_ERRORS)))]
    if kind == "other" and other is not None:
        return np.array(other, dtype=np.uint8, copy=True)
    if not disc.any() or kind in ("no_iris", "other"):
        mask[disc] = SCLERA
        return mask
    if kind == "no_pupil":
        mask[mask == PUPIL] = IRIS
        return mask
    if kind == "resize":
        k = int(rng.integers(1, 4))
        kernel = np.ones((2 * k + 1, 2 * k + 1), np.uint8)
        grown = cv2.dilate(disc.astype(np.uint8), kernel) if rng.random() < 0.5 else \
            cv2.erode(disc.astype(np.uint8), kernel)
        pupil = mask == PUPIL
        mask[disc] = SCLERA
        mask[(grown > 0) & eye] = IRIS
        mask[pupil & (grown > 0)] = PUPIL
        return mask
    dy = int(rng.integers(-h // 4, h // 4 + 1))
    dx = int(rng.choice([-1, 1]) * rng.integers(max(2, w // 12), w // 3 + 1))
    moved_disc = _move(disc, dy, dx)
    moved_pupil = _move(mask == PUPIL, dy, dx)
    if kind == "shift":
        mask[disc] = SCLERA
        mask[moved_disc & eye] = IRIS
        mask[moved_pupil & eye] = PUPIL
    else:  # second: a copy of the iris anywhere, skin included
        mask[moved_disc] = IRIS
        mask[moved_pupil] = PUPIL
    return mask


def paint_out_eyes(images: np.ndarray, masks: np.ndarray, rng: np.random.Generator, share: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """A copy of a batch of eyes with ``share`` of them painted over by the skin around them (an eye mask on an
    image without the eye: what a misplaced box or a closed eye gives), for the mask-error training; and which."""
    out = np.array(images, copy=True)
    painted = np.zeros(len(images), bool)
    for i in np.flatnonzero(rng.random(len(images)) < share):
        skin = masks[i] == SKIN
        if skin.any() and not skin.all():
            hole = cv2.dilate((~skin).astype(np.uint8), np.ones((5, 5), np.uint8))
            out[i] = cv2.inpaint(np.ascontiguousarray(images[i]), hole, 3, cv2.INPAINT_TELEA)
            painted[i] = True
    return out, painted


def corrupt_masks(masks: np.ndarray, rng: np.random.Generator, share: float) -> np.ndarray:
    """A batch (N,H,W) of label maps with ``share`` of them given one mask error each (:func:`corrupt_mask`;
    "another eye's mask" takes the next one of the batch)."""
    masks = np.asarray(masks)
    out = np.array(masks, copy=True)
    for i in np.flatnonzero(rng.random(len(masks)) < share):
        out[i] = corrupt_mask(masks[i], rng, masks[(i + 1) % len(masks)])
    return out


__all__ = ["DegradationConfig", "MASK_ERRORS", "corrupt_mask", "corrupt_masks", "degrade", "degrade_one", "no_eye",
           "paint_out_eyes"]
