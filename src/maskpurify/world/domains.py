"""Domain presets of the procedural eye world and the geometry sampling ranges.

Every appearance knob of the renderer lives in :class:`DomainPreset`, so the look of a domain can be tuned
from a config file (``--set preset.noise_sigma=[0.0,0.05]``) without touching the renderer. Ranges are
``(low, high)`` pairs sampled uniformly per image; probabilities are per image.

* ``synthetic``: the UnityEyes look: indoor, one soft frontal light, clean, no noise, no blur, no compression.
  This is the style the purifier aims at.
* ``wild``: the real-world look: mixed outdoor light from varying directions with strong shading gradients,
  hard cast shadows, colour casts, over/under-exposure, gamma and contrast changes, glare and reflections as
  from glasses, sensor noise, defocus and motion blur, JPEG compression.

Both domains share the geometry distribution (:class:`GeometryConfig`) and the material (identity)
distribution (skin tone, iris colour and texture): they differ in imaging conditions only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from maskpurify.config import check_ranges
from maskpurify.errors import UserError

Range = tuple[float, float]


@dataclass
class GeometryConfig:
    """Sampling ranges of the eye geometry; angles in degrees, lengths in units of a 60x36 reference image.

    Gaze follows MPIIGaze: pitch > 0 looks up, yaw > 0 looks towards the image's left.
    """

    gaze_pitch: Range = (-25.0, 15.0)
    gaze_yaw: Range = (-30.0, 30.0)
    head_pitch: Range = (-20.0, 20.0)
    head_yaw: Range = (-20.0, 20.0)
    #: In-plane tilt of the eye (degrees).
    roll: Range = (-6.0, 6.0)
    #: Offset of the eyeball centre from the image centre (reference pixels).
    shift_x: Range = (-2.5, 2.5)
    shift_y: Range = (-1.5, 1.5)
    #: Eyeball radius (reference pixels).
    eyeball_radius: Range = (12.5, 15.0)
    #: Half distance between the eye corners, as a multiple of the eyeball radius.
    corner_half_width: Range = (1.15, 1.35)
    #: Angular radius of the iris and of the pupil on the eyeball (degrees).
    iris_angle: Range = (26.0, 31.0)
    pupil_angle: Range = (6.5, 14.0)
    #: Upper/lower eyelid opening above/below the corner line at straight gaze, multiple of the eyeball radius.
    upper_lid: Range = (0.5, 0.75)
    lower_lid: Range = (0.3, 0.5)
    #: How strongly the upper (lower) lid follows the eye-in-head pitch (1 = moves with the iris top).
    upper_follow: float = 0.9
    lower_follow: float = 0.35
    #: Probability of a half-blink and its remaining opening fraction.
    blink_prob: float = 0.08
    blink_open: Range = (0.3, 0.65)
    #: Eyelid crease height above the upper lid (multiple of the eyeball radius).
    crease_gap: Range = (0.25, 0.5)

    def validate(self) -> None:
        check_ranges(self, "geometry")
        if self.iris_angle[1] + max(abs(self.gaze_yaw[0]), abs(self.gaze_yaw[1])) >= 85:
            raise UserError("geometry: iris_angle + |gaze_yaw| must stay below 85 degrees (iris must be visible)")
        if self.pupil_angle[1] >= self.iris_angle[0]:
            raise UserError("geometry.pupil_angle must stay below geometry.iris_angle")


@dataclass
class DomainPreset:
    """Every appearance knob of one domain. Materials (first block) are shared by default by both domains."""

    name: str = "synthetic"
    # --- materials (identity): sampled from the shared identity stream -------------------------------
    #: Skin tone: 0 = light, 1 = dark (interpolated between two reference colours).
    skin_tone: Range = (0.0, 1.0)
    skin_texture: Range = (0.03, 0.09)
    #: Weights of iris colour families: brown, hazel, green, blue, grey.
    iris_family_weights: tuple[float, float, float, float, float] = (0.4, 0.15, 0.12, 0.2, 0.13)
    iris_texture: Range = (0.12, 0.3)
    sclera_tint: Range = (0.0, 0.12)
    lash_strength: Range = (0.45, 0.9)
    #: Darkening of the iris towards its rim (the limbal ring), as a fraction of the iris colour.
    limbus: Range = (0.4, 0.75)
    # --- lighting ---------------------------------------------------------------------------------------
    ambient: Range = (0.5, 0.6)
    #: Key light intensity and direction spread (degrees away from the camera axis).
    key_intensity: Range = (0.45, 0.55)
    key_angle: Range = (0.0, 12.0)
    fill_prob: float = 0.0
    fill_intensity: Range = (0.2, 0.6)
    #: Per-channel colour gain jitter of each light (colour temperature).
    light_colour_jitter: float = 0.0
    # --- cast shadows -----------------------------------------------------------------------------------
    shadow_prob: float = 0.0
    shadow_darkness: Range = (0.4, 0.75)
    #: Softness of shadow edges in reference pixels.
    shadow_softness: Range = (0.3, 1.5)
    # --- camera and exposure ------------------------------------------------------------------------------
    #: Auto-exposure scales each image to a mean of 0.42 before ``exposure_ev`` (as a camera's metering would).
    auto_exposure: bool = False
    exposure_ev: Range = (-0.08, 0.08)
    gamma: Range = (1.0, 1.0)
    contrast: Range = (1.0, 1.0)
    #: Global per-channel white-balance gains jitter.
    white_balance: float = 0.0
    # --- glare / reflections (glasses) ------------------------------------------------------------------
    glare_prob: float = 0.0
    glare_strength: Range = (0.3, 0.8)
    # --- sensor -------------------------------------------------------------------------------------------
    noise_sigma: Range = (0.0, 0.0)
    blur_prob: float = 0.0
    blur_sigma: Range = (0.4, 1.2)
    motion_blur_prob: float = 0.0
    motion_blur_length: Range = (2.0, 5.0)
    jpeg_prob: float = 0.0
    jpeg_quality: Range = (20.0, 75.0)

    def validate(self) -> None:
        check_ranges(self, "preset")
        if sum(self.iris_family_weights) <= 0 or min(self.iris_family_weights) < 0:
            raise UserError("preset.iris_family_weights must be non-negative with a positive sum")
        if not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100:
            raise UserError("preset.jpeg_quality must lie within [1, 100]")


def synthetic_preset() -> DomainPreset:
    """UnityEyes-like: one uniform soft frontal light, clean."""
    return DomainPreset(name="synthetic")


def wild_preset() -> DomainPreset:
    """Real-world-like: outdoor mixed light, shadows, casts, glare, noise, blur, JPEG."""
    return DomainPreset(
        name="wild",
        ambient=(0.1, 0.4),
        key_intensity=(0.6, 1.4),
        key_angle=(25.0, 70.0),
        fill_prob=0.6,
        fill_intensity=(0.15, 0.6),
        light_colour_jitter=0.25,
        shadow_prob=0.6,
        auto_exposure=True,
        exposure_ev=(-1.1, 0.9),
        gamma=(0.65, 1.5),
        contrast=(0.55, 1.5),
        white_balance=0.2,
        glare_prob=0.5,
        glare_strength=(0.25, 0.7),
        noise_sigma=(0.01, 0.06),
        blur_prob=0.55,
        blur_sigma=(0.4, 1.3),
        motion_blur_prob=0.25,
        motion_blur_length=(2.0, 5.0),
        jpeg_prob=0.8,
        jpeg_quality=(20.0, 75.0),
    )


PRESETS = {"synthetic": synthetic_preset, "wild": wild_preset}
DOMAINS = tuple(PRESETS)


def get_preset(domain: str | DomainPreset) -> DomainPreset:
    """A fresh preset by name (or the given preset itself, validated)."""
    if isinstance(domain, DomainPreset):
        domain.validate()
        return domain
    if domain not in PRESETS:
        raise UserError(f"unknown domain '{domain}' (choose from {', '.join(DOMAINS)})")
    preset = PRESETS[domain]()
    preset.validate()
    return preset


def domain_index(name: str) -> int:
    """Stable index of a domain name (used to derive its random stream); unknown names hash stably."""
    if name in DOMAINS:
        return DOMAINS.index(name)
    return 100 + sum((i + 1) * ord(c) for i, c in enumerate(name)) % 10_000


__all__ = ["DOMAINS", "DomainPreset", "GeometryConfig", "PRESETS", "RenderConfig", "domain_index", "get_preset",
           "synthetic_preset", "wild_preset"]


@dataclass
class RenderConfig:
    """What ``maskpurify render`` resolves from defaults, ``--config`` and ``--set``: geometry ranges and both
    presets (e.g. ``--set wild.noise_sigma=[0.0,0.08]`` or ``--set geometry.gaze_yaw=[-20,20]``)."""

    geometry: GeometryConfig = dataclasses.field(default_factory=GeometryConfig)
    synthetic: DomainPreset = dataclasses.field(default_factory=synthetic_preset)
    wild: DomainPreset = dataclasses.field(default_factory=wild_preset)

    def preset(self, domain: str) -> DomainPreset:
        if domain not in DOMAINS:
            raise UserError(f"unknown domain '{domain}' (choose from {', '.join(DOMAINS)})")
        preset = getattr(self, domain)
        preset.name = domain
        preset.validate()
        return preset
