import json

import pytest

import torch

from maskpurify.cli import main
from maskpurify.evaluation.conditions import CONDITIONS
from maskpurify.evaluation.experiment import CONDITION_METHODS
from maskpurify.nets.gaze import GazeNetConfig, build_gaze_net, save_gaze_net
from maskpurify.nets.purifier import Purifier, PurifierConfig, save_purifier
from maskpurify.nets.segmenter import build_segmenter, save_segmenter


def _weights(root):
    torch.manual_seed(0)
    save_gaze_net(root / "gaze", build_gaze_net())
    save_gaze_net(root / "simgan_gaze", build_gaze_net(), {"trained": {"steps": 10, "batch_size": 4}})
    save_gaze_net(root / "gaze_from_labels", build_gaze_net(GazeNetConfig(inputs="labels")))
    save_gaze_net(root / "gaze_randomised", build_gaze_net())
    save_segmenter(root / "segmenter", build_segmenter())
    plain = {"head": "subpixel", "gaze_prior": None}  # small and quick: no gaze prior
    save_purifier(root / "purifier", Purifier(PurifierConfig(**plain)), {"trained": {"steps": 10, "batch_size": 4}})
    save_purifier(root / "purifier_nomask", Purifier(PurifierConfig(use_mask=False, **plain)))
    (root / "ablations").mkdir()
    save_purifier(root / "ablations" / "purifier_no_task", Purifier(PurifierConfig(**plain)))


def test_evaluate_writes_report_and_reproduces(tmp_path, capsys):
    weights = tmp_path / "weights"
    weights.mkdir()
    _weights(weights)
    args = ["evaluate", "--out", str(tmp_path / "r1"), "--set", f"weights={weights}", "--set", "test.n=24",
            "--set", "test.reference_n=24", "--set", "kid_subsets=2", "--set", "grid_examples=3", "--set", "conditions.n=12"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    for name in ("raw", "mask alone", "reinhard", "histogram", "simgan", "ours, no mask", "ours -task", "ours",
                 "oracle: mask alone", "oracle: ours, exact masks", "control: grey image", "control: clean synthetic", "domain-randomised estimator",
                 "domain-randomised estimator on ours"):
        assert f"\n{name} " in printed or f"\n{name}  " in printed
    assert "simgan-reverse: skipped" in printed
    report = (tmp_path / "r1" / "report.html").read_text()
    assert "Ablations" in report and "examples_worst.png" in report
    first = json.loads((tmp_path / "r1" / "results.json").read_text())
    assert first["command"].startswith("maskpurify evaluate") or "evaluate" in first["command"]
    assert {r["method"] for r in first["rows"]} >= {"synthetic (floor)", "raw", "ours"}
    rows = {r["method"]: r for r in first["rows"]}
    # the headline row uses inferred masks; exact masks only in oracle rows
    assert rows["ours"]["masks"] == "inferred" and rows["reinhard"]["masks"] == "inferred"
    assert rows["ours, no mask"]["masks"] is None and rows["raw"]["masks"] is None
    assert {r["method"] for r in first["rows"] if r.get("masks") == "exact"} == {"oracle: mask alone",
                                                                               "oracle: ours, exact masks"}
    assert all(r["group"] == "oracle" for r in first["rows"] if r.get("masks") == "exact")
    assert rows["control: grey image"]["inputs"] == "grey"
    assert 0 <= first["segmenter"]["wild"]["miou"] <= 1
    raw = rows["raw"]
    assert abs(raw["gap_closure"]) < 1e-9
    assert raw["pupil_shift_px"] is None or raw["pupil_shift_px"] >= 0  # null when no pupil is found
    # region colours: the clean synthetic twins sit far closer to the synthetic set's colours than wild eyes do
    twins = rows["control: clean synthetic"]["region_colour"]
    assert twins["skin"]["delta_e_to_synthetic"] < raw["region_colour"]["skin"]["delta_e_to_synthetic"]
    assert "Style, region by region" in report
    # the headline's controls again under every condition outside the wild preset, with its own floor
    unseen = first["unseen_conditions"]
    assert unseen["n"] == 12 and set(unseen["conditions"]) == set(CONDITIONS) and unseen["floor_deg"] > 0
    for condition in unseen["conditions"].values():
        assert set(condition["mean_error_deg"]) == set(CONDITION_METHODS)
        assert 0 <= condition["segmenter_miou"] <= 1
    assert "Conditions the methods never saw" in report and "conditions outside the wild preset" in printed
    assert 'src="conditions.png"' in report and (tmp_path / "r1" / "conditions.png").is_file()
    assert unseen["conditions"]["harsh"]["mean_error_deg"]["raw"] != unseen["conditions"]["wild"]["mean_error_deg"]["raw"]

    # the same command again gives the same numbers
    args[2] = str(tmp_path / "r2")
    assert main(args) == 0
    second = json.loads((tmp_path / "r2" / "results.json").read_text())
    for a, b in zip(first["rows"], second["rows"]):
        assert a["gaze"]["mean_deg"] == b["gaze"]["mean_deg"]
        if "kid" in a:
            assert a["kid"] == pytest.approx(b["kid"], rel=1e-6)
    assert first["unseen_conditions"] == second["unseen_conditions"]


def test_evaluate_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "r"
    out.mkdir()
    (out / "results.json").write_text("{}")
    assert main(["evaluate", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
