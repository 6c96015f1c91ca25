"""The conda envs and pyproject.toml pin the same versions."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[=<>!\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _pins(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for req in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", req.strip())
        if match:
            pins[_name(match.group(1))] = match.group(2)
    return pins


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _env_pins(path: Path) -> dict[str, str]:
    env = yaml.safe_load(path.read_text())
    flat: list[str] = []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            flat += dep.get("pip", [])
        else:  # conda syntax name==version or name=version
            flat.append(re.sub(r"(?<![=<>!])=(?!=)", "==", dep))
    return _pins(flat)


def test_every_pin_in_pyproject_is_exact():
    project = _pyproject()
    for req in project["dependencies"] + project["optional-dependencies"]["torch"]:
        assert "==" in req, f"pyproject.toml: {req!r} is not pinned with =="


def test_envs_agree_with_pyproject():
    project = _pyproject()
    core = _pins(project["dependencies"])
    torch = _pins(project["optional-dependencies"]["torch"])
    expected = {"data.yaml": core, "torch.yaml": core | torch}
    for env_name, wanted in expected.items():
        env = _env_pins(ROOT / "envs" / env_name)
        for name, version in wanted.items():
            if name == "snakemake":  # jobs run under the driver's snakemake
                continue
            assert env.get(name) == version, (
                f"envs/{env_name}: {name} pinned to {env.get(name)!r}, pyproject.toml has "
                f"{version!r}"
            )
        extra = set(env) - set(wanted) - {"python", "pip"}
        assert not extra, f"envs/{env_name}: packages {sorted(extra)} not in pyproject.toml"


def test_native_libraries_coexist_in_one_process(tmp_path):
    """netCDF, GRIB (eccodes) and PROJ/GDAL load together and the interpreter exits cleanly.

    eccodes ≥ 2.38 wheels bundle their own PROJ, which clashes with pyproj's: the job does
    its work and then dies at exit (SIGSEGV), failing every Snakemake rule that touched
    both. This runs the combination in a fresh interpreter and checks the exit status.
    """
    import subprocess
    import sys

    code = (
        "import numpy as np, xarray as xr, eccodes, cfgrib, pyproj, rasterio, netCDF4, sys;"
        "p = sys.argv[1];"
        "xr.Dataset({'a': ('x', np.arange(3.0))}).to_netcdf(p);"
        "assert float(xr.open_dataset(p)['a'].sum()) == 3.0"
    )
    for order in ("", "import pyproj;"):
        result = subprocess.run(
            [sys.executable, "-c", order + code, str(tmp_path / f"check{len(order)}.nc")],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-2000:]}"


def _demo_command(gpus: str) -> str:
    import subprocess

    result = subprocess.run(
        ["make", "-n", "demo", f"GPUS={gpus}", "VENV=/nonexistent-venv"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return next(line for line in result.stdout.splitlines() if "snakemake --cores" in line)


def test_demo_lifts_the_gpu_cap_only_without_a_gpu():
    """Without a GPU the one-`gpu`-job cap only serialises CPU training jobs; with one it stays."""
    import os

    assert f"--resources gpu={len(os.sched_getaffinity(0))}" in _demo_command("0")  # nproc
    assert "--resources" not in _demo_command("1")
