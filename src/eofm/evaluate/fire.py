"""Wildfire danger evaluation: binary metrics, the random-forest baseline, tables and curves.

The metrics are the paper's (precision, recall, F1 and IoU of the fire class at a 0.5
threshold, overall accuracy, AUROC) plus AUPRC, which says more than AUROC when fires are
rare. They are computed here (numpy), checked against scikit-learn in the tests.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr
from matplotlib.figure import Figure
from numpy.typing import ArrayLike
from tqdm import tqdm

from eofm.data.store import open_store
from eofm.evaluate.tables import write_table
from eofm.io import atomic_path, write_json

METRICS = ("precision", "recall", "f1", "iou", "oa", "auroc", "auprc")


def _binary(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).astype(bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels {y.shape} and scores {s.shape} differ in length")
    return y, s


def roc_curve(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct score, from (0, 0) to (1, 1)."""
    tps, fps = _cumulative_counts(*_binary(labels, scores))
    pos, neg = tps[-1], fps[-1]
    fpr = np.r_[0.0, fps / neg] if neg else np.full(len(fps) + 1, np.nan)
    tpr = np.r_[0.0, tps / pos] if pos else np.full(len(tps) + 1, np.nan)
    return fpr, tpr


def precision_recall_curve(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall at every distinct score, highest threshold first."""
    tps, fps = _cumulative_counts(*_binary(labels, scores))
    precision = tps / np.maximum(tps + fps, 1)
    recall = tps / tps[-1] if tps[-1] else np.full(len(tps), np.nan)
    return precision, recall


def _cumulative_counts(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and false positives when thresholding at each distinct score (ties together)."""
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y)[last_of_tie].astype(np.float64)
    fps = (last_of_tie + 1) - tps
    return tps, fps


def auroc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve (trapezoids; ties count half); NaN with one class only."""
    fpr, tpr = roc_curve(labels, scores)
    if np.isnan(fpr).any() or np.isnan(tpr).any():
        return float("nan")
    return float(np.trapezoid(tpr, fpr))


def auprc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Average precision: Σ (Rₙ − Rₙ₋₁) Pₙ (no interpolation, as scikit-learn)."""
    precision, recall = precision_recall_curve(labels, scores)
    if np.isnan(recall).any():
        return float("nan")
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def binary_metrics(
    labels: ArrayLike, scores: ArrayLike, threshold: float = 0.5
) -> dict[str, float]:
    """The table's metrics for the fire class; ``scores`` are fire probabilities."""
    y, s = _binary(labels, scores)
    pred = s >= threshold
    tp = float(np.sum(pred & y))
    fp = float(np.sum(pred & ~y))
    fn = float(np.sum(~pred & y))
    tn = float(np.sum(~pred & ~y))
    nan = float("nan")
    precision = tp / (tp + fp) if tp + fp else nan
    recall = tp / (tp + fn) if tp + fn else nan
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else nan
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "iou": tp / (tp + fp + fn) if tp + fp + fn else nan,
        "oa": (tp + tn) / len(y) if len(y) else nan,
        "auroc": auroc(y, s),
        "auprc": auprc(y, s),
        "n": len(y),
        "positives": int(y.sum()),
    }


def paired_bootstrap(
    labels: ArrayLike,
    scores: ArrayLike,
    reference: ArrayLike,
    *,
    resamples: int,
    level: float,
    seed: int,
) -> dict[str, dict[str, float]]:
    """AUROC and AUPRC of ``scores`` minus those of ``reference`` on the same samples, with a
    percentile interval over resamples of the test samples (drawn with replacement, fires
    and non-fires apart so each resample keeps the year's fire count; the same draw scores
    both), and the share of resamples in which ``scores`` did no better.

    It says whether a difference in the table is more than the luck of which days and
    pixels the test year sampled; it does not cover the luck of the training seed.
    """
    y, s = _binary(labels, scores)
    _, r = _binary(labels, reference)
    if y.shape != r.shape:
        raise ValueError(f"scores {s.shape} and reference {r.shape} differ in length")
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    metrics = {"auroc": auroc, "auprc": auprc}
    if not len(pos) or not len(neg):
        return {m: dict.fromkeys(("difference", "low", "high", "not_better"), np.nan)
                for m in metrics}  # fmt: skip
    rng = np.random.default_rng(seed)
    draws = {m: np.empty(resamples) for m in metrics}
    for k in range(resamples):
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        for m, metric in metrics.items():
            draws[m][k] = metric(y[idx], s[idx]) - metric(y[idx], r[idx])
    tail = (1 - level) / 2
    return {
        m: {
            "difference": metric(y, s) - metric(y, r),
            "low": float(np.quantile(draws[m], tail)),
            "high": float(np.quantile(draws[m], 1 - tail)),
            "not_better": float(np.mean(draws[m] <= 0)),
        }
        for m, metric in metrics.items()
    }


def verdict(low: float, high: float) -> str:
    """``better`` or ``worse`` when the interval excludes 0, else ``tie``."""
    if not np.isfinite(low) or not np.isfinite(high):
        return "undefined"
    return "better" if low > 0 else "worse" if high < 0 else "tie"


def difference_records(
    year: int,
    labels: np.ndarray,
    by_method: Mapping[str, np.ndarray],
    focus: str,
    bootstrap: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """``focus`` against every other method of the year: one row per (baseline, metric)."""
    rows = []
    for method, reference in by_method.items():
        if method == focus:
            continue
        result = paired_bootstrap(
            labels,
            by_method[focus],
            reference,
            resamples=int(bootstrap["resamples"]),
            level=float(bootstrap["level"]),
            seed=int(bootstrap["seed"]),
        )
        for metric, d in result.items():
            rows.append(
                {
                    "year": int(year),
                    "comparison": f"{focus} − {method}",
                    "metric": metric,
                    **d,
                    "verdict": verdict(d["low"], d["high"]),
                }
            )
    return rows


# --------------------------------------------------------------------------- baselines


def pixel_features(ds: xr.Dataset) -> np.ndarray:
    """Per-pixel features for the random forest: the centre pixel's dynamic series and statics."""
    cy, cx = ds.sizes["y"] // 2, ds.sizes["x"] // 2
    dynamic = ds["dynamic"].isel(y=cy, x=cx).values  # sample, var, day
    static = ds["static"].isel(y=cy, x=cx).values  # sample, var
    doy = ds["doy"].values.astype(np.float32)[:, None]
    return np.concatenate([dynamic.reshape(len(dynamic), -1), static, doy], axis=1)


def fit_random_forest(
    train_store: str | os.PathLike[str], *, n_estimators: int, seed: int, class_weight: str | None
) -> Any:
    """A scikit-learn random forest on `pixel_features` of the training store."""
    from sklearn.ensemble import RandomForestClassifier

    ds = open_store(train_store)
    forest = RandomForestClassifier(
        n_estimators=n_estimators, random_state=seed, n_jobs=1, class_weight=class_weight
    )
    forest.fit(pixel_features(ds), ds["label"].values.astype(int))
    return forest


# --------------------------------------------------------------------------- scoring


def predict_cnn(
    model: torch.nn.Module, store: str | os.PathLike[str], batch: int = 256
) -> np.ndarray:
    """Fire probabilities of a LOAN CNN for every sample of ``store`` (streamed in batches)."""
    ds = open_store(store)
    n = ds.sizes["sample"]
    device = next(model.parameters()).device
    out = np.empty(n, dtype=np.float32)
    model.eval()
    with torch.no_grad():
        for start in tqdm(range(0, n, batch), desc=f"scoring {os.path.basename(store)}"):
            part = ds.isel(sample=slice(start, start + batch))
            logp = model(
                torch.as_tensor(part["dynamic"].values, device=device),
                torch.as_tensor(part["static"].values, device=device),
                torch.as_tensor(part["doy"].values.astype(np.int64), device=device),
            )
            out[start : start + len(logp)] = logp[:, 1].exp().cpu().numpy()
    return out


def evaluation_table(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per (test year, method): the paper-style table, best first within a year."""
    df = pd.DataFrame(records)
    cols = ["year", "method", *METRICS, "n", "positives"]
    df = df[cols].sort_values(["year", "auroc"], ascending=[True, False])
    return df.reset_index(drop=True)


#: Why a metric can be undefined (NaN in the table, null with this reason in the JSON).
UNDEFINED = {
    "precision": "no sample scored at or above the 0.5 threshold",
    "recall": "no fire sample in this test year",
    "f1": "no fire sample and none predicted",
    "iou": "no fire sample and none predicted",
    "oa": "no sample",
    "auroc": "one class only in this test year",
    "auprc": "no fire sample in this test year",
}


def json_records(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The records with each undefined (NaN) metric as null and ``<metric>_undefined`` saying
    why: a model that predicts no fire at 0.5 has no precision, not a precision of NaN."""
    out = []
    for record in records:
        row = dict(record)
        for key, value in record.items():
            if isinstance(value, float) and not np.isfinite(value):
                row[key] = None
                row[f"{key}_undefined"] = UNDEFINED.get(key, "not finite")
        out.append(row)
    return out


def write_evaluation(
    records: Sequence[Mapping[str, Any]],
    csv_path: str | os.PathLike[str],
    md_path: str | os.PathLike[str],
    json_path: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """The table as CSV and Markdown (and the raw records as JSON)."""
    table = evaluation_table(records)
    write_table(table, csv_path, md_path)
    if json_path is not None:
        write_json(json_records(records), json_path)
    return table


def plot_curves(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    roc_path: str | os.PathLike[str],
    pr_path: str | os.PathLike[str],
    title: str,
) -> None:
    """ROC and precision-recall curves of each method (``{method: (labels, scores)}``)."""
    for path, kind in ((roc_path, "roc"), (pr_path, "pr")):
        fig = Figure(figsize=(5, 4.5))
        ax = fig.add_subplot()
        for method, (labels, scores) in curves.items():
            if kind == "roc":
                x, y = roc_curve(labels, scores)
                ax.plot(x, y, label=f"{method} (AUROC {auroc(labels, scores):.3f})")
            else:
                p, r = precision_recall_curve(labels, scores)
                ax.step(np.r_[0.0, r], np.r_[p[0], p], where="pre",
                        label=f"{method} (AUPRC {auprc(labels, scores):.3f})")  # fmt: skip
        if kind == "roc":
            ax.plot([0, 1], [0, 1], color="0.7", linestyle=":")
            ax.set(xlabel="false-positive rate", ylabel="true-positive rate")
        else:
            ax.set(xlabel="recall", ylabel="precision", ylim=(0, 1.02))
        ax.set_title(f"{title}: {'ROC' if kind == 'roc' else 'precision-recall'}")
        ax.legend(loc="lower right" if kind == "roc" else "upper right", fontsize=8)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110)


# --------------------------------------------------------------------------- workflow steps

METHOD_NAMES = {"loan": "LOAN", "batchnorm": "CNN + batch norm (ablation)", "rf": "random forest"}


def score_random_forest(
    train_store: str | os.PathLike[str],
    test_stores: Mapping[int, str | os.PathLike[str]],
    *,
    baseline: Mapping[str, Any],
    scores_path: str | os.PathLike[str],
) -> pd.DataFrame:
    """Fit the forest (`loan.baseline`) and write its fire probability for each test sample.

    Scores are written instead of the forest itself, so no pickle is ever read back.
    """
    weight = baseline["class_weight"]
    forest = fit_random_forest(
        train_store,
        n_estimators=int(baseline["n_estimators"]),
        seed=int(baseline["seed"]),
        class_weight=None if weight == "none" else weight,
    )
    parts = []
    for year, store in test_stores.items():
        ds = open_store(store)
        score = forest.predict_proba(pixel_features(ds))[:, list(forest.classes_).index(1)]
        parts.append(_scores_frame(year, ds["label"].values, score))
    scores = pd.concat(parts, ignore_index=True)
    with atomic_path(scores_path) as tmp:
        scores.to_csv(tmp, index=False)
    return scores


def _scores_frame(year: int, labels: np.ndarray, score: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "year": int(year),
            "sample": np.arange(len(labels)),
            "label": labels.astype(int),
            "score": score.astype(np.float32),
        }
    )


def evaluate_fire(
    models: Mapping[str, tuple[str, str]],
    rf_scores: str | os.PathLike[str],
    test_stores: Mapping[int, str | os.PathLike[str]],
    *,
    table_csv: str | os.PathLike[str],
    table_md: str | os.PathLike[str],
    metrics_json: str | os.PathLike[str],
    curves: Mapping[int, tuple[str, str]],
    differences_csv: str | os.PathLike[str],
    differences_md: str | os.PathLike[str],
    bootstrap: Mapping[str, Any],
    batch_size: int = 256,
) -> pd.DataFrame:
    """Score each trained CNN (``{norm: (weights, config)}``) and the forest on every test year.

    Writes the paper-style table, per-year ROC and PR curves (``{year: (roc, pr)}``) and
    LOAN's differences from each baseline with their paired-bootstrap intervals
    (`loan.evaluate`), which say whether "beats" is more than the test sample's luck.
    """
    from eofm.train.loan import load_trained

    rf = pd.read_csv(rf_scores)
    nets = {norm: load_trained(w, c) for norm, (w, c) in models.items()}
    records, differences = [], []
    for year, store in test_stores.items():
        labels = open_store(store)["label"].values.astype(int)
        by_method = {}
        for norm, net in nets.items():
            by_method[METHOD_NAMES.get(norm, norm)] = predict_cnn(net, store, batch_size)
        forest = rf[rf["year"] == int(year)].sort_values("sample")["score"].to_numpy()
        if len(forest) != len(labels):
            raise ValueError(
                f"{rf_scores}: {len(forest)} random-forest scores for {year}, expected "
                f"{len(labels)} (the samples of {store})"
            )
        by_method[METHOD_NAMES["rf"]] = forest
        for method, score in by_method.items():
            records.append({"year": int(year), "method": method, **binary_metrics(labels, score)})
        if METHOD_NAMES["loan"] in by_method:
            differences += difference_records(
                year, labels, by_method, METHOD_NAMES["loan"], bootstrap
            )
        roc, pr = curves[year]
        plot_curves({m: (labels, s) for m, s in by_method.items()}, roc, pr, f"test {year}")
    columns = ["year", "comparison", "metric", "difference", "low", "high", "not_better", "verdict"]
    write_table(pd.DataFrame(differences, columns=columns), differences_csv, differences_md)
    return write_evaluation(records, table_csv, table_md, metrics_json)
