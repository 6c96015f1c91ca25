"""Through a real SLURM: GPU rules on the GPU partition with a GPU, a scancel'd training
job resumed by its retry, the same results as a local run.

CI starts a one-node cluster first (`.ci/slurm.sh start`, as root); elsewhere these tests
skip and say why. The site profile is made the way the README tells users to: a copy of
`profiles/slurm` with only its SITE lines edited (here: 2 CPUs per GPU job, fast polling).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.workflow.run import DAG_TIMEOUT_S, ROOT, TINY, snakemake
from tests.workflow.test_profiles import gpu_rules

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

BACKBONE = "aurora-tiny"
TARGET = "tp"
EPOCHS = 6  # fine-tuning epochs of the run that is cancelled after its second
TARGETS = [
    f"results/metrics/weather/{BACKBONE}/decoder/{TARGET}.json",
    f"results/metrics/weather/{BACKBONE}/full/{TARGET}.json",
]
# LOAN's table and danger map: its GPU rules (train_loan, danger_map) on the GPU partition
# too; the tiny config keeps the default demo-sized LOAN (about a minute of work).
DEFAULTS = yaml.safe_load((ROOT / "config/config.yaml").read_text())
LOAN_DAY = DEFAULTS["loan"]["danger_map"]["days"][0]
LOAN_TARGETS = [
    "results/tables/loan-sample.md",
    f"results/figures/loan-sample-danger-{LOAN_DAY}.png",
]
# Prithvi-EO and WGAST run in the default DAG (tests/workflow/test_eo_workflow.py,
# test_wgast_workflow.py), not in this weather + LOAN one
OTHER_TASK_GPU_RULES = ("train_eo", "predict_eo", "train_wgast", "predict_wgast")
HEADER = re.compile(r"^eofm job: (.*)$", re.MULTILINE)


def _slurm_unavailable() -> str | None:
    if shutil.which("sbatch") is None:
        return "no SLURM client on PATH (CI starts a cluster with `sudo bash .ci/slurm.sh start`)"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm missing (`make install-slurm`)"
    status = subprocess.run(
        ["bash", str(ROOT / ".ci/slurm.sh"), "status"], capture_output=True, text=True, timeout=60
    )
    if status.returncode != 0:
        return f"SLURM is not up (`.ci/slurm.sh status`: {status.stderr.strip()[-300:]})"
    return None


@pytest.fixture(scope="module")
def cluster() -> None:
    reason = _slurm_unavailable()
    if reason:
        pytest.skip(reason)


def _site_profile(folder: Path) -> Path:
    """profiles/slurm with its SITE lines edited for a 2-CPU test node."""
    profile = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    # The rules' own threads (2): the results then equal the local run's bit for bit.
    profile["set-threads"] = {rule: 2 for rule in profile["set-threads"]}
    profile.update(
        {
            "latency-wait": 5,
            "retries": 1,
            "slurm-init-seconds-before-status-checks": 2,
            "seconds-between-status-checks": 1,
            "max-status-checks-per-second": 2,
        }
    )
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(profile))
    return folder


def _longer_finetune(path: Path, epochs: int) -> Path:
    """On top of the tiny config: more fine-tuning epochs, so a scancel lands mid-run."""
    path.write_text(yaml.safe_dump({"weather": {"finetune": {"epochs": epochs}}}))
    return path


def _headers(workdir: Path) -> dict[str, list[dict[str, str]]]:
    """Each rule's job-log headers (where its jobs ran), from logs/<rule>/..."""
    found: dict[str, list[dict[str, str]]] = {}
    for log in sorted((workdir / "logs").rglob("*.log")):
        rule = log.relative_to(workdir / "logs").parts[0]
        match = HEADER.search(log.read_text(errors="replace"))
        fields = dict(item.split("=", 1) for item in match.group(1).split()) if match else {}
        found.setdefault(rule, []).append(fields)
    return found


def _metrics(workdir: Path) -> dict[str, dict]:
    return {t: json.loads((workdir / t).read_text()) for t in TARGETS}


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("slurm")
    profile = _site_profile(base / "site")
    workdir = base / "work"
    started = time.perf_counter()
    result = snakemake(
        *TARGETS, *LOAN_TARGETS, "--workflow-profile", str(profile), "--configfile", str(TINY),
        workdir=workdir, timeout=DAG_TIMEOUT_S,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-5000:]
    print(f"DAG through SLURM: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return workdir


def test_gpu_rules_ran_on_the_gpu_partition_with_a_gpu_and_cpu_rules_did_not(slurm_run):
    headers = _headers(slurm_run)
    gpu = gpu_rules()
    # WGAST's and Prithvi-EO's rules are not in this DAG; LOAN's are.
    expected = sorted(gpu - set(OTHER_TASK_GPU_RULES))
    ran_gpu = sorted(set(headers) & gpu)
    assert ran_gpu == expected, f"GPU rules this DAG should run: {expected}; ran {ran_gpu}"
    for rule, jobs in headers.items():
        for job in jobs:
            assert "slurm_job" in job, f"{rule}: ran outside SLURM ({job})"
            if rule in gpu:
                assert job["partition"] == "gpu", f"{rule}: {job}"
                assert job["cuda_visible_devices"] != "none", f"{rule}: no GPU allocated ({job})"
                assert job["cpus"] == "2", f"{rule}: threads and CPUs differ ({job})"
            else:
                assert job["partition"] == "cpu", f"{rule}: {job}"
                assert job["cuda_visible_devices"] == "none", f"{rule}: {job}"


def test_results_equal_a_local_run(slurm_run, request):
    """The same tiny config run locally (the shared run of tests/workflow/conftest.py)."""
    # asked for here, not as an argument: pytest would set the session-scoped run up before
    # `cluster` skips, and without a cluster this test would wait minutes for nothing
    finished_run = request.getfixturevalue("finished_run")
    here, there = _metrics(finished_run), _metrics(slurm_run)
    for target in TARGETS:
        for key, value in there[target].items():
            if isinstance(value, float):
                assert math.isclose(value, here[target][key], rel_tol=1e-6), (target, key)
            else:
                assert value == here[target][key], (target, key)


def test_a_scancelled_training_job_is_resubmitted_and_resumes(slurm_run):
    """scancel mid-training: SIGTERM → checkpoint → CANCELLED → retry resumes from it."""
    longer = _longer_finetune(slurm_run.parent / "longer.yaml", epochs=EPOCHS)
    profile = slurm_run.parent / "site"
    command = [
        sys.executable, "-m", "snakemake", TARGETS[1], "--cores", "2", "--directory",
        str(slurm_run), "--workflow-profile", str(profile), "--configfile", str(TINY), str(longer),
    ]  # fmt: skip
    log = slurm_run / "logs/finetune_backbone" / f"{BACKBONE}/full.log"
    pipe = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    with subprocess.Popen(command, cwd=ROOT, **pipe) as run:
        job = _wait_for_epochs(log, epochs=2, process=run)
        subprocess.run(["scancel", job], check=True)
        try:
            output, _ = run.communicate(timeout=DAG_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            run.send_signal(signal.SIGINT)
            output, _ = run.communicate(timeout=120)
            pytest.fail(f"Snakemake did not finish after the scancel:\n{output[-4000:]}")
    assert run.returncode == 0, output[-5000:]
    assert "CANCELLED" in output, output[-3000:]
    retried = log.read_text()
    resumed = re.search(rf"resuming after epoch (\d+) of {EPOCHS}", retried)
    assert resumed and int(resumed.group(1)) >= 2, retried[-3000:]
    assert HEADER.search(retried).group(1).split()[1] != f"slurm_job={job}"  # a new SLURM job
    summary = json.loads((slurm_run / f"results/weather/{BACKBONE}/full/train.json").read_text())
    assert summary["epochs"] == EPOCHS


def _wait_for_epochs(
    log: Path, epochs: int, process: subprocess.Popen, limit_s: float = 900
) -> str:
    """The SLURM job id of the training job, once its log shows ``epochs`` epochs done."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read()[-4000:]
            pytest.fail(f"Snakemake ended before training started:\n{output}")
        text = log.read_text(errors="replace") if log.exists() else ""
        header = HEADER.search(text)
        if header and re.search(rf"Epoch {epochs}\b", text):
            return dict(i.split("=", 1) for i in header.group(1).split())["slurm_job"]
        time.sleep(0.5)
    pytest.fail(f"{log}: training never reached epoch {epochs}")
