"""Known-answer tests for the latitude-weighted scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr

from eofm.evaluate.metrics import (
    lat_weighted_acc,
    lat_weighted_bias,
    lat_weighted_rmse,
    latitude_weights,
)

LAT = np.array([60.0, 30.0, 0.0, -30.0, -60.0])


def _fields(samples: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.normal(280.0, 5.0, size=(samples, LAT.size, 4))
    pred = truth + rng.normal(0.0, 1.0, size=truth.shape)
    return pred, truth


def test_weights_of_symmetric_grid_average_to_one_and_follow_cosine():
    weights = latitude_weights(LAT)
    assert weights.mean() == pytest.approx(1.0)
    assert weights[0] == pytest.approx(weights[-1])
    assert weights[2] / weights[0] == pytest.approx(1.0 / math.cos(math.radians(60.0)))


def test_weights_reject_latitudes_outside_degrees_range():
    with pytest.raises(ValueError, match=r"lat: expected finite degrees"):
        latitude_weights(np.array([0.0, 95.0]))


def test_constant_error_gives_its_magnitude_as_rmse_and_bias():
    _, truth = _fields()
    assert lat_weighted_rmse(truth - 2.5, truth, LAT) == pytest.approx(2.5)
    assert lat_weighted_bias(truth - 2.5, truth, LAT) == pytest.approx(-2.5)


def test_perfect_forecast_scores_zero_error_and_acc_one():
    pred, truth = _fields()
    climatology = truth.mean(axis=0)
    assert lat_weighted_rmse(truth, truth, LAT) == 0.0
    assert lat_weighted_bias(truth, truth, LAT) == 0.0
    assert lat_weighted_acc(truth, truth, climatology, LAT) == pytest.approx(1.0)
    assert -1.0 < lat_weighted_acc(pred, truth, climatology, LAT) < 1.0


def test_opposite_anomaly_gives_acc_minus_one():
    _, truth = _fields()
    climatology = np.full(truth.shape[-2:], 280.0)
    pred = climatology - (truth - climatology)
    assert lat_weighted_acc(pred, truth, climatology, LAT) == pytest.approx(-1.0)


def test_climatology_forecast_has_undefined_acc():
    _, truth = _fields()
    climatology = truth.mean(axis=0)
    pred = np.broadcast_to(climatology, truth.shape)
    assert math.isnan(lat_weighted_acc(pred, truth, climatology, LAT))


def test_hand_computed_two_by_two():
    # cos 60° = 0.5, cos 0° = 1 -> normalised weights 2/3 and 4/3.
    lat = np.array([60.0, 0.0])
    truth = np.zeros((2, 2))
    pred = np.array([[1.0, 3.0], [2.0, 0.0]])
    # mse = (2/3 * (1 + 9) + 4/3 * (4 + 0)) / 4 = 3; bias = (2/3 * 4 + 4/3 * 2) / 4 = 4/3
    assert lat_weighted_rmse(pred, truth, lat) == pytest.approx(math.sqrt(3.0))
    assert lat_weighted_bias(pred, truth, lat) == pytest.approx(4.0 / 3.0)
    # anomalies vs clim 1: a = [[0, 2], [1, -1]], b = [[-1, -1], [-1, -1]]
    # cov = 2/3 * (0 - 2) + 4/3 * (-1 + 1) = -4/3; |a|² = 2/3 * 4 + 4/3 * 2 = 16/3; |b|² = 4
    acc = lat_weighted_acc(pred, truth, 1.0, lat)
    assert acc == pytest.approx((-4.0 / 3.0) / math.sqrt(16.0 / 3.0 * 4.0))


def test_rmse_is_mean_of_per_sample_rmse_not_pooled():
    truth = np.zeros((2, 1, 2))
    pred = np.stack([np.full((1, 2), 1.0), np.full((1, 2), 3.0)])
    # per sample 1 and 3 -> 2 (a pooled RMSE would be sqrt(5))
    assert lat_weighted_rmse(pred, truth, np.array([0.0])) == pytest.approx(2.0)


def test_nan_in_truth_is_left_out_of_numerator_and_weights():
    lat = np.array([0.0])
    truth = np.array([[[0.0, np.nan]]])
    pred = np.array([[[2.0, 100.0]]])
    assert lat_weighted_rmse(pred, truth, lat) == pytest.approx(2.0)
    assert lat_weighted_bias(pred, truth, lat) == pytest.approx(2.0)
    masked_sample = np.array([[[np.nan, np.nan]], [[0.0, 0.0]]])
    both = np.array([[[5.0, 5.0]], [[1.0, 1.0]]])
    assert lat_weighted_rmse(both, masked_sample, lat) == pytest.approx(1.0)


def test_nan_prediction_where_truth_is_observed_propagates():
    lat = np.array([0.0])
    truth = np.zeros((1, 1, 2))
    pred = np.array([[[np.nan, 0.0]]])
    assert math.isnan(lat_weighted_rmse(pred, truth, lat))
    assert math.isnan(lat_weighted_acc(pred, truth + 1.0, 0.0, lat))


def test_all_nan_truth_is_an_error():
    truth = np.full((1, 1, 2), np.nan)
    with pytest.raises(ValueError, match="every value is NaN"):
        lat_weighted_rmse(np.zeros_like(truth), truth, np.array([0.0]))


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 5, 4\).*\(3, 5, 4\)"):
        lat_weighted_rmse(np.zeros((2, 5, 4)), np.zeros((3, 5, 4)), LAT)
    with pytest.raises(ValueError, match=r"lat: length 2 .* \(3, 5, 4\)"):
        lat_weighted_rmse(np.zeros((3, 5, 4)), np.zeros((3, 5, 4)), LAT[:2])
    with pytest.raises(ValueError, match=r"climatology: shape \(5, 3\)"):
        lat_weighted_acc(np.zeros((3, 5, 4)), np.zeros((3, 5, 4)), np.zeros((5, 3)), LAT)


def test_accepts_dataarrays():
    pred, truth = _fields()
    coords = {"lat": LAT}
    dims = ("time", "lat", "lon")
    as_xr = lat_weighted_rmse(
        xr.DataArray(pred, dims=dims, coords=coords),
        xr.DataArray(truth, dims=dims, coords=coords),
        xr.DataArray(LAT, dims="lat"),
    )
    assert as_xr == pytest.approx(lat_weighted_rmse(pred, truth, LAT))
