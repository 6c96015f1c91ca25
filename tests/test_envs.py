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
