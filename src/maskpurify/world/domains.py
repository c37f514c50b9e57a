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

The near-infrared eye-camera world (LPW's head-mounted cameras) has two more presets over its own geometry
(:func:`nir_geometry`: one eye in close-up from below, a wider gaze and pupil-size range):

* ``nir-synthetic``: monochrome near-IR materials (the iris reflects, skin is bright whatever its tone), the
  camera's LEDs as the only light with their corneal glints, a dark pupil, clean: the style to reach.
* ``nir-wild``: the stand-in for LPW's hard frames: sunlight (strong IR from varying directions, cast shadows,
  over/under-exposure), reflections on glasses, mascara, partial lid occlusion, motion blur, defocus, low
  contrast, sensor noise and video compression.
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
    # --- near-infrared eye camera (off in the eye world) --------------------------------------------------
    #: near-IR materials and a monochrome sensor (images stay 3-channel, R = G = B, as LPW's videos are)
    monochrome: bool = False
    #: the camera's IR LEDs: how many, their angle off the camera axis (degrees) and their glints' strength
    led_count: int = 0
    led_angle: Range = (20.0, 35.0)
    led_strength: Range = (0.8, 1.0)
    #: mascara: extra lash darkness and thickness
    mascara_prob: float = 0.0
    mascara: Range = (0.3, 0.9)
    #: partial lid occlusion: the upper lid lowered to this fraction of its opening (labels follow it)
    lid_droop_prob: float = 0.0
    lid_droop: Range = (0.45, 0.8)

    def validate(self) -> None:
        check_ranges(self, "preset")
        if sum(self.iris_family_weights) <= 0 or min(self.iris_family_weights) < 0:
            raise UserError("preset.iris_family_weights must be non-negative with a positive sum")
        if not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100:
            raise UserError("preset.jpeg_quality must lie within [1, 100]")
        if not 0 <= self.led_count <= 8:
            raise UserError(f"preset.led_count must lie in 0..8, got {self.led_count}")


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


def nir_geometry() -> GeometryConfig:
    """A head-mounted eye camera: one eye filling the frame seen from below, tilted, with a wider gaze range and
    a larger pupil-size range than the desk-camera eyes."""
    return GeometryConfig(gaze_pitch=(-10.0, 30.0), gaze_yaw=(-35.0, 35.0), head_pitch=(15.0, 30.0),
                          head_yaw=(-12.0, 12.0), roll=(-15.0, 15.0), shift_x=(-5.0, 5.0), shift_y=(-2.0, 4.0),
                          eyeball_radius=(17.0, 21.0), corner_half_width=(1.15, 1.3), pupil_angle=(7.0, 20.0),
                          upper_lid=(0.6, 0.85), lower_lid=(0.4, 0.6), blink_prob=0.05)


def _nir_materials(name: str) -> DomainPreset:
    """Near-IR materials and the LED ring; skin tone and iris colour hardly matter in near-IR."""
    return DomainPreset(name=name, monochrome=True, led_count=4, lash_strength=(0.3, 0.7), ambient=(0.25, 0.35),
                        key_intensity=(0.65, 0.8), key_angle=(0.0, 6.0))


def nir_synthetic_preset() -> DomainPreset:
    """The clean near-IR eye camera: LED light only, glints, no noise, no blur."""
    return _nir_materials("nir-synthetic")


def nir_wild_preset() -> DomainPreset:
    """LPW's hard frames: sunlight, glasses, mascara, drooping lids, blur, defocus, low contrast, noise."""
    return dataclasses.replace(
        _nir_materials("nir-wild"),
        ambient=(0.1, 0.6), key_intensity=(0.5, 1.6), key_angle=(10.0, 70.0), fill_prob=0.5,
        fill_intensity=(0.2, 0.8), shadow_prob=0.5, auto_exposure=True, exposure_ev=(-1.0, 0.8), gamma=(0.7, 1.4),
        contrast=(0.45, 1.2), glare_prob=0.4, glare_strength=(0.2, 0.6), noise_sigma=(0.01, 0.06),
        blur_prob=0.5, blur_sigma=(0.4, 1.4), motion_blur_prob=0.3, motion_blur_length=(2.0, 6.0), jpeg_prob=0.5,
        jpeg_quality=(30.0, 80.0), mascara_prob=0.35, lid_droop_prob=0.25,
    )


PRESETS = {"synthetic": synthetic_preset, "wild": wild_preset, "nir-synthetic": nir_synthetic_preset,
           "nir-wild": nir_wild_preset}
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


def default_geometry(domain: str) -> GeometryConfig:
    """The geometry a domain's world draws from: the near-IR camera's for ``nir-*`` domains, else the eye world's."""
    return nir_geometry() if domain.startswith("nir") else GeometryConfig()


#: The working size of the near-IR world: LPW's 4:3 frames at a tenth of their 640x480 (1 px here = 10 px there).
NIR_SIZE = (48, 64)


def domain_index(name: str) -> int:
    """Stable index of a domain name (used to derive its random stream); unknown names hash stably."""
    if name in DOMAINS:
        return DOMAINS.index(name)
    return 100 + sum((i + 1) * ord(c) for i, c in enumerate(name)) % 10_000


__all__ = ["DOMAINS", "DomainPreset", "GeometryConfig", "NIR_SIZE", "PRESETS", "RenderConfig", "default_geometry",
           "domain_index", "get_preset", "nir_geometry", "nir_synthetic_preset", "nir_wild_preset",
           "synthetic_preset", "wild_preset"]


@dataclass
class RenderConfig:
    """What ``maskpurify render`` resolves from defaults, ``--config`` and ``--set``: geometry ranges and the
    presets (e.g. ``--set wild.noise_sigma=[0.0,0.08]``, ``--set geometry.gaze_yaw=[-20,20]``; the near-IR world's
    as ``nir_geometry.*``, ``nir_synthetic.*``, ``nir_wild.*``)."""

    geometry: GeometryConfig = dataclasses.field(default_factory=GeometryConfig)
    synthetic: DomainPreset = dataclasses.field(default_factory=synthetic_preset)
    wild: DomainPreset = dataclasses.field(default_factory=wild_preset)
    nir_geometry: GeometryConfig = dataclasses.field(default_factory=nir_geometry)
    nir_synthetic: DomainPreset = dataclasses.field(default_factory=nir_synthetic_preset)
    nir_wild: DomainPreset = dataclasses.field(default_factory=nir_wild_preset)

    def preset(self, domain: str) -> DomainPreset:
        if domain not in DOMAINS:
            raise UserError(f"unknown domain '{domain}' (choose from {', '.join(DOMAINS)})")
        preset = getattr(self, domain.replace("-", "_"))
        preset.name = domain
        preset.validate()
        return preset

    def geometry_for(self, domain: str) -> GeometryConfig:
        """The geometry ranges of ``domain``'s world."""
        return self.nir_geometry if domain.startswith("nir") else self.geometry
