"""``adain-train compare``: pair-by-pair wins between two evaluations and the shipping rule."""

from __future__ import annotations

import json

import pytest

from training import cli
from training.compare import (COLOUR_GAP_SLACK, CONTENT_CORR_SLACK, LAYOUT_CORR_SLACK, SPREAD_SLACK, pair_wins,
                              read_result, ship_verdict, style_means)

MEANS = {"style_gap_ratio": 0.2, "gram_gap": 0.22, "colour_gap": 0.27, "content_corr": 0.48, "spread": 0.92,
         "recon_psnr": 13.0, "seconds_per_image": 1.0}


def _result(gram: list[float], per_photo: list[float], **means: float) -> dict:
    """A model's row as ``adain-train evaluate`` writes it: 2 photos × 2 paintings, gram_gap given per pair."""
    names = [(c, s) for c in ("a.jpg", "b.jpg") for s in ("x.jpg", "y.jpg")]
    pairs = [{"content": c, "style": s, "style_gap_ratio": 0.2, "gram_gap": g, "colour_gap": 0.3,
              "content_corr": 0.5} for (c, s), g in zip(names, gram)]
    return {"pairs": pairs, "spread": per_photo, "means": {**MEANS, **means}, "model": "m.safetensors"}


def _write(path, **models: dict) -> str:
    path.write_text(json.dumps({"settings": {"size": 256, "style_size": 256},
                                "models": {"content (reference)": {"pairs": [], "means": MEANS}, **models}}))
    return str(path)


def test_wins_are_counted_pair_by_pair_matched_by_names_and_ties_do_not_count():
    base = _result([0.3, 0.3, 0.3, 0.3], [0.9, 0.9])
    new = _result([0.2, 0.3, 0.4, 0.1], [0.95, 0.85])
    new["pairs"].reverse()  # matched by content and style names, not by position
    wins = pair_wins(base, new)
    assert wins["gram_gap"] == (2, 4)  # lower is better; the tie is no win
    assert wins["content_corr"] == (0, 4) and wins["colour_gap"] == (0, 4)
    assert wins["spread"] == (1, 2)


def test_the_shipping_rule_names_each_number_that_fails():
    assert ship_verdict(MEANS, {**MEANS, "gram_gap": 0.2, "colour_gap": 0.25, "spread": 0.93,
                                "content_corr": MEANS["content_corr"] - CONTENT_CORR_SLACK / 2}) == []
    # colour within its slack of the base's still ships (the means swing by more between checkpoints)
    assert ship_verdict(MEANS, {**MEANS, "gram_gap": 0.2, "spread": 0.93,
                                "colour_gap": MEANS["colour_gap"] + COLOUR_GAP_SLACK / 2}) == []
    # spread within its slack too (single checkpoints of one recipe swing by 0.016)
    assert ship_verdict(MEANS, {**MEANS, "gram_gap": 0.2, "spread": MEANS["spread"] - SPREAD_SLACK / 2}) == []
    fails = ship_verdict(MEANS, {**MEANS, "gram_gap": 0.2, "colour_gap": 0.3, "spread": 0.9, "content_corr": 0.4})
    assert [f.split()[0] for f in fails] == ["colour_gap", "spread", "content_corr"]
    assert fails[1] == f"spread 0.900 more than {SPREAD_SLACK} below 0.920"
    # layout_corr counts when both means have it: within its slack ships, a halo that came back does not
    better = {**MEANS, "gram_gap": 0.2, "spread": 0.93}
    assert ship_verdict({**MEANS, "layout_corr": 0.6}, {**better, "layout_corr": 0.6 - LAYOUT_CORR_SLACK / 2}) == []
    fails = ship_verdict({**MEANS, "layout_corr": 0.6}, {**better, "layout_corr": 0.5})
    assert fails == [f"layout_corr 0.500 more than {LAYOUT_CORR_SLACK} below 0.600"]
    assert ship_verdict(MEANS, {**better, "layout_corr": 0.1}) == []  # an older base without it


def test_cli_compare_exits_0_when_the_rule_is_met_and_1_when_not(tmp_path, capsys):
    base = _write(tmp_path / "base.json", shipped=_result([0.3] * 4, [0.9, 0.9]))
    better = _write(tmp_path / "better.json",
                    new=_result([0.2] * 4, [0.95, 0.95], gram_gap=0.2, colour_gap=0.25, spread=0.95))
    worse = _write(tmp_path / "worse.json", new=_result([0.4] * 4, [0.8, 0.8], colour_gap=0.3))
    assert cli.main(["compare", base, better]) == 0
    out = capsys.readouterr().out
    assert "gram_gap" in out and "4 / 4" in out and out.rstrip().endswith("shipping rule: met")
    assert cli.main(["compare", base, worse]) == 1
    assert "not met (gram_gap 0.220 not below 0.220; colour_gap" in capsys.readouterr().out


def test_a_missing_row_or_file_is_one_line_naming_it(tmp_path, capsys):
    base = _write(tmp_path / "base.json", shipped=_result([0.3] * 4, [0.9, 0.9]))
    assert cli.main(["compare", base, base, "--new-name", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "base.json" in err and "'nope'" in err and "'shipped'" in err
    assert cli.main(["compare", str(tmp_path / "missing.json"), base]) == 2
    assert "missing.json" in capsys.readouterr().err
    # export reads its --eval the same way: a wrong row is one line, before any checkpoint is read
    assert cli.main(["export", str(tmp_path / "no.pt"), "--out", str(tmp_path / "m.safetensors"), "--eval", base,
                     "--eval-name", "nope"]) == 2
    assert "'nope'" in capsys.readouterr().err


def test_the_default_row_is_the_first_model_not_a_reference(tmp_path):
    path = _write(tmp_path / "r.json", first=_result([0.3] * 4, [0.9, 0.9]), second=_result([0.1] * 4, [0.9, 0.9]))
    assert read_result(path)["pairs"][0]["gram_gap"] == pytest.approx(0.3)
    assert read_result(path, "second")["pairs"][0]["gram_gap"] == pytest.approx(0.1)


def test_by_style_averages_each_painting_and_prints_base_then_new(tmp_path, capsys):
    new = _result([0.2, 0.4, 0.6, 0.8], [0.9, 0.9])  # x.jpg: 0.2 and 0.6; y.jpg: 0.4 and 0.8
    means = style_means(new)
    assert list(means) == ["x.jpg", "y.jpg"]
    assert means["x.jpg"]["gram_gap"] == pytest.approx(0.4) and means["y.jpg"]["gram_gap"] == pytest.approx(0.6)
    base = _write(tmp_path / "base.json", shipped=_result([0.3] * 4, [0.9, 0.9]))
    cli.main(["compare", base, _write(tmp_path / "new.json", new=new), "--by-style"])
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert rows["x.jpg"][2] == "0.300→0.400" and rows["y.jpg"][2] == "0.300→0.600"


def test_a_metric_only_one_evaluation_has_is_left_out_and_counted_when_both_have_it(tmp_path, capsys):
    def with_layout(result: dict, value: float) -> dict:
        for q in result["pairs"]:
            q["layout_corr"] = value
        result["means"]["layout_corr"] = value
        return result

    older = _result([0.3] * 4, [0.9, 0.9])  # written before layout_corr existed
    new = with_layout(_result([0.2] * 4, [0.95, 0.95], gram_gap=0.2, spread=0.95), 0.6)
    assert "layout_corr" not in pair_wins(older, new) and pair_wins(older, new)["gram_gap"] == (4, 4)
    assert pair_wins(with_layout(_result([0.3] * 4, [0.9, 0.9]), 0.5), new)["layout_corr"] == (4, 4)
    assert cli.main(["compare", _write(tmp_path / "old.json", shipped=older), _write(tmp_path / "new.json", new=new),
                     "--by-style"]) == 0
    assert "layout_corr" not in capsys.readouterr().out
