"""Figures are real PNGs with the expected layout; inputs are checked before plotting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.image import imread

from eofm.evaluate.plots import DPI, plot_benchmarks, plot_maps, plot_skill

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _field(values: np.ndarray, name: str = "tp") -> xr.DataArray:
    lat = np.linspace(60.0, -60.0, values.shape[0])
    lon = np.linspace(0.0, 357.5, values.shape[1])
    return xr.DataArray(
        values,
        dims=("lat", "lon"),
        coords={"lat": lat, "lon": lon},
        name=name,
        attrs={"units": "m", "long_name": "Total precipitation"},
    )


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_plot_maps_writes_three_panel_png(tmp_path):
    rng = np.random.default_rng(0)
    truth_values = rng.gamma(1.0, 0.001, size=(25, 48))
    truth_values[:3, :5] = np.nan  # masked cells must not break the plot
    truth = _field(truth_values)
    prediction = _field(truth_values * 0.8 + 0.0002)
    path = tmp_path / "maps" / "tp.png"
    plot_maps(truth, prediction, path, "aurora-tiny decoder: tp, 2020-04-01 00 UTC")
    width, height = _png_size(path)
    assert width > 2.5 * height  # three side-by-side panels
    image = imread(path)
    # red and blue of the diverging error map appear in the right third only
    thirds = [image[:, i * width // 3 : (i + 1) * width // 3, :3] for i in range(3)]

    def count(part: np.ndarray, hue: int) -> int:
        others = [c for c in range(3) if c != hue]
        strong = part[..., hue] > 0.6
        return int((strong & (part[..., others] < 0.45).all(axis=-1)).sum())

    red, blue = 0, 2
    assert count(thirds[2], red) > 200 and count(thirds[2], blue) > 200
    assert count(thirds[0], red) == count(thirds[0], blue) == 0
    assert count(thirds[1], red) == 0
    assert [p.name for p in path.parent.iterdir()] == ["tp.png"]


def test_plot_maps_drops_singleton_dims_and_checks_shapes(tmp_path):
    truth = _field(np.ones((5, 8))).expand_dims(time=[np.datetime64("2020-01-01")])
    plot_maps(truth, _field(np.ones((5, 8))), tmp_path / "ok.png", "constant field")
    assert _png_size(tmp_path / "ok.png")[0] > 0
    with pytest.raises(ValueError, match=r"prediction shape \(5, 7\) does not match truth"):
        plot_maps(_field(np.ones((5, 8))), _field(np.ones((5, 7))), tmp_path / "x.png", "t")
    with pytest.raises(ValueError, match=r"expected dims \(lat, lon\)"):
        plot_maps(
            _field(np.ones((5, 8))).expand_dims(time=2),
            _field(np.ones((5, 8))),
            tmp_path / "y.png",
            "t",
        )
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "y.png").exists()


def _skill_table() -> pd.DataFrame:
    rows = []
    for target, skills in {"tp": (0.4, -0.2), "swvl1": (0.7, 0.1)}.items():
        for method, skill in zip(
            ("decoder", "climatology", "persistence"), (skills[0], 0.0, skills[1]), strict=True
        ):
            rows.append(
                {
                    "task": "weather",
                    "model": "aurora-tiny",
                    "mode": "decoder",
                    "target": target,
                    "method": method,
                    "rmse_skill": skill,
                }
            )
    return pd.DataFrame(rows)


def test_plot_skill_writes_png(tmp_path):
    path = tmp_path / "skill.png"
    plot_skill(_skill_table(), path)
    width, height = _png_size(path)
    assert width >= 6 * DPI - 2 and height == pytest.approx(4.5 * DPI, abs=2)


def test_plot_skill_needs_columns_and_a_method(tmp_path):
    with pytest.raises(ValueError, match=r"missing column\(s\) \['rmse_skill'\]"):
        plot_skill(_skill_table().drop(columns="rmse_skill"), tmp_path / "s.png")
    only_clim = _skill_table().query("method == 'climatology'")
    with pytest.raises(ValueError, match="no method other than climatology"):
        plot_skill(only_clim, tmp_path / "s.png")


def test_plot_benchmarks_height_grows_with_jobs(tmp_path):
    def table(n: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "job": [f"rule{i % 2}/job{i}" for i in range(n)],
                "rule": [f"rule{i % 2}" for i in range(n)],
                "s": np.arange(n, dtype=float) + 1,
                "max_rss": [np.nan if i == 0 else 100.0 * i for i in range(n)],
            }
        )

    plot_benchmarks(table(3), tmp_path / "small.png")
    plot_benchmarks(table(12), tmp_path / "large.png")
    small, large = _png_size(tmp_path / "small.png"), _png_size(tmp_path / "large.png")
    assert small[0] == large[0] == 11 * DPI
    assert large[1] - small[1] == pytest.approx(9 * 0.26 * DPI, abs=3)
    with pytest.raises(ValueError, match="no jobs"):
        plot_benchmarks(table(0), tmp_path / "none.png")
