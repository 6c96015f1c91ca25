"""Latitude-weighted verification scores (WeatherBench / ClimaX conventions).

Arrays are shaped ``(..., lat, lon)``; every leading dimension indexes samples. A score
is computed per sample (a weighted mean over the grid) and then averaged over samples,
so a single bad day counts as one sample, not as a share of all grid points. NaN in
``truth`` marks points without an observation (e.g. masked ocean): they are left out of
both the numerator and the weights, so a mask never pulls a score towards zero.

Inputs may be numpy arrays or xarray DataArrays; they are read with ``np.asarray``, so
DataArrays must already be ordered ``(..., lat, lon)``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "lat_weighted_acc",
    "lat_weighted_bias",
    "lat_weighted_rmse",
    "latitude_weights",
]


def latitude_weights(lat: ArrayLike) -> np.ndarray:
    """Return cos(latitude) normalised to mean 1, so grid cells count by their area.

    ``lat`` is 1-D, in degrees north. Normalising to mean 1 keeps an unweighted and a
    weighted mean of a constant field equal.
    """
    lat = np.asarray(lat, dtype=float)
    if lat.ndim != 1 or lat.size == 0:
        raise ValueError(f"lat: expected a non-empty 1-D array of degrees, got shape {lat.shape}")
    if not np.all(np.isfinite(lat)) or np.any(np.abs(lat) > 90.0):
        raise ValueError(
            f"lat: expected finite degrees in [-90, 90], got range [{lat.min()}, {lat.max()}]"
        )
    weights = np.clip(np.cos(np.deg2rad(lat)), 0.0, None)
    total = weights.mean()
    if total <= 0.0:
        raise ValueError("lat: all latitudes are at the poles; cos(lat) weights sum to zero")
    return weights / total


def lat_weighted_rmse(pred: ArrayLike, truth: ArrayLike, lat: ArrayLike) -> float:
    """RMSE per sample (area-weighted over lat, lon), then the mean over samples."""
    pred_a, truth_a, weights = _prepare(pred, truth, lat)
    error = np.where(weights > 0, pred_a - truth_a, 0.0)
    mse = _weighted_mean(error**2, weights)
    return _mean_over_samples(np.sqrt(mse), weights)


def lat_weighted_bias(pred: ArrayLike, truth: ArrayLike, lat: ArrayLike) -> float:
    """Mean error (pred − truth) per sample, area-weighted, then the mean over samples."""
    pred_a, truth_a, weights = _prepare(pred, truth, lat)
    error = np.where(weights > 0, pred_a - truth_a, 0.0)
    return _mean_over_samples(_weighted_mean(error, weights), weights)


def lat_weighted_acc(
    pred: ArrayLike, truth: ArrayLike, climatology: ArrayLike, lat: ArrayLike
) -> float:
    """Uncentred anomaly correlation of (pred − clim) and (truth − clim), per sample.

    The per-sample correlations are averaged over the samples where they are defined.
    A sample whose forecast (or observed) anomaly is identically zero has no
    correlation; when no sample has one (e.g. the climatology forecast itself) the
    result is NaN, which tables show as "not applicable" rather than as a poor score.
    """
    pred_a, truth_a, weights = _prepare(pred, truth, lat)
    if not (weights > 0).any():
        raise ValueError("truth: every value is NaN; there is nothing to score")
    clim = np.asarray(climatology, dtype=float)
    try:
        clim = np.broadcast_to(clim, truth_a.shape)
    except ValueError:
        raise ValueError(
            f"climatology: shape {clim.shape} does not broadcast to truth shape {truth_a.shape}"
        ) from None
    valid = weights > 0
    pred_anom = np.where(valid, pred_a - clim, 0.0)
    truth_anom = np.where(valid, truth_a - clim, 0.0)
    covariance = np.sum(weights * pred_anom * truth_anom, axis=(-2, -1))
    pred_var = np.sum(weights * pred_anom**2, axis=(-2, -1))
    truth_var = np.sum(weights * truth_anom**2, axis=(-2, -1))
    denominator = np.sqrt(pred_var * truth_var).reshape(-1)
    # Undefined where an anomaly is identically zero (or the sample is fully masked);
    # NaN from a NaN prediction is not "undefined" and propagates.
    defined = denominator != 0
    if not defined.any():
        return float("nan")
    acc = covariance.reshape(-1)[defined] / denominator[defined]
    return float(np.clip(np.mean(acc), -1.0, 1.0))


def _prepare(
    pred: ArrayLike, truth: ArrayLike, lat: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check shapes and return (pred, truth, per-point weights with 0 where truth is NaN)."""
    pred_a = np.asarray(pred, dtype=float)
    truth_a = np.asarray(truth, dtype=float)
    if pred_a.shape != truth_a.shape:
        raise ValueError(f"pred shape {pred_a.shape} does not match truth shape {truth_a.shape}")
    if truth_a.ndim < 2:
        raise ValueError(f"truth: expected shape (..., lat, lon), got {truth_a.shape}")
    lat_weights = latitude_weights(lat)
    if lat_weights.size != truth_a.shape[-2]:
        raise ValueError(
            f"lat: length {lat_weights.size} does not match the lat axis (-2) of "
            f"truth shape {truth_a.shape}"
        )
    weights = np.where(np.isfinite(truth_a), lat_weights[:, None], 0.0)
    return pred_a, truth_a, weights


def _weighted_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted mean over (lat, lon); NaN for a sample with no observed point."""
    total = weights.sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, np.sum(weights * values, axis=(-2, -1)) / total, np.nan)


def _mean_over_samples(per_sample: np.ndarray, weights: np.ndarray) -> float:
    """Average the samples that have at least one observed point.

    An entirely masked sample has no score and is skipped; a NaN in ``pred`` where
    truth is observed stays NaN, so a broken model cannot hide behind the mask.
    """
    observed = weights.sum(axis=(-2, -1)).reshape(-1) > 0
    if not observed.any():
        raise ValueError("truth: every value is NaN; there is nothing to score")
    return float(np.mean(np.asarray(per_sample).reshape(-1)[observed]))
