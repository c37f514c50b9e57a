"""Vectorised 2.5-D renderer of UnityEyes-like eye images with exact masks, gaze labels and landmarks.

Model
-----
Camera coordinates are OpenCV's (x right, y down in the image, z away from the camera), projected
orthographically: a 3-D offset (x, y, z) from the eyeball centre lands ``(x, y)`` pixels from the eyeball
centre's image position. Gaze follows MPIIGaze (:mod:`maskpurify.geometry`): the unit gaze vector is
``(-cos p sin y, -sin p, -cos p cos y)`` for pitch ``p`` and yaw ``y``; (0, 0) looks straight into the camera.
Hence **pitch > 0 looks up and the iris moves up in the image; yaw > 0 looks towards the image's left and the
iris moves left** (its centre sits at ``eyeball_centre + R cos(alpha_iris) * (g_x, g_y)``).

The iris (pupil) is the cap of eyeball-sphere points within angular radius ``alpha_iris`` (``alpha_pupil``) of
the gaze direction; its orthographic projection is exactly an ellipse (semi-axes ``R sin a`` and
``R sin a |g_z|``), which is what we draw and what the iris landmarks sample. Head pose (pitch, yaw) rotates
the eye corners about the eyeball centre (rotation ``Ry(yaw) Rx(pitch)``, the rotation that takes the frontal
direction (0, 0, -1) to ``pitchyaw_to_vector(head_pose)``), plus a small in-plane roll. Eyelids are smooth
curves between the corners; the upper lid follows the eye-in-head pitch (looking down lowers it) and
sometimes half-blinks. Soft edges come from signed distances in pixel units (``alpha = clip(0.5 - sd)``);
the label mask is the hard version at pixel centres (pixel ``(row i, col j)`` has centre ``(x=j, y=i)``,
the coordinates of all landmarks).

Randomness
----------
Geometry (:func:`sample_params`) is sampled apart from appearance, so the same geometry can be rendered in
both domains. Appearance has two streams: *identity* (materials: skin tone and texture, iris colour and
texture, eyelashes; shared by the domains) and *conditions* (light, shadows, exposure, glare, noise, blur,
JPEG; per domain). :func:`render_samples` derives them from a seed per chunk of :data:`CHUNK` samples:
geometry ``default_rng([seed, 0, chunk])``, identity ``[seed, 1, chunk]``, conditions
``[seed, 2 + domain_index, chunk]``.

The near-infrared eye camera (``nir-*`` presets, ``DomainPreset.monochrome``) reuses all of this: near-IR
materials replace the colours, the camera's LEDs add small corneal glints around the pupil, mascara and drooping
lids are conditions, and the image is made grey (R = G = B) before the sensor noise. :func:`render_sequence`
renders one eye over time (fixations, saccades, blinks) with its materials and conditions held fixed.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import cv2
import numpy as np

from maskpurify.config import parse_size
from maskpurify.errors import UserError
from maskpurify.geometry import pitchyaw_to_vector
from maskpurify.masks import IRIS, PUPIL, SCLERA, SKIN
from maskpurify.world.domains import DomainPreset, GeometryConfig, default_geometry, domain_index, get_preset

#: Samples per random-stream chunk: results never depend on how a caller splits a range into batches.
CHUNK = 256
#: Reference image size (height, width) the geometry lengths are expressed in.
REF_SIZE = (36, 60)
N_EYELID, N_IRIS, N_CARUNCLE = 16, 32, 7

_F = np.float32
#: ITU-R BT.601 luma weights: the monochrome sensor and ``grey=True``.
_LUMA = np.array([0.299, 0.587, 0.114], _F)


@dataclass
class EyeParams:
    """Geometry of N eyes (angles in radians, lengths in reference pixels of a 60x36 image)."""

    gaze: np.ndarray  # (N, 2) pitch, yaw
    head_pose: np.ndarray  # (N, 2) pitch, yaw
    roll: np.ndarray  # (N,)
    shift: np.ndarray  # (N, 2) eyeball centre offset from the image centre
    eyeball_radius: np.ndarray  # (N,)
    corner_half_width: np.ndarray  # (N,) multiple of the radius
    corner_drop: np.ndarray  # (N,) inner corner below the outer one, multiple of the radius
    iris_angle: np.ndarray  # (N,)
    pupil_angle: np.ndarray  # (N,)
    upper_lid: np.ndarray  # (N,) opening at straight gaze, multiple of the radius
    lower_lid: np.ndarray  # (N,)
    upper_follow: np.ndarray  # (N,)
    lower_follow: np.ndarray  # (N,)
    blink: np.ndarray  # (N,) remaining opening fraction of the upper lid (1 = no blink)
    lid_shape: np.ndarray  # (N, 2) asymmetry exponents of the upper and lower lid curves
    crease_gap: np.ndarray  # (N,)

    def __len__(self) -> int:
        return len(self.gaze)

    def subset(self, index: slice | np.ndarray) -> EyeParams:
        return EyeParams(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def copy(self) -> EyeParams:
        return EyeParams(**{f.name: getattr(self, f.name).copy() for f in fields(self)})


@dataclass
class RenderedEyes:
    """Rendered eyes. Images uint8 (N,H,W,3) RGB or (N,H,W,1) grey; masks uint8 (N,H,W) labels SKIN, SCLERA,
    IRIS, PUPIL; gaze/head_pose (N,2) pitch/yaw radians; landmarks in (x, y) pixels."""

    images: np.ndarray
    masks: np.ndarray
    gaze: np.ndarray
    gaze_vector: np.ndarray
    head_pose: np.ndarray
    eyelid_landmarks: np.ndarray  # (N, 16, 2): upper lid inner->outer corner (9), lower lid outer->inner (7)
    iris_landmarks: np.ndarray  # (N, 32, 2)
    pupil_center: np.ndarray  # (N, 2)
    caruncle_landmarks: np.ndarray  # (N, 7, 2)
    iris_size: np.ndarray  # (N,) iris radius / eyeball radius
    pupil_size: np.ndarray  # (N,) pupil radius / iris radius
    eyeball_center: np.ndarray  # (N, 2)
    eyeball_radius: np.ndarray  # (N,) pixels

    def __len__(self) -> int:
        return len(self.images)


def concat_batches(batches: list[RenderedEyes]) -> RenderedEyes:
    return RenderedEyes(**{f.name: np.concatenate([getattr(b, f.name) for b in batches]) for f in fields(RenderedEyes)})


def slice_batch(batch: RenderedEyes, index: slice) -> RenderedEyes:
    return RenderedEyes(**{f.name: getattr(batch, f.name)[index] for f in fields(RenderedEyes)})


# ----------------------------------------------------------------------------------------------- sampling
def _u(rng: np.random.Generator, rng_range: tuple[float, float], n: int) -> np.ndarray:
    return rng.uniform(rng_range[0], rng_range[1], n)


def sample_params(rng: np.random.Generator, n: int, geometry: GeometryConfig | None = None) -> EyeParams:
    """Draw the geometry of ``n`` eyes (a fixed number of draws per call, whatever the config)."""
    g = geometry or GeometryConfig()
    g.validate()
    rad = np.radians
    gaze = np.stack([rad(_u(rng, g.gaze_pitch, n)), rad(_u(rng, g.gaze_yaw, n))], 1)
    head = np.stack([rad(_u(rng, g.head_pitch, n)), rad(_u(rng, g.head_yaw, n))], 1)
    blink_draw = rng.random(n)
    blink_open = _u(rng, g.blink_open, n)
    return EyeParams(
        gaze=gaze, head_pose=head, roll=rad(_u(rng, g.roll, n)),
        shift=np.stack([_u(rng, g.shift_x, n), _u(rng, g.shift_y, n)], 1),
        eyeball_radius=_u(rng, g.eyeball_radius, n), corner_half_width=_u(rng, g.corner_half_width, n),
        corner_drop=rng.uniform(0.0, 0.15, n),
        iris_angle=rad(_u(rng, g.iris_angle, n)), pupil_angle=rad(_u(rng, g.pupil_angle, n)),
        upper_lid=_u(rng, g.upper_lid, n), lower_lid=_u(rng, g.lower_lid, n),
        upper_follow=np.full(n, g.upper_follow), lower_follow=np.full(n, g.lower_follow),
        blink=np.where(blink_draw < g.blink_prob, blink_open, 1.0),
        lid_shape=np.stack([rng.uniform(0.85, 1.15, n), rng.uniform(1.0, 1.45, n)], 1),
        crease_gap=_u(rng, g.crease_gap, n),
    )


# Iris colour families (outer, inner) in linear-ish RGB: brown, hazel, green, blue, grey.
_IRIS_OUTER = np.array([[0.26, 0.14, 0.07], [0.33, 0.26, 0.12], [0.22, 0.34, 0.2], [0.22, 0.36, 0.56],
                        [0.36, 0.4, 0.43]], _F)
_IRIS_INNER = np.array([[0.42, 0.25, 0.1], [0.52, 0.34, 0.12], [0.48, 0.44, 0.18], [0.5, 0.6, 0.72],
                        [0.58, 0.6, 0.6]], _F)
_SKIN_LIGHT = np.array([0.93, 0.75, 0.64], _F)
_SKIN_DARK = np.array([0.36, 0.23, 0.16], _F)
_KNOTS = (5, 7)  # low-frequency texture grid (rows, cols)


def _sample_identity(rng: np.random.Generator, n: int, p: DomainPreset) -> dict[str, np.ndarray]:
    w = np.asarray(p.iris_family_weights, float)
    family = rng.choice(5, size=n, p=w / w.sum())
    bright = rng.uniform(0.7, 1.2, (n, 1))
    tone = _u(rng, p.skin_tone, n)
    skin = _SKIN_LIGHT + (_SKIN_DARK - _SKIN_LIGHT) * tone[:, None] + rng.normal(0, 0.025, (n, 3))
    tint = _u(rng, p.sclera_tint, n)
    sclera = np.array([0.94, 0.9, 0.88]) + (np.array([0.92, 0.72, 0.7]) - np.array([0.94, 0.9, 0.88])) * tint[:, None]
    return dict(
        iris_outer=_IRIS_OUTER[family] * bright * rng.uniform(0.9, 1.1, (n, 3)),
        iris_inner=_IRIS_INNER[family] * bright * rng.uniform(0.9, 1.1, (n, 3)),
        iris_freq=rng.integers(6, 40, (n, 3)).astype(float), iris_phase=rng.uniform(0, 2 * np.pi, (n, 3)),
        iris_twist=rng.uniform(-3, 3, (n, 3)), iris_amp=rng.uniform(0.3, 1.0, (n, 3)),
        iris_texture=_u(rng, p.iris_texture, n), limbus=_u(rng, p.limbus, n),
        collarette=rng.uniform(-0.2, 0.25, n),
        skin=np.clip(skin, 0.05, 1.0), skin_texture=_u(rng, p.skin_texture, n),
        skin_noise=rng.normal(0, 1, (n, *_KNOTS)),
        sclera=sclera * rng.uniform(0.95, 1.02, (n, 1)),
        lash=_u(rng, p.lash_strength, n), lash_freq=rng.uniform(22, 36, n), lash_phase=rng.uniform(0, 6.3, n),
        crease=rng.uniform(0.1, 0.35, n), socket=rng.uniform(0.3, 0.8, n),
    ) | (_nir_materials(rng, n) if p.monochrome else {})


def _nir_materials(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Near-IR reflectances (grey): the iris reflects strongly whatever its colour, skin is bright whatever its
    tone, the sclera a little darker than in visible light."""
    grey = np.ones((1, 3))
    iris = rng.uniform(0.3, 0.5, (n, 1))
    return dict(iris_outer=iris * 0.75 * grey, iris_inner=(iris + rng.uniform(0.05, 0.2, (n, 1))) * grey,
                skin=rng.uniform(0.6, 0.85, (n, 1)) * grey, sclera=rng.uniform(0.7, 0.85, (n, 1)) * grey)


def _light_dirs(rng: np.random.Generator, n: int, angle_range: tuple[float, float]) -> np.ndarray:
    theta = np.radians(_u(rng, angle_range, n))
    phi = rng.uniform(0, 2 * np.pi, n)
    return np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), -np.cos(theta)], 1)


def _temp_gain(tau: np.ndarray, jitter: float) -> np.ndarray:
    return np.stack([1 + jitter * tau, 1 + 0.1 * jitter * np.abs(tau), 1 - jitter * tau], 1)


def _sample_conditions(rng: np.random.Generator, n: int, p: DomainPreset) -> dict[str, np.ndarray]:
    c = dict(
        ambient=_u(rng, p.ambient, n), ambient_col=_temp_gain(rng.uniform(-0.5, 0.5, n), p.light_colour_jitter),
        key=_u(rng, p.key_intensity, n), key_dir=_light_dirs(rng, n, p.key_angle),
        key_col=_temp_gain(rng.uniform(-1, 1, n), p.light_colour_jitter),
        fill=np.where(rng.random(n) < p.fill_prob, _u(rng, p.fill_intensity, n), 0.0),
        fill_dir=_light_dirs(rng, n, (30.0, 85.0)),
        fill_col=_temp_gain(rng.uniform(-1, 1, n), p.light_colour_jitter),
        shadow=np.where(rng.random(n) < p.shadow_prob, _u(rng, p.shadow_darkness, n), 0.0),
        shadow_angle=rng.uniform(0, 2 * np.pi, n), shadow_offset=rng.uniform(-12, 12, n),
        shadow_band=rng.random(n) < 0.4, shadow_width=rng.uniform(2, 8, n),
        shadow_soft=_u(rng, p.shadow_softness, n),
        ev=_u(rng, p.exposure_ev, n), auto_exposure=np.full(n, p.auto_exposure), gamma=_u(rng, p.gamma, n), contrast=_u(rng, p.contrast, n),
        wb=1 + p.white_balance * rng.uniform(-1, 1, (n, 3)),
        glare=np.where(rng.random(n) < p.glare_prob, _u(rng, p.glare_strength, n), 0.0),
        glare_pos=rng.uniform(-1, 1, (n, 2, 2)) * np.array([22, 12]), glare_angle=rng.uniform(0, np.pi, (n, 2)),
        glare_width=rng.uniform(0.6, 3.0, (n, 2)), glare_len=rng.uniform(6, 40, (n, 2)),
        glare_reflect=rng.uniform(0, 1, n), glare_noise=rng.normal(0, 1, (n, 3, 4)),
        glare_col=1 - 0.15 * rng.random((n, 3)),
        noise=_u(rng, p.noise_sigma, n),
        blur=np.where(rng.random(n) < p.blur_prob, _u(rng, p.blur_sigma, n), 0.0),
        motion=np.where(rng.random(n) < p.motion_blur_prob, _u(rng, p.motion_blur_length, n), 0.0),
        motion_angle=rng.uniform(0, 180, n),
        jpeg=np.where(rng.random(n) < p.jpeg_prob, np.round(_u(rng, p.jpeg_quality, n)), 0.0),
    )
    return c


def _sample_nir_conditions(rng: np.random.Generator, n: int, p: DomainPreset) -> dict[str, np.ndarray]:
    """The near-IR camera's conditions, drawn after everything else so that the eye world's streams are unchanged."""
    return dict(
        monochrome=np.full(n, p.monochrome), led_count=np.full(n, p.led_count),
        led_angle=np.radians(_u(rng, p.led_angle, n)), led_phase=rng.uniform(0, 2 * np.pi, n),
        led_strength=_u(rng, p.led_strength, n) * (p.led_count > 0),
        mascara=np.where(rng.random(n) < p.mascara_prob, _u(rng, p.mascara, n), 0.0),
        droop=np.where(rng.random(n) < p.lid_droop_prob, _u(rng, p.lid_droop, n), 1.0),
    )


# ----------------------------------------------------------------------------------------------- layout
def _layout(params: EyeParams, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Per-sample pixel-space geometry (eyeball, iris/pupil ellipses, eye corners, lid heights)."""
    height, width = size
    unit = min(width / REF_SIZE[1], height / REF_SIZE[0])
    n = len(params)
    radius = params.eyeball_radius * unit
    centre = np.stack([(width - 1) / 2 + params.shift[:, 0] * unit, (height - 1) / 2 + params.shift[:, 1] * unit], 1)
    g = pitchyaw_to_vector(params.gaze)
    hp, hy = params.head_pose[:, 0], params.head_pose[:, 1]
    # Corners in the head frame, relative to the eyeball centre: inner corner on the image's left.
    half = params.corner_half_width * radius
    zc = 0.55 * radius
    corners = np.zeros((n, 2, 3))
    corners[:, 0] = np.stack([-half, (0.08 + params.corner_drop / 2) * radius, -zc], 1)
    corners[:, 1] = np.stack([half, (0.08 - params.corner_drop / 2) * radius, -zc], 1)
    # Rx(pitch) then Ry(yaw)
    cp, sp, cy, sy = np.cos(hp)[:, None], np.sin(hp)[:, None], np.cos(hy)[:, None], np.sin(hy)[:, None]
    x, y, z = corners[..., 0], corners[..., 1], corners[..., 2]
    y1, z1 = y * cp + z * sp, -y * sp + z * cp
    x2 = x * cy + z1 * sy
    cr, sr = np.cos(params.roll)[:, None], np.sin(params.roll)[:, None]
    proj = np.stack([x2 * cr - y1 * sr, x2 * sr + y1 * cr], -1) + centre[:, None, :]
    inner, outer = proj[:, 0], proj[:, 1]
    axis = outer - inner
    length = np.linalg.norm(axis, axis=1)
    axis = axis / length[:, None]
    # Lid heights (pixels above / below the corner line).
    eye_pitch = params.gaze[:, 0] - hp
    up = (params.upper_lid + params.upper_follow * np.sin(eye_pitch)).clip(0.18, None) * params.blink
    lo = (params.lower_lid - params.lower_follow * np.sin(eye_pitch)).clip(0.12, None)
    fore = np.cos(hp).clip(0.5, None) * radius
    # Iris and pupil ellipses.
    gxy = g[:, :2]
    gnorm = np.linalg.norm(gxy, axis=1)
    minor_dir = np.where(gnorm[:, None] > 1e-6, gxy / np.maximum(gnorm, 1e-6)[:, None], np.array([1.0, 0.0]))
    sin_i, sin_p = np.sin(params.iris_angle), np.sin(params.pupil_angle)
    return dict(
        unit=np.full(n, unit), radius=radius, centre=centre, g=g, inner=inner, outer=outer, axis=axis, length=length,
        up=up * fore, lo=lo * fore, crease=(params.upper_lid + params.crease_gap) * fore, lid_shape=params.lid_shape,
        iris_c=centre + (radius * np.cos(params.iris_angle))[:, None] * gxy,
        pupil_c=centre + (radius * np.cos(params.pupil_angle))[:, None] * gxy,
        minor_dir=minor_dir, iris_a=radius * sin_i, iris_b=radius * sin_i * np.abs(g[:, 2]),
        pupil_a=radius * sin_p, pupil_b=radius * sin_p * np.abs(g[:, 2]), iris_size=sin_i, pupil_size=sin_p / sin_i,
    )


def _bump(t: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    return np.sin(np.pi * np.clip(t, 0.0, 1.0) ** gamma)


def _landmarks(lay: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    inner, axis, length = lay["inner"], lay["axis"], lay["length"]
    normal = np.stack([-axis[:, 1], axis[:, 0]], 1)
    t_up = np.linspace(0, 1, 9)[None, :]
    t_lo = np.linspace(1, 0, 9)[None, 1:-1]

    def curve(t: np.ndarray, h: np.ndarray, gamma: np.ndarray, sign: float) -> np.ndarray:
        off = sign * h[:, None] * _bump(t, gamma[:, None])
        return inner[:, None] + axis[:, None] * (t * length[:, None])[..., None] + normal[:, None] * off[..., None]

    lid = np.concatenate([curve(t_up, lay["up"], lay["lid_shape"][:, 0], -1.0),
                          curve(t_lo, lay["lo"], lay["lid_shape"][:, 1], 1.0)], 1)
    theta = np.linspace(0, 2 * np.pi, N_IRIS, endpoint=False)[None, :, None]
    e = lay["minor_dir"][:, None]
    nvec = np.stack([-e[..., 1], e[..., 0]], -1)
    iris = (lay["iris_c"][:, None] + lay["iris_a"][:, None, None] * np.cos(theta) * nvec
            + lay["iris_b"][:, None, None] * np.sin(theta) * e)
    car_c, car_r = _caruncle(lay)
    phi = np.linspace(0, 2 * np.pi, N_CARUNCLE, endpoint=False)[None, :]
    car = car_c[:, None] + car_r[:, None, None] * np.stack([np.cos(phi), np.sin(phi)], -1)
    return lid, iris, car


def _caruncle(lay: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    centre = lay["inner"] + lay["axis"] * (0.06 * lay["length"])[:, None]
    return centre, 0.07 * lay["length"]


def _smooth_matrix(n_out: int, n_knots: int) -> np.ndarray:
    """(n_out, n_knots) row-normalised Gaussian interpolation weights (a smooth low-frequency upsampler)."""
    pos = (np.arange(n_out) + 0.5) / n_out * (n_knots - 1)
    w = np.exp(-0.5 * ((pos[:, None] - np.arange(n_knots)[None, :]) / 0.6) ** 2)
    return (w / w.sum(1, keepdims=True)).astype(_F)


def _upsample(noise: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    my = _smooth_matrix(size[0], noise.shape[1])
    mx = _smooth_matrix(size[1], noise.shape[2])
    out = np.einsum("hy,nyx,wx->nhw", my, noise.astype(_F), mx, optimize=True)
    return out / out.reshape(len(out), -1).std(1).clip(1e-3)[:, None, None]


# ----------------------------------------------------------------------------------------------- rendering
def _sub_batch(size: tuple[int, int]) -> int:
    # ~64k pixels per sub-batch keeps the planar float32 working set in cache (3x faster than big batches).
    return int(max(1, min(CHUNK, 2**16 // (size[0] * size[1]))))


def render_batch(params: EyeParams, domain: str | DomainPreset = "synthetic", size: tuple[int, int] = REF_SIZE,
                 rng: np.random.Generator | None = None, *, identity_rng: np.random.Generator | None = None,
                 grey: bool = False, keep: slice | None = None, shared: bool = False) -> RenderedEyes:
    """Render ``params`` in ``domain``. ``rng`` drives the imaging conditions, ``identity_rng`` the materials
    (defaults: ``rng``). Deterministic given the generators' states, the params and the size; each image's
    randomness is drawn up front, so ``keep`` (a slice of the batch to actually render) gives exactly the
    corresponding images of the full batch. ``shared``: the rows are one eye over time (a sequence), rendered
    with the first row's materials and conditions; only the sensor noise changes from row to row."""
    preset = get_preset(domain)
    size = parse_size(size) if isinstance(size, str) else (int(size[0]), int(size[1]))
    rng = rng if rng is not None else np.random.default_rng(0)
    identity_rng = identity_rng if identity_rng is not None else rng
    n = len(params)
    ident = _sample_identity(identity_rng, n, preset)
    cond = _sample_conditions(rng, n, preset)
    cond["noise_seed"] = rng.integers(0, 2**63 - 1, n)
    cond |= _sample_nir_conditions(rng, n, preset)
    if shared:  # one eye over time: the first row's materials and conditions on every row, noise per row
        ident = {k: np.repeat(v[:1], n, axis=0) for k, v in ident.items()}
        cond = {k: v if k == "noise_seed" else np.repeat(v[:1], n, axis=0) for k, v in cond.items()}
    if (cond["droop"] < 1).any():  # partial lid occlusion is a condition: the masks and landmarks follow it
        params = params.copy()
        params.blink = params.blink * cond["droop"]
    if keep is not None:
        params = params.subset(keep)
        ident = {k: v[keep] for k, v in ident.items()}
        cond = {k: v[keep] for k, v in cond.items()}
        n = len(params)
    lay = _layout(params, size)
    lid, iris, car = _landmarks(lay)
    images = np.empty((n, *size, 1 if grey else 3), np.uint8)
    masks = np.empty((n, *size), np.uint8)
    step = _sub_batch(size)
    for start in range(0, n, step):
        sl = slice(start, min(n, start + step))
        pick = {k: v[sl] for k, v in lay.items()}
        img, mask = _render_pixels(pick, {k: v[sl] for k, v in ident.items()},
                                   {k: v[sl] for k, v in cond.items()}, size)
        images[sl] = _to_grey(img) if grey else img
        masks[sl] = mask
    return RenderedEyes(images=images, masks=masks, gaze=params.gaze.astype(_F), gaze_vector=lay["g"].astype(_F),
                    head_pose=params.head_pose.astype(_F), eyelid_landmarks=lid.astype(_F),
                    iris_landmarks=iris.astype(_F), pupil_center=lay["pupil_c"].astype(_F),
                    caruncle_landmarks=car.astype(_F), iris_size=lay["iris_size"].astype(_F),
                    pupil_size=lay["pupil_size"].astype(_F), eyeball_center=lay["centre"].astype(_F),
                    eyeball_radius=lay["radius"].astype(_F))


def _to_grey(img: np.ndarray) -> np.ndarray:
    y = img[..., 0] * _LUMA[0] + img[..., 1] * _LUMA[1] + img[..., 2] * _LUMA[2]
    return np.clip(np.round(y), 0, 255).astype(np.uint8)[..., None]


def _c(a: np.ndarray) -> np.ndarray:
    """Per-sample scalar -> (N, 1, 1) float32 for broadcasting over pixels."""
    return np.asarray(a, _F)[:, None, None]


def _c3(a: np.ndarray) -> np.ndarray:
    """Per-sample RGB (N, 3) -> (3, N, 1, 1): colour images are planar (3, N, H, W) while rendering."""
    return np.asarray(a, _F).T[:, :, None, None]


_NOISE_BANK: np.ndarray | None = None


def _noise_fields(seeds: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Deterministic standard-normal fields, one per seed: windows of a fixed pseudo-random bank (fast)."""
    global _NOISE_BANK
    count = int(np.prod(shape))
    if _NOISE_BANK is None or len(_NOISE_BANK) < 2 * count:
        _NOISE_BANK = np.random.default_rng(20190320).standard_normal(max(2**22, 2 * count), dtype=_F)
    offsets = (seeds % (len(_NOISE_BANK) - count)).astype(np.int64)
    return np.stack([_NOISE_BANK[o:o + count] for o in offsets]).reshape(len(seeds), *shape)


def _ellipse_sd(dx: np.ndarray, dy: np.ndarray, e: np.ndarray, a: np.ndarray, b: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First-order signed distance (pixels, negative inside) to an ellipse with minor axis along ``e``."""
    ex, ey = _c(e[:, 0]), _c(e[:, 1])
    qb = dx * ex + dy * ey
    qa = dy * ex - dx * ey
    ia, ib = _c(1 / a), _c(1 / np.maximum(b, 1e-3))
    ua, ub = qa * ia, qb * ib
    rho2 = ua * ua + ub * ub
    grad = 2 * np.sqrt((ua * ia) ** 2 + (ub * ib) ** 2) + _F(1e-4)
    return (rho2 - 1) / grad, ua, ub


def _smoothstep(lo: float, hi: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - _F(lo)) * _F(1.0 / (hi - lo)), 0, 1)
    return t * t * (3 - 2 * t)


def _render_pixels(lay: dict[str, np.ndarray], ident: dict[str, np.ndarray], cond: dict[str, np.ndarray],
                   size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    height, width = size
    n = len(lay["radius"])
    X = np.arange(width, dtype=_F)[None, None, :]
    Y = np.arange(height, dtype=_F)[None, :, None]
    R = _c(lay["radius"])
    unit = float(lay["unit"][0])

    # --- eyelids: signed distances in pixels (positive inside the opening) ----------------------------------
    ix, iy = _c(lay["inner"][:, 0]), _c(lay["inner"][:, 1])
    ax, ay = _c(lay["axis"][:, 0]), _c(lay["axis"][:, 1])
    length = _c(lay["length"])
    px, py = X - ix, Y - iy
    t = (px * ax + py * ay) / length
    v = py * ax - px * ay  # along the normal (-ay, ax), positive below the corner line
    tc = np.clip(t, _F(1e-3), _F(1.0))
    g_up, g_lo = _c(lay["lid_shape"][:, 0]), _c(lay["lid_shape"][:, 1])
    tg_up, tg_lo = tc**g_up, tc**g_lo
    b_up, b_lo = np.sin(_F(np.pi) * tg_up), np.sin(_F(np.pi) * tg_lo)
    outside = (t <= 0) | (t >= 1)
    b_up = np.where(outside, 0, b_up)
    b_lo = np.where(outside, 0, b_lo)
    h_up, h_lo = _c(lay["up"]), _c(lay["lo"])
    s_up = h_up * _F(np.pi) * g_up * tg_up / tc * np.cos(_F(np.pi) * tg_up) / length
    s_lo = h_lo * _F(np.pi) * g_lo * tg_lo / tc * np.cos(_F(np.pi) * tg_lo) / length
    d_up = (v + h_up * b_up) / np.sqrt(1 + np.minimum(s_up * s_up, 16))
    d_lo = (h_lo * b_lo - v) / np.sqrt(1 + np.minimum(s_lo * s_lo, 16))
    beyond = np.where(t < 0, t, t - 1) * length  # distance past a corner along the corner line
    open_sd = np.where(outside, -np.sqrt(beyond * beyond + v * v), np.minimum(d_up, d_lo))
    a_open = np.clip(open_sd + _F(0.5), 0, 1)

    # --- iris and pupil -------------------------------------------------------------------------------------
    dx, dy = X - _c(lay["iris_c"][:, 0]), Y - _c(lay["iris_c"][:, 1])
    sd_iris, ua, ub = _ellipse_sd(dx, dy, lay["minor_dir"], lay["iris_a"], lay["iris_b"])
    pdx, pdy = X - _c(lay["pupil_c"][:, 0]), Y - _c(lay["pupil_c"][:, 1])
    sd_pupil, _, _ = _ellipse_sd(pdx, pdy, lay["minor_dir"], lay["pupil_a"], lay["pupil_b"])
    a_iris = np.clip(_F(0.5) - sd_iris, 0, 1)
    a_pupil = np.clip(_F(0.5) - sd_pupil, 0, 1)
    rho = np.sqrt(ua * ua + ub * ub)
    phi = np.arctan2(ub, ua)
    tex = np.zeros_like(rho)
    for k in range(3):
        tex += _c(ident["iris_amp"][:, k]) * np.cos(_c(ident["iris_freq"][:, k]) * phi
                                                   + _c(ident["iris_phase"][:, k]) + _c(ident["iris_twist"][:, k]) * rho)
    tex *= _F(1 / 3)
    radial = _smoothstep(0.2, 0.85, rho)[None]
    iris_col = _c3(ident["iris_inner"]) + (_c3(ident["iris_outer"]) - _c3(ident["iris_inner"])) * radial
    shade_iris = (1 + _c(ident["iris_texture"]) * tex
                  + _c(ident["collarette"]) * np.exp(-((rho - _F(0.42)) * _F(12)) ** 2)
                  - _c(ident["limbus"]) * _smoothstep(0.7, 1.02, rho))
    iris_col = iris_col * shade_iris[None]
    pupil_col = _F(0.035)

    # --- sclera and skin albedo -----------------------------------------------------------------------------
    ex, ey = (X - _c(lay["centre"][:, 0])) / R, (Y - _c(lay["centre"][:, 1])) / R
    r2 = np.minimum(ex * ex + ey * ey, _F(0.92))
    nz_eye = -np.sqrt(1 - r2)
    sclera = _c3(ident["sclera"]) * (1 - _F(0.3) * _smoothstep(0.3, 1.3, np.sqrt(ex * ex + ey * ey)))[None]
    eye = sclera + a_iris[None] * (iris_col + a_pupil[None] * (pupil_col - iris_col) - sclera)
    ao = (1 - _F(0.45) * np.exp(-np.maximum(d_up, 0) / (_F(0.2) * R))
          - _F(0.2) * np.exp(-np.maximum(d_lo, 0) / (_F(0.12) * R)))
    eye *= ao[None]

    skin_tex = _upsample(ident["skin_noise"], size)
    skin = _c3(ident["skin"]) * (1 + _c(ident["skin_texture"]) * skin_tex)[None]
    # eyelid crease
    tcr = np.clip((t + _F(0.12)) / _F(1.24), 0, 1)
    crease_v = v + _c(lay["crease"]) * np.sin(_F(np.pi) * tcr)
    crease = _c(ident["crease"]) * np.exp(-(crease_v / (_F(0.09) * R + _F(0.4))) ** 2) * (tcr > 0) * (tcr < 1)
    skin *= (1 - crease)[None]

    albedo = skin + a_open[None] * (eye - skin)
    # caruncle (inner corner; labelled skin), behind the iris
    car_c, car_r = _caruncle(lay)
    car_sd = np.sqrt((X - _c(car_c[:, 0])) ** 2 + (Y - _c(car_c[:, 1])) ** 2) - _c(car_r)
    a_car = np.clip(_F(0.5) - car_sd, 0, 1) * a_open * (1 - a_iris)
    car_col = _c3(ident["skin"]) * np.array([1.0, 0.62, 0.62], _F)[:, None, None, None] + _F(0.12)
    albedo += a_car[None] * (car_col - albedo)
    # eyelashes and lash line above the upper lid
    dd = -d_up
    lash_len = _F(0.22) * R * (_F(0.7) + _F(0.6) * tc)
    strands = _F(0.5) + _F(0.5) * np.cos(_F(2 * np.pi) * (_c(ident["lash_freq"]) * t + _F(0.4) * dd / lash_len)
                                         + _c(ident["lash_phase"]))
    in_lash = np.clip(1 - dd / lash_len, 0, 1) * (dd > -0.5) * ~outside
    thick = 1 + _c(cond["mascara"])  # mascara: darker, thicker lashes and lash line
    lash = (_c(ident["lash"]) + _c(cond["mascara"])) * (
        in_lash * (_F(0.35) + _F(0.65) * strands) * (_F(0.4) + _F(0.6) * tc)
        + _F(0.8) * np.exp(-(dd / ((_F(0.07) * R + _F(0.45)) * thick)) ** 2) * ~outside)
    albedo *= (1 - np.clip(lash, 0, 0.92))[None]

    # --- shading: socket bowl normals on the skin, sphere normals on the eye -------------------------------
    mx = _c((lay["inner"][:, 0] + lay["outer"][:, 0]) / 2)
    my = _c((lay["inner"][:, 1] + lay["outer"][:, 1]) / 2)
    sx, sy = length * _F(0.75), R * _F(1.1)
    qx, qy = (X - mx) / sx, (Y - my) / sy
    bowl = R * _F(0.9) * _c(ident["socket"]) * np.exp(_F(-0.5) * (qx * qx + qy * qy))
    nx_s, ny_s = -bowl * qx / sx, -bowl * qy / sy
    w = a_open
    nx = ex + (1 - w) * (nx_s - ex)
    ny = ey + (1 - w) * (ny_s - ey)
    nz = nz_eye + (1 - w) * (-1 - nz_eye)
    inv = 1 / np.sqrt(nx * nx + ny * ny + nz * nz)
    nx, ny, nz = nx * inv, ny * inv, nz * inv

    def lambert(d: np.ndarray) -> np.ndarray:
        return np.maximum(nx * _c(d[:, 0]) + ny * _c(d[:, 1]) + nz * _c(d[:, 2]), 0)

    key = lambert(cond["key_dir"]) * _c(cond["key"])
    # cast shadows block the key light
    if (cond["shadow"] > 0).any():
        ang = cond["shadow_angle"]
        cxs, cys = (width - 1) / 2, (height - 1) / 2
        sd = ((X - cxs) * _c(np.cos(ang)) + (Y - cys) * _c(np.sin(ang))) / unit - _c(cond["shadow_offset"])
        soft = _c(cond["shadow_soft"])
        band = _c(cond["shadow_band"].astype(float))
        cover = np.where(band > 0, (_c(cond["shadow_width"]) - np.abs(sd)) / soft, sd / soft)
        key *= 1 - _c(cond["shadow"]) * (1 / (1 + np.exp(-np.clip(cover, -30, 30))))
    light = _c(cond["ambient"])[None] * _c3(cond["ambient_col"]) + key[None] * _c3(cond["key_col"])
    if (cond["fill"] > 0).any():
        light += (lambert(cond["fill_dir"]) * _c(cond["fill"]))[None] * _c3(cond["fill_col"])
    img = albedo * light

    # --- corneal highlights (one per light), on the cornea only --------------------------------------------
    g = lay["g"]
    rc = 0.62 * lay["radius"]
    for dirs, power, colour in ((cond["key_dir"], cond["key"], cond["key_col"]),
                                (cond["fill_dir"], cond["fill"], cond["fill_col"])):
        if not (power > 0).any():
            continue
        half = dirs + np.array([0.0, 0.0, -1.0])
        half /= np.linalg.norm(half, axis=1, keepdims=True)
        vis = np.clip(((half * g).sum(1) - 0.75) / 0.15, 0, 1) * np.minimum(power, 1.0)
        pos = lay["centre"] + ((lay["radius"] - rc)[:, None] * g[:, :2] + rc[:, None] * half[:, :2])
        sig = _c(0.07 * lay["radius"] + 0.35)
        spot = np.exp(-((X - _c(pos[:, 0])) ** 2 + (Y - _c(pos[:, 1])) ** 2) / (2 * sig * sig)) * _c(vis) * a_open
        img += (_F(0.9) * spot)[None] * _c3(colour)
    img += _led_glints(lay, cond, X, Y, a_open)[None]

    # --- camera: (auto-)exposure, white balance, contrast, gamma ---------------------------------------------
    gain = 2.0 ** cond["ev"]
    if cond["auto_exposure"].any():
        mean = img.mean(axis=(0, 2, 3))
        gain = np.where(cond["auto_exposure"], gain * 0.42 / np.maximum(mean, 1e-3), gain)
    img *= _c3(cond["wb"] * gain[:, None])
    img = (img - _F(0.45)) * _c(cond["contrast"])[None] + _F(0.45)
    np.clip(img, 0, 1, out=img)
    img **= _c(cond["gamma"])[None]

    # --- glare and reflections as from glasses ------------------------------------------------------------------
    if (cond["glare"] > 0).any():
        alpha = np.zeros((n, height, width), _F)
        for k in range(2):
            gx = (width - 1) / 2 + cond["glare_pos"][:, k, 0] * unit
            gy = (height - 1) / 2 + cond["glare_pos"][:, k, 1] * unit
            ca, sa = _c(np.cos(cond["glare_angle"][:, k])), _c(np.sin(cond["glare_angle"][:, k]))
            ddx, ddy = X - _c(gx), Y - _c(gy)
            across = (ddy * ca - ddx * sa) / _c(cond["glare_width"][:, k] * unit)
            along = (ddx * ca + ddy * sa) / _c(cond["glare_len"][:, k] * unit)
            alpha = np.maximum(alpha, np.exp(-0.5 * (across * across + along * along)))
        reflect = np.maximum(_upsample(cond["glare_noise"], size), 0) * _c(cond["glare_reflect"]) * _F(0.35)
        alpha = np.clip(alpha + reflect, 0, 1) * _c(cond["glare"])
        img += alpha[None] * (_c3(cond["glare_col"]) - img)

    # --- optics and sensor: blur, noise, quantisation, JPEG ----------------------------------------------------
    for i in np.nonzero((cond["blur"] > 0) | (cond["motion"] > 0))[0]:
        one = np.ascontiguousarray(img[:, i].transpose(1, 2, 0))
        if cond["blur"][i] > 0:
            one = cv2.GaussianBlur(one, (0, 0), float(cond["blur"][i] * unit), borderType=cv2.BORDER_REFLECT)
        if cond["motion"][i] > 0:
            one = cv2.filter2D(one, -1, _motion_kernel(cond["motion"][i] * unit, cond["motion_angle"][i]),
                               borderType=cv2.BORDER_REFLECT)
        img[:, i] = one.transpose(2, 0, 1)
    if cond["monochrome"].any():  # one preset per batch: all grey or none
        img[:] = np.tensordot(_LUMA, img, axes=1)[None]
    if (cond["noise"] > 0).any():
        noise = _noise_fields(cond["noise_seed"], (3, height, width))  # (N, 3, H, W)
        if cond["monochrome"].any():
            noise = np.repeat(noise[:, :1], 3, axis=1)
        img += noise.transpose(1, 0, 2, 3) * (_c(cond["noise"])[None] * (_F(0.6) + _F(0.6) * np.sqrt(np.clip(img, 0, 1))))
    out = np.ascontiguousarray(np.clip(img * 255 + _F(0.5), 0, 255).astype(np.uint8).transpose(1, 2, 3, 0))
    for i in np.nonzero(cond["jpeg"] > 0)[0]:
        ok, buf = cv2.imencode(".jpg", out[i, :, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(cond["jpeg"][i])])
        out[i] = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]

    # --- hard label mask at pixel centres -------------------------------------------------------------------
    inside = open_sd > 0
    mask = np.where(sd_pupil < 0, PUPIL, np.where(sd_iris < 0, IRIS, SCLERA)).astype(np.uint8)
    mask[(car_sd < 0) & (sd_iris >= 0)] = SKIN
    mask[~inside] = SKIN
    return out, mask


def _led_glints(lay: dict[str, np.ndarray], cond: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray,
                a_open: np.ndarray) -> np.ndarray:
    """(N, H, W) corneal reflections of the camera's LEDs, a ring around the camera axis: small sharp spots on the
    cornea, the cornea being a sphere of 0.62 eyeball radii (as for the room lights' highlights)."""
    glints = np.zeros_like(a_open)
    g, centre, radius = lay["g"], lay["centre"], lay["radius"]
    rc = 0.62 * radius
    sig = _c(0.035 * radius + 0.3)
    for k in range(int(cond["led_count"].max(initial=0))):
        phi = cond["led_phase"] + 2 * np.pi * k / np.maximum(cond["led_count"], 1)
        theta = cond["led_angle"]
        half = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), -np.cos(theta) - 1], 1)
        half /= np.linalg.norm(half, axis=1, keepdims=True)
        vis = np.clip(((half * g).sum(1) - 0.75) / 0.15, 0, 1) * cond["led_strength"] * (k < cond["led_count"])
        pos = centre + (radius - rc)[:, None] * g[:, :2] + rc[:, None] * half[:, :2]
        glints += np.exp(-((X - _c(pos[:, 0])) ** 2 + (Y - _c(pos[:, 1])) ** 2) / (2 * sig * sig)) * _c(vis)
    return glints * a_open


def _motion_kernel(length: float, angle_deg: float) -> np.ndarray:
    k = max(3, int(np.ceil(length)) | 1)
    kernel = np.zeros((k, k), np.float32)
    c = (k - 1) / 2
    dx, dy = np.cos(np.radians(angle_deg)) * length / 2, np.sin(np.radians(angle_deg)) * length / 2
    cv2.line(kernel, (int(round(c - dx)), int(round(c - dy))), (int(round(c + dx)), int(round(c + dy))), 1.0, 1,
             cv2.LINE_AA)
    return kernel / max(kernel.sum(), 1e-6)


# ----------------------------------------------------------------------------------------------- seeded ranges
def render_samples(domain: str | DomainPreset, n: int, size: tuple[int, int] = REF_SIZE, seed: int = 0,
                   start: int = 0, geometry: GeometryConfig | None = None, grey: bool = False) -> RenderedEyes:
    """Render samples ``start .. start+n-1`` of the seeded stream of ``domain``.

    Sample i always gets the same geometry (in every domain), materials and conditions, whatever ``start`` and
    ``n``: random streams are drawn per chunk of :data:`CHUNK` samples (see the module docstring).
    """
    if n < 1:
        raise UserError(f"n must be at least 1, got {n}")
    preset = get_preset(domain)
    geometry = geometry or default_geometry(preset.name)
    dom = domain_index(preset.name)
    batches = []
    stop = start + n
    for chunk in range(start // CHUNK, (stop - 1) // CHUNK + 1):
        params = sample_params(np.random.default_rng([seed, 0, chunk]), CHUNK, geometry)
        lo, hi = max(start, chunk * CHUNK) - chunk * CHUNK, min(stop, (chunk + 1) * CHUNK) - chunk * CHUNK
        batches.append(render_batch(params, preset, size, np.random.default_rng([seed, 2 + dom, chunk]),
                                    identity_rng=np.random.default_rng([seed, 1, chunk]), grey=grey,
                                    keep=slice(lo, hi)))
    return batches[0] if len(batches) == 1 else concat_batches(batches)


#: LPW's frame rate (its cameras record at about 95 frames per second).
LPW_FPS = 95.0


def _gaze_path(rng: np.random.Generator, frames: int, fps: float, geometry: GeometryConfig) -> np.ndarray:
    """(frames, 2) pitch/yaw in radians: fixations of 0.2-0.6 s with a little drift, joined by saccades of 40 ms
    (a cosine ramp between fixation targets)."""
    path = np.empty((frames, 2))
    low = np.radians([geometry.gaze_pitch[0], geometry.gaze_yaw[0]])
    high = np.radians([geometry.gaze_pitch[1], geometry.gaze_yaw[1]])
    here = rng.uniform(low, high)
    t = 0
    while t < frames:
        hold = max(1, int(rng.uniform(0.2, 0.6) * fps))
        drift = np.cumsum(rng.normal(0, np.radians(0.08), (hold, 2)), axis=0)
        path[t:t + hold] = (here + drift)[: frames - t]
        t += hold
        target = rng.uniform(low, high)
        move = max(1, int(0.04 * fps))
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(1, move + 1) / move)
        path[t:t + move] = (here + ramp[:, None] * (target - here))[: max(0, frames - t)]
        t += move
        here = target
    return path


def render_sequence(domain: str | DomainPreset, frames: int, size: tuple[int, int], seed: int = 0,
                    fps: float = LPW_FPS, geometry: GeometryConfig | None = None) -> RenderedEyes:
    """One eye over ``frames`` frames at ``fps``: fixations, saccades, a blink every 2-4 s (150 ms) and a slowly
    changing pupil size, with one set of materials and conditions (a recording). The same seed gives the same eye
    and the same movements in every domain."""
    if frames < 1:
        raise UserError(f"a sequence needs at least 1 frame, got {frames}")
    preset = get_preset(domain)
    geometry = geometry or default_geometry(preset.name)
    rng = np.random.default_rng([seed, 7, 0])
    params = sample_params(rng, 1, geometry).subset(np.zeros(frames, int)).copy()
    params.gaze = _gaze_path(rng, frames, fps, geometry)
    time = np.arange(frames) / fps
    params.pupil_angle = params.pupil_angle * (1 + 0.15 * np.sin(2 * np.pi * time / rng.uniform(2, 5)
                                                                  + rng.uniform(0, 2 * np.pi)))
    params.blink = np.ones(frames)
    start, length = rng.uniform(0.3, 1.5) * fps, max(2, int(0.15 * fps))
    while start < frames:
        index = np.arange(int(start), min(frames, int(start) + length))
        params.blink[index] = 1 - 0.97 * np.sin(np.pi * (index - int(start) + 0.5) / length)
        start += rng.uniform(2, 4) * fps
    return render_batch(params, preset, size, np.random.default_rng([seed, 8, domain_index(preset.name)]),
                        identity_rng=np.random.default_rng([seed, 9, 0]), shared=True)
