"""Pretrained checkpoints into the project's weight files, for every backbone.

Each model's published checkpoints have their own key layout and quirks (Aurora's
``net.`` prefix and history size, ClimaX's ``channel``/``var`` names and position
embedding grid, Prithvi WxC's ``model_state`` wrapper); each adapter's
``load_pretrained`` knows its own. :func:`import_weights` fetches a checkpoint (a local
file or a pinned, checksummed Hugging Face download), loads it into the configured
backbone with that adaptation, refuses one that leaves more than a few tensors at random
init (unless ``allow_partial``), and writes safetensors + config that every downstream
rule reads the same way as weights pretrained here.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from eofm.hub import fetch_checkpoint, load_state_dict_file, save_weights
from eofm.io import write_json
from eofm.models.weather import get_adapter

LOG = logging.getLogger(__name__)

#: The largest share of a backbone's tensors a checkpoint may leave at random init
#: (shape mismatches and missing keys) before the import fails without ``allow_partial``.
MAX_PARTIAL_FRACTION = 0.05


def import_weights(
    model: str,
    size: str,
    levels: Sequence[int],
    static_path: str | os.PathLike[str],
    source: Mapping[str, str],
    weights_path: str | os.PathLike[str],
    config_path: str | os.PathLike[str],
    summary_path: str | os.PathLike[str],
    *,
    stats_path: str | os.PathLike[str] | None = None,
    allow_partial: bool = False,
) -> dict[str, Any]:
    """Fetch, adapt and save a pretrained backbone; refuse a checkpoint that does not fit.

    ``stats_path`` is the training-period statistics JSON, for backbones that normalise
    with it. More than :data:`MAX_PARTIAL_FRACTION` of the tensors left at random init
    fails unless ``allow_partial`` (config ``weights.allow_partial``); what is skipped is
    printed on stderr either way, not only logged.
    """
    adapter = get_adapter(model, size, static_path, levels, stats_path)
    path, provenance = fetch_checkpoint(source)
    where = str(path)
    module = adapter.build()
    report = adapter.load_pretrained(module, load_state_dict_file(path), where)
    total = len(module.state_dict())
    if not report["loaded"]:
        raise ValueError(
            f"{where}: no tensor fits {model}-{size} (unexpected keys "
            f"{report['unexpected'][:5]}, shape mismatches {report['skipped_shape'][:5]}); "
            f"is it a {model} checkpoint of size {size!r}?"
        )
    check_partial(report, total, f"{where} ({model}-{size})", allow_partial)
    save_weights(module, weights_path, adapter.config(), config_path)
    summary = {
        "task": "import_weights",
        "model": f"{model}-{size}",
        "source": provenance,
        "tensors_total": total,
        "tensors_loaded": len(report["loaded"]),
        **{k: v for k, v in report.items() if k != "loaded"},
    }
    write_json(summary, summary_path)
    return summary


def check_partial(
    report: dict[str, list[str]], total: int, where: str, allow_partial: bool
) -> None:
    """Refuse a load that left over :data:`MAX_PARTIAL_FRACTION` of ``total`` tensors at
    random init unless ``allow_partial``; print what was skipped on stderr either way."""
    skipped, missing = report["skipped_shape"], report["missing"]
    left = len(skipped) + len(missing)
    if not left:
        return
    message = (
        f"{where}: {left} of {total} tensors left at random init "
        f"({len(skipped)} shape mismatches, e.g. {skipped[:5]}; "
        f"{len(missing)} missing, e.g. {missing[:5]})"
    )
    if left > MAX_PARTIAL_FRACTION * total and not allow_partial:
        raise ValueError(
            f"{message}; more than {MAX_PARTIAL_FRACTION:.0%} of the model: is it the right "
            f"model and size? Set weights.allow_partial: true in the config to accept it"
        )
    LOG.warning("%s", message)  # the job log
    # and the console: a Snakemake job's sys.stderr is its log (eofm.logs.job_log)
    print(f"warning: {message}", file=sys.__stderr__ or sys.stderr, flush=True)
