"""Wildfire metrics against scikit-learn, the random-forest baseline, table and curves."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from eofm.evaluate.fire import (
    auprc,
    auroc,
    binary_metrics,
    fit_random_forest,
    paired_bootstrap,
    pixel_features,
    plot_curves,
    write_evaluation,
)
from tests.fakes.loan_samples import make_samples, write_samples


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("ties", [False, True])
def test_metrics_match_scikit_learn(seed, ties):
    rng = np.random.default_rng(seed)
    y = rng.uniform(size=500) < 0.2
    s = np.clip(rng.normal(0.4 + 0.3 * y, 0.2), 0, 1)
    if ties:
        s = np.round(s, 1)  # many equal scores
    got = binary_metrics(y, s)
    pred = s >= 0.5
    assert got["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert got["iou"] == pytest.approx(skm.jaccard_score(y, pred))
    assert got["oa"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["auroc"] == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert got["auprc"] == pytest.approx(skm.average_precision_score(y, s), abs=1e-12)
    assert got["positives"] == int(y.sum()) and got["n"] == 500


def test_known_answers():
    assert auroc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert auroc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert auroc([0, 1], [0.5, 0.5]) == 0.5  # a tie counts half
    assert auprc([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx((1 + 2 / 3) / 2)
    m = binary_metrics([1, 1, 0, 0], [0.9, 0.2, 0.6, 0.1])
    assert (m["precision"], m["recall"], m["iou"], m["oa"]) == (0.5, 0.5, 1 / 3, 0.5)


def test_one_class_gives_nan_not_a_number_that_looks_valid():
    assert np.isnan(auroc([0, 0, 0], [0.1, 0.5, 0.9]))
    assert np.isnan(auprc([0, 0, 0], [0.1, 0.5, 0.9]))


def test_an_undefined_metric_is_null_with_a_reason_in_the_json(tmp_path):
    """A model that predicts no fire at 0.5 has no precision: the table says NaN, the JSON
    null plus why (bare NaN is not JSON)."""
    records = [{"year": 2020, "method": "LOAN", **binary_metrics([0, 1, 0], [0.1, 0.4, 0.2])}]
    table = write_evaluation(records, tmp_path / "t.csv", tmp_path / "t.md", tmp_path / "t.json")
    assert np.isnan(table.loc[0, "precision"]) and table.loc[0, "auroc"] == 1.0
    (saved,) = json.loads((tmp_path / "t.json").read_text())
    assert saved["precision"] is None
    assert "threshold" in saved["precision_undefined"]
    assert saved["auroc"] == 1.0 and "auroc_undefined" not in saved


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ"):
        binary_metrics([0, 1], [0.5])


def test_pixel_features_take_the_centre_pixel():
    ds = make_samples(4, patch=5)
    x = pixel_features(ds)
    assert x.shape == (4, 10 * 10 + 15 + 1)
    np.testing.assert_array_equal(x[:, :10], ds["dynamic"].values[:, 0, :, 2, 2])


def test_random_forest_is_seeded_and_learns(tmp_path):
    train = write_samples(tmp_path / "train.zarr", 400, seed=1, patch=5)
    test = make_samples(300, seed=3, patch=5)
    a = fit_random_forest(train, n_estimators=30, seed=0, class_weight="balanced")
    b = fit_random_forest(train, n_estimators=30, seed=0, class_weight="balanced")
    pa = a.predict_proba(pixel_features(test))[:, 1]
    np.testing.assert_array_equal(pa, b.predict_proba(pixel_features(test))[:, 1])
    assert auroc(test["label"].values, pa) > 0.6


def test_table_and_curves(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.uniform(size=200) < 0.3
    good, poor = np.clip(y + rng.normal(0, 0.4, 200), 0, 1), rng.uniform(size=200)
    records = [
        {"year": year, "method": method, **binary_metrics(y, s)}
        for year in (2021, 2020)
        for method, s in (("random forest", poor), ("LOAN", good))
    ]
    table = write_evaluation(records, tmp_path / "t.csv", tmp_path / "t.md", tmp_path / "t.json")
    assert list(table["year"]) == [2020, 2020, 2021, 2021]
    assert list(table["method"][:2]) == ["LOAN", "random forest"]
    csv = pd.read_csv(tmp_path / "t.csv")
    assert list(csv.columns[:9]) == ["year", "method", "precision", "recall", "f1", "iou",
                                     "oa", "auroc", "auprc"]  # fmt: skip
    assert "| LOAN" in (tmp_path / "t.md").read_text()
    plot_curves(
        {"LOAN": (y, good), "RF": (y, poor)}, tmp_path / "roc.png", tmp_path / "pr.png", "2020"
    )
    for name in ("roc.png", "pr.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


BOOT = {"resamples": 300, "level": 0.95, "seed": 0}


def _scorers(n: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    y = rng.uniform(size=n) < 0.2
    good = y + rng.normal(0, 0.5, n)
    also_good = y + rng.normal(0, 0.5, n)
    return y, good, also_good, rng.uniform(size=n)


def test_bootstrap_of_a_clearly_better_scorer_excludes_zero_and_mirrors_when_swapped():
    y, good, _, poor = _scorers(400)
    ahead = paired_bootstrap(y, good, poor, **BOOT)
    behind = paired_bootstrap(y, poor, good, **BOOT)
    for metric, score in (("auroc", auroc), ("auprc", auprc)):
        d = ahead[metric]
        assert d["difference"] == pytest.approx(score(y, good) - score(y, poor))
        assert 0 < d["low"] < d["difference"] < d["high"]
        assert d["not_better"] == 0
        # the same draws score both ways round: the interval is the mirror image
        assert behind[metric]["low"] == pytest.approx(-d["high"])
        assert behind[metric]["high"] == pytest.approx(-d["low"])
        assert behind[metric]["not_better"] == 1


def test_bootstrap_calls_two_equally_good_scorers_a_tie_and_identical_ones_zero():
    y, good, also_good, _ = _scorers(150)
    same = paired_bootstrap(y, good, good, **BOOT)
    assert same["auroc"] == {"difference": 0, "low": 0, "high": 0, "not_better": 1}
    tie = paired_bootstrap(y, good, also_good, **BOOT)
    for d in tie.values():
        assert d["low"] < 0 < d["high"]
        assert 0 < d["not_better"] < 1
    assert paired_bootstrap(y, good, also_good, **BOOT) == tie  # seeded


def test_bootstrap_is_undefined_without_both_classes_and_checks_lengths():
    y = np.zeros(20, bool)
    result = paired_bootstrap(y, np.ones(20), np.zeros(20), **BOOT)
    assert all(np.isnan(v) for d in result.values() for v in d.values())
    with pytest.raises(ValueError, match="differ in length"):
        paired_bootstrap(np.r_[y, True], np.ones(21), np.zeros(20), **BOOT)


def test_evaluate_fire_puts_every_method_and_year_in_one_table(tmp_path):
    from eofm.evaluate.fire import evaluate_fire, score_random_forest
    from eofm.hub import save_weights
    from eofm.models.fire.loan import LoanCNN, LoanModelConfig

    train = write_samples(tmp_path / "train.zarr", 120, seed=1, patch=14)
    tests = {
        y: write_samples(tmp_path / f"test-{y}.zarr", 40, seed=y, year=y, patch=14)
        for y in (2020, 2021)
    }
    baseline = {"n_estimators": 10, "class_weight": "balanced", "seed": 0}
    score_random_forest(train, tests, baseline=baseline, scores_path=tmp_path / "rf.csv")
    models = {}
    for norm in ("loan", "batchnorm"):
        cfg = LoanModelConfig(widths=(4, 8, 8), head=(8, 8, 4), norm=norm)
        w, c = tmp_path / f"{norm}.safetensors", tmp_path / f"{norm}.json"
        save_weights(LoanCNN(cfg), w, cfg.to_dict(), c)
        models[norm] = (w, c)
    curves = {y: (tmp_path / f"roc-{y}.png", tmp_path / f"pr-{y}.png") for y in tests}
    table = evaluate_fire(
        models, tmp_path / "rf.csv", tests, table_csv=tmp_path / "t.csv",
        table_md=tmp_path / "t.md", metrics_json=tmp_path / "m.json", curves=curves,
        differences_csv=tmp_path / "d.csv", differences_md=tmp_path / "d.md", bootstrap=BOOT,
    )  # fmt: skip
    assert len(table) == 6
    differences = pd.read_csv(tmp_path / "d.csv")
    assert len(differences) == 2 * 2 * 2  # years x baselines x (AUROC, AUPRC)
    assert set(differences["comparison"]) == {
        "LOAN − CNN + batch norm (ablation)",
        "LOAN − random forest",
    }
    for row in differences.itertuples():
        assert row.low <= row.difference <= row.high
        assert row.verdict == ("better" if row.low > 0 else "worse" if row.high < 0 else "tie")
    assert "LOAN − random forest" in (tmp_path / "d.md").read_text()
    assert set(table["method"]) == {"LOAN", "CNN + batch norm (ablation)", "random forest"}
    assert all(p.exists() for pair in curves.values() for p in pair)
    rf = pd.read_csv(tmp_path / "rf.csv")
    rf[rf["year"] == 2020].iloc[:-1].to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(ValueError, match="39 random-forest scores for 2020, expected 40"):
        evaluate_fire(
            models, tmp_path / "short.csv", tests, table_csv=tmp_path / "t.csv",
            table_md=tmp_path / "t.md", metrics_json=tmp_path / "m.json", curves=curves,
            differences_csv=tmp_path / "d.csv", differences_md=tmp_path / "d.md", bootstrap=BOOT,
        )  # fmt: skip
