"""Conditions no network was tuned on: eyes rendered outside the wild preset, the control for fitting the preset.

The purifier trains on wild renders (as unlabelled images) and every recipe was tuned on the wild preset, so a
method that fits the preset rather than real eyes scores well on wild eyes and falls apart here. Each condition
renders the same eyes (one seed, one geometry) with the wild preset pushed past its ranges, a milder camera, or an
image operation the renderer does not make; the experiment scores its methods and controls on every one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from maskpurify.world.domains import DomainPreset, synthetic_preset, wild_preset
from maskpurify.world.renderer import render_samples


def _indoor() -> DomainPreset:
    # named "wild" so that it draws the wild domain's random stream of lighting and sensor conditions
    return dataclasses.replace(
        synthetic_preset(), name="wild", ambient=(0.3, 0.5), key_intensity=(0.5, 1.0), key_angle=(10.0, 40.0),
        fill_prob=0.5, light_colour_jitter=0.1, auto_exposure=True, exposure_ev=(-0.5, 0.5), white_balance=0.08,
        noise_sigma=(0.005, 0.02), blur_prob=0.3, blur_sigma=(0.4, 0.8), jpeg_prob=0.5, jpeg_quality=(60.0, 90.0))


def _harsh() -> DomainPreset:
    return dataclasses.replace(wild_preset(), noise_sigma=(0.06, 0.12), blur_prob=0.9, blur_sigma=(1.3, 2.0),
                               jpeg_quality=(5.0, 20.0), contrast=(0.4, 0.6))


def _dark() -> DomainPreset:
    return dataclasses.replace(wild_preset(), exposure_ev=(-2.2, -1.2), noise_sigma=(0.04, 0.1))


def _glare() -> DomainPreset:
    return dataclasses.replace(wild_preset(), glare_prob=1.0, glare_strength=(0.7, 1.0))


def half_resolution(images: np.ndarray) -> np.ndarray:
    """Eyes seen at half resolution and scaled back up, as a face tracker's crop of a distant face would be."""
    h, w = images.shape[1:3]
    return np.stack([cv2.resize(cv2.resize(im, (w // 2, h // 2), interpolation=cv2.INTER_AREA), (w, h),
                                interpolation=cv2.INTER_LINEAR) for im in images])


@dataclass(frozen=True)
class Condition:
    description: str
    preset: Callable[[], DomainPreset] = wild_preset
    #: rendered grey and fed as RGB (a monochrome camera)
    grey: bool = False
    #: an image operation after rendering
    after: Callable[[np.ndarray], np.ndarray] | None = None


CONDITIONS: dict[str, Condition] = {
    "wild": Condition("the wild preset itself, on other eyes than the test set's (the reference)"),
    "indoor": Condition("milder than wild: soft light, slight casts, light noise and JPEG, no glare or shadow",
                        _indoor),
    "harsh": Condition("wild past its ranges: noise sigma 0.06-0.12, blur sigma 1.3-2.0 on 90% of eyes, JPEG quality "
                       "5-20, contrast 0.4-0.6", _harsh),
    "dark": Condition("wild under-exposed by 1.2-2.2 EV, with noise sigma 0.04-0.1", _dark),
    "glare": Condition("a glasses reflection on every eye, strength 0.7-1.0 (wild: half the eyes, 0.25-0.7)",
                       _glare),
    "monochrome": Condition("wild rendered grey (a monochrome camera), fed as RGB; the gaze estimator reads grey, so "
                            "only the segmenter and the purifier see a change", grey=True),
    "low resolution": Condition("wild at 18x30, scaled back up to 36x60", after=half_resolution),
}


def render_condition(condition: Condition, n: int, size: tuple[int, int], seed: int) -> np.ndarray:
    """The n eyes of ``seed`` under ``condition``: uint8 (n,H,W,3). Every condition shows the same eyes (gaze)."""
    images = render_samples(condition.preset(), n, size, seed, grey=condition.grey).images
    if condition.grey:
        images = np.repeat(images, 3, axis=-1)
    return condition.after(images) if condition.after else images
