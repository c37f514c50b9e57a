"""The report's text sections."""

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
