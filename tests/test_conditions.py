import numpy as np

from maskpurify.evaluation.conditions import CONDITIONS, render_condition
from maskpurify.world.domains import synthetic_preset
from maskpurify.world.renderer import render_samples

SIZE, N, SEED = (36, 60), 32, 5


def _images(name: str) -> np.ndarray:
    return render_condition(CONDITIONS[name], N, SIZE, SEED).astype(np.float64)


def _detail(images: np.ndarray) -> float:
    """Mean absolute difference between horizontal neighbours: noise and sharp edges raise it, blur lowers it."""
    return float(np.abs(np.diff(images, axis=2)).mean())


def test_every_condition_renders_the_same_number_of_rgb_eyes_and_differs_from_wild():
    wild = _images("wild")
    for name, condition in CONDITIONS.items():
        images = render_condition(condition, N, SIZE, SEED)
        assert images.shape == (N, *SIZE, 3) and images.dtype == np.uint8
        if name != "wild":
            assert np.abs(images.astype(np.float64) - wild).mean() > 2.0, name


def test_conditions_do_what_they_say():
    wild = _images("wild")
    synthetic = render_samples(synthetic_preset(), N, SIZE, SEED).images.astype(np.float64)
    mono = _images("monochrome")
    assert np.array_equal(mono[..., 0], mono[..., 1]) and np.array_equal(mono[..., 1], mono[..., 2])
    assert _images("dark").mean() < 0.75 * wild.mean()
    assert _detail(_images("low resolution")) < _detail(wild)
    # the milder camera sits closer to the synthetic rendering of the same eyes than the wild preset does
    assert np.abs(_images("indoor") - synthetic).mean() < np.abs(wild - synthetic).mean()
    # harder JPEG and stronger blur smooth the eye out, the stronger noise adds pixel-level detail back: either
    # way the picture is not the wild one's
    assert abs(_detail(_images("harsh")) - _detail(wild)) > 0.5
    # a near-white reflection over every eye lifts both the bright and the dark end of each picture
    glare = _images("glare")
    for q in (1, 99):
        assert (np.percentile(glare.reshape(N, -1), q, axis=1).mean()
                > np.percentile(wild.reshape(N, -1), q, axis=1).mean() + 3), q
