"""The SLURM profile sends every rule that asks for a GPU to the GPU partition."""

from __future__ import annotations

import re

import yaml

from tests.workflow.run import ROOT

RULE = re.compile(r"^rule (\w+):\n(.*?)(?=^rule |\Z)", re.MULTILINE | re.DOTALL)


def gpu_rules() -> set[str]:
    """Rules whose `resources:` ask for a GPU, read from the rule files."""
    found = set()
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        for name, body in RULE.findall(smk.read_text()):
            if re.search(r"^\s+gpu\s*=\s*[1-9]", body, re.MULTILINE):
                found.add(name)
    return found


def test_every_gpu_rule_goes_to_the_gpu_partition():
    rules = gpu_rules()
    assert {"pretrain_backbone", "train_decoder", "finetune_backbone"} <= rules
    profile = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    resources = profile["set-resources"]
    misrouted = sorted(r for r in rules if resources.get(r, {}).get("slurm_partition") != "gpu")
    assert not misrouted, f"GPU rules not sent to the gpu partition: {misrouted}"
