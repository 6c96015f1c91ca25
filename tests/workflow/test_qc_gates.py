"""Every rule that reads an ERA5 store waits for, and checks, the stores' QC reports."""

from __future__ import annotations

import re
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest

from eofm.data.qc import QCError
from eofm.io import write_json
from tests.workflow.run import ROOT

RULE = re.compile(r"^rule (\w+):\n(.*?)(?=^rule |\Z)", re.MULTILINE | re.DOTALL)
# rules that read a store to check, describe or summarise it: they produce the QC itself
QC_PRODUCERS = {"qc_store", "qc_static", "write_manifest"}


def _rules() -> dict[str, str]:
    return {
        name: body
        for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk"))
        for name, body in RULE.findall(smk.read_text())
    }


def _input_block(body: str) -> str:
    match = re.search(r"^    input:\n(.*?)(?=^    \w+:|\Z)", body, re.MULTILINE | re.DOTALL)
    return match.group(1) if match else ""


ERA5_INPUTS = r"\b(era5_stores|encode_inputs|test_stores|ERA5_STATIC)\b"


def test_every_reader_of_an_era5_store_takes_and_checks_its_qc():
    readers = {
        name: body
        for name, body in _rules().items()
        if name not in QC_PRODUCERS and re.search(ERA5_INPUTS, _input_block(body))
    }
    assert {"compute_stats", "pretrain_backbone", "encode_latents", "train_decoder"} <= set(readers)
    assert {"finetune_backbone", "evaluate_decoder", "evaluate_finetuned"} <= set(readers)
    ungated, unchecked = [], []
    for name, body in readers.items():
        inputs = _input_block(body)
        if not re.search(r"store_qc=(store_qc\(|encode_store_qc)|qc=store_qc_reports\(", inputs):
            ungated.append(name)
        script = re.search(r'script:\n\s+"(.+?)"', body).group(1)
        text = (ROOT / "workflow" / "rules" / script).resolve().read_text()
        if "require_store_qc(snakemake.input.store_qc)" not in text and "build_stats" not in text:
            unchecked.append(name)
    assert not ungated, f"rules reading ERA5 stores without their QC as input: {ungated}"
    assert not unchecked, f"scripts that do not check the stores' QC first: {unchecked}"


def test_qc_reports_survive_a_crashing_qc_job():
    """update(): Snakemake neither deletes the old report before the job nor after a failure."""
    rules = _rules()
    for name in ("qc_store", "qc_static"):
        assert re.search(r'report=update\("results/qc/era5/', rules[name]), name


def _reports(tmp_path: Path) -> list[str]:
    ok = {"store": "resources/era5/sample/2020-01.zarr", "passed": True, "problems": []}
    bad = {
        "store": "resources/era5/sample/2020-02.zarr",
        "passed": False,
        "problems": ["resources/era5/sample/2020-02.zarr: variable 't' chunk t/c/3/0/0/0 ..."],
    }
    paths = [tmp_path / "2020-01.json", tmp_path / "2020-02.json"]
    write_json(ok, paths[0])
    write_json(bad, paths[1])
    return [str(p) for p in paths]


@pytest.mark.parametrize("script", ["pretrain_backbone", "encode_latents"])
def test_a_month_that_failed_qc_stops_the_job_before_any_work(script, tmp_path, capfd):
    """The script runs as Snakemake would run it; its inputs are not even there."""
    missing = str(tmp_path / "absent")
    fake = SimpleNamespace(
        input=SimpleNamespace(
            store_qc=_reports(tmp_path),
            stores=[missing],
            static=missing,
            stats=missing,
            weights=missing,
            backbone_config=missing,
        ),
        output=SimpleNamespace(
            weights=str(tmp_path / "out" / "w"),
            config=str(tmp_path / "out" / "c"),
            summary=str(tmp_path / "out" / "s"),
            latents=str(tmp_path / "out" / "l.zarr"),
        ),
        params=SimpleNamespace(
            model="aurora",
            size="tiny",
            levels=[500],
            step_hours=6,
            start="2020-01",
            stop="2020-02",
            training={},
            checkpoint_dir=str(tmp_path / "ckpt"),
            month="2020-02",
        ),
        log=[str(tmp_path / "job.log")],
        threads=1,
        wildcards={},
    )
    with pytest.raises(QCError, match=r"QC failed for 1 of 2 store\(s\)"):
        runpy.run_path(str(ROOT / "scripts" / f"{script}.py"), init_globals={"snakemake": fake})
    assert not (tmp_path / "out").exists()
    console = capfd.readouterr().err
    assert "eofm: QCError: QC failed for 1 of 2 store(s):" in console
    assert "chunk t/c/3/0/0/0" in (tmp_path / "job.log").read_text()


def test_a_missing_report_is_named(tmp_path):
    from eofm.data.qc import require_store_qc

    with pytest.raises(QCError, match=r"nope\.json: QC report not found"):
        require_store_qc([tmp_path / "nope.json"])
    require_store_qc(_reports(tmp_path)[:1])  # a passing report lets the job go on
