"""The Prithvi-EO modes table of an area: cost per mode beside every WGAST metric.

Like the weather mode tables: one row per mode with its trainable parameters, time per
epoch (and the one-off encoding of the latent cache), training peak memory and whether
the decoder trained on cached features, then the six metrics averaged over the test
dates against Landsat t2 (30 m) and, on sample data, the 10 m truth. The bicubic and
regression baselines close the table. The metrics are `eofm.evaluate.lst`'s: the same
code scores WGAST.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import pandas as pd

from eofm.evaluate.lst import (
    BASELINES,
    METRICS,
    eo_method,
    eo_predictions,
    evaluate_methods,
    write_lst_table,
)
from eofm.io import read_json

#: the training summary's fields shown per mode (train_eo writes them)
COST = (
    "trainable_parameters",
    "seconds_per_epoch",
    "encode_seconds",
    "training_peak_rss_mb",
    "cached",
    "epochs",
    "batch_size",
)


def metric_means(table: pd.DataFrame) -> pd.DataFrame:
    """Per method: each metric's mean over the test dates, one column per reference."""
    wide = table.groupby(["method", "reference"], sort=False)[list(METRICS)].mean().unstack()
    wide.columns = [f"{metric}_{reference}" for metric, reference in wide.columns]
    return wide


def modes_table(table: pd.DataFrame, summaries: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The modes (in the summaries' order) then the baselines, cost and metric columns."""
    means = metric_means(table)
    rows = []
    for summary in summaries:
        method = eo_method(str(summary["mode"]))
        if method not in means.index:
            raise ValueError(f"training summary of mode {summary['mode']!r} but no predictions")
        cost = {k: summary.get(k) for k in COST}
        rows.append({"method": method, "backbone": summary.get("backbone"), **cost})
    rows += [{"method": b} for b in BASELINES]
    out = pd.DataFrame(rows, columns=["method", "backbone", *COST])
    return out.join(means, on="method")


def eo_modes_table(
    *,
    pairs_path: str | os.PathLike[str],
    series: Sequence[str | os.PathLike[str]],
    summaries: Sequence[str | os.PathLike[str]],
    csv_path: str | os.PathLike[str],
    md_path: str | os.PathLike[str],
) -> pd.DataFrame:
    """Score each mode's ``lst.zarr`` over the test pairs and join its training summary."""
    from eofm.data.store import open_store

    pairs = open_store(pairs_path).load()
    table = evaluate_methods(pairs, eo_predictions(pairs, series))
    out = modes_table(table, [read_json(path) for path in summaries])
    write_lst_table(out, csv_path, md_path)
    return out
