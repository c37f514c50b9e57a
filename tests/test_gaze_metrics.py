import json

import numpy as np
import pytest

from maskpurify.metrics.gaze import binned_errors, error_stats, gaze_report, write_gaze_report
from maskpurify.metrics.segmentation import confusion_matrix, iou_from_confusion, pupil_centre_errors, \
    segmentation_summary


def test_a_ten_degree_rotation_is_ten_degrees():
    true = np.radians([[0.0, 0.0], [5.0, -20.0], [-10.0, 30.0]])
    pred = true + np.radians([[10.0, 0.0], [-10.0, 0.0], [10.0, 0.0]])  # pure pitch offsets
    report, errors = gaze_report(pred, true)
    np.testing.assert_allclose(errors, 10.0, atol=1e-9)
    assert report["angular_error"]["mean_deg"] == pytest.approx(10.0)
    yaw_only = gaze_report(np.radians([[0.0, 10.0]]), np.zeros((1, 2)))[1]
    assert yaw_only[0] == pytest.approx(10.0)


def test_shares_within_thresholds_and_bins():
    errors = np.array([1.0, 4.9, 5.0, 6.0, 7.5, 20.0])
    stats = error_stats(errors)
    assert stats["within_5deg"] == pytest.approx(3 / 6)
    assert stats["within_7deg"] == pytest.approx(4 / 6)
    assert stats["median_deg"] == pytest.approx(5.5)
    bins = binned_errors(np.array([1.0, 3.0, 10.0]), np.array([-7.0, -6.0, 12.0]), width_deg=5)
    assert [(b["lo_deg"], b["n"], b["mean_deg"]) for b in bins] == [(-10.0, 2, 2.0), (10.0, 1, 10.0)]


def test_report_json_holds_the_command_and_plot_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["maskpurify", "evaluate-gaze", "--model", "m", "--data", "d"])
    rng = np.random.default_rng(0)
    true = rng.normal(0, 0.3, (200, 2))
    report, errors = gaze_report(true + rng.normal(0, 0.03, true.shape), true, extra={"data": "d"})
    json_path, png = write_gaze_report(tmp_path, report, errors, true)
    saved = json.loads(json_path.read_text())
    assert saved["command"] == "maskpurify evaluate-gaze --model m --data d"
    assert saved["by_pitch"] and saved["by_yaw"] and saved["data"] == "d"
    assert png.stat().st_size > 1000


def _masks():
    true = np.zeros((2, 20, 30), np.uint8)
    true[:, 4:16, 5:25] = 1
    true[:, 6:14, 11:19] = 2
    true[:, 8:12, 13:17] = 3
    pred = true.copy()
    pred[1, 8:12, 13:17] = 2
    pred[1, 8:12, 15:19] = 3   # pupil shifted right by 2 px in image 1
    return pred, true


def test_iou_on_hand_made_masks():
    pred, true = _masks()
    cm = confusion_matrix(pred, true, 4)
    iou = iou_from_confusion(cm)
    # pupil: image 0 perfect (16 px); image 1 overlap 2x4=8 of union 24 -> (16 + 8) / (16 + 24)
    assert iou[3] == pytest.approx(24 / 40)
    assert iou[1] == pytest.approx(1.0)
    summary = segmentation_summary(pred, true, pupil_centers=np.array([[14.5, 9.5], [14.5, 9.5]]))
    assert summary["iou"]["pupil"] == pytest.approx(0.6)
    assert summary["miou"] == pytest.approx(np.mean(iou[1:]))
    assert summary["pupil_centre_vs_mask"]["mean_px"] == pytest.approx(1.0)
    assert summary["pupil_centre_vs_label"]["median_px"] == pytest.approx(1.0)


def test_missing_pupil_is_nan():
    pred, true = _masks()
    pred[0][pred[0] == 3] = 2
    errors = pupil_centre_errors(pred, true_masks=true)
    assert np.isnan(errors[0]) and errors[1] == pytest.approx(2.0)


def test_evaluate_cli_end_to_end(tmp_path, monkeypatch):
    from maskpurify.cli import main
    from maskpurify.nets.gaze import GazeNetConfig, build_gaze_net, save_gaze_net
    from maskpurify.nets.segmenter import SegmenterConfig, build_segmenter, save_segmenter
    from maskpurify.world.dataset import write_dataset

    data = write_dataset(tmp_path / "eyes", "synthetic", n=24, size=(36, 60), seed=5, progress=False)
    save_gaze_net(tmp_path / "gaze", build_gaze_net(GazeNetConfig()).eval())
    save_segmenter(tmp_path / "seg", build_segmenter(SegmenterConfig(base_channels=4)).eval())
    argv = ["evaluate-gaze", "--model", str(tmp_path / "gaze"), "--data", str(data), "--out", str(tmp_path / "ev")]
    monkeypatch.setattr("sys.argv", ["maskpurify", *argv])
    assert main(argv) == 0
    report = json.loads((tmp_path / "ev" / "gaze_eval.json").read_text())
    assert report["command"].startswith("maskpurify evaluate-gaze --model")
    assert report["angular_error"]["n"] == 24 and (tmp_path / "ev" / "gaze_eval.png").is_file()
    argv = ["evaluate-segmenter", "--model", str(tmp_path / "seg"), "--data", str(data), "--out", str(tmp_path / "ev")]
    assert main(argv) == 0
    assert "miou" in json.loads((tmp_path / "ev" / "segmenter_eval.json").read_text())
    assert main(["evaluate-gaze", "--model", str(tmp_path / "missing"), "--data", str(data)]) == 2
