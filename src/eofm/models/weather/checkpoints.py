"""Pretrained checkpoints into the project's weight files, for every backbone.

Each model's published checkpoints have their own key layout and quirks (Aurora's
``net.`` prefix and history size, ClimaX's ``channel``/``var`` names and position
embedding grid, Prithvi WxC's ``model_state`` wrapper). :func:`import_weights` fetches a
checkpoint (a local file or a pinned, checksummed Hugging Face download), loads it into
the configured backbone with the model's own adaptation, and writes safetensors + config
that every downstream rule reads the same way as weights pretrained here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from eofm.hub import (
    HubWeights,
    download_weights,
    load_state_dict_file,
    save_weights,
    sha256_file,
)
from eofm.io import write_json
from eofm.models.weather import get_adapter
from eofm.models.weather.base import load_fitting

LOG = logging.getLogger(__name__)


def load_pretrained(
    model_name: str, module: nn.Module, state: Mapping[str, Any], where: str
) -> dict[str, list[str]]:
    """Load an official checkpoint's state dict into ``module`` the way its model expects.

    ``state`` is a bare state dict: :func:`eofm.hub.load_state_dict_file` has already
    unwrapped Lightning's ``state_dict`` and Prithvi WxC's ``model_state``.
    """
    if model_name == "climax":
        from eofm.models.weather.climax import OFFICIAL_VARIABLES, load_official_state_dict

        embed = state.get("net.var_embed", state.get("net.channel_embed", state.get("var_embed")))
        official = embed is not None and embed.shape[1] == len(OFFICIAL_VARIABLES)
        names = OFFICIAL_VARIABLES if official and embed.shape[1] != len(module.variables) else None
        return load_official_state_dict(module, state, where, checkpoint_variables=names)
    state = dict(state)
    if model_name == "aurora":
        state = module._adapt_checkpoint(state)  # strips "net.", renames old keys
        history_key = "encoder.surf_token_embeds.weights.2t"
        if history_key in state and state[history_key].shape[2] < module.max_history_size:
            module.adapt_checkpoint_max_history_size(state)
    return load_fitting(module, state, where)


def fetch_checkpoint(source: Mapping[str, str]) -> tuple[Path, dict[str, str]]:
    """The checkpoint file for a config ``weights:`` entry, and its provenance.

    ``{path[, sha256]}``: a local file (checked when a checksum is given);
    ``{repo, file, revision, sha256}``: a pinned, verified Hugging Face Hub download.
    """
    if "path" in source:
        path = Path(source["path"])
        if not path.is_file():
            raise FileNotFoundError(f"{path}: checkpoint file not found (weights.path in config)")
        digest = sha256_file(path)
        expected = source.get("sha256")
        if expected and digest.lower() != expected.lower():
            raise ValueError(
                f"{path}: sha256 {digest} does not match weights.sha256 {expected} in config"
            )
        return path, {"path": str(path), "sha256": digest}
    missing = [key for key in ("repo", "file", "revision", "sha256") if key not in source]
    if missing:
        raise ValueError(
            f"weights: {missing} missing; expected a path or repo/file/revision/sha256"
        )
    spec = HubWeights(
        repo_id=source["repo"],
        filename=source["file"],
        revision=source["revision"],
        sha256=source["sha256"],
    )
    path = download_weights(spec)
    provenance = {k: source[k] for k in ("repo", "file", "revision", "sha256")}
    return path, provenance


def import_weights(
    model: str,
    size: str,
    levels: Sequence[int],
    static_path: str | os.PathLike[str],
    source: Mapping[str, str],
    weights_path: str | os.PathLike[str],
    config_path: str | os.PathLike[str],
    summary_path: str | os.PathLike[str],
) -> dict[str, Any]:
    """Fetch, adapt and save a pretrained backbone; refuse a checkpoint that does not fit."""
    adapter = get_adapter(model, size, static_path, levels)
    path, provenance = fetch_checkpoint(source)
    where = str(path)
    module = adapter.build()
    report = load_pretrained(model, module, load_state_dict_file(path), where)
    total = len(module.state_dict())
    if not report["loaded"]:
        raise ValueError(
            f"{where}: no tensor fits {model}-{size} (unexpected keys "
            f"{report['unexpected'][:5]}, shape mismatches {report['skipped_shape'][:5]}); "
            f"is it a {model} checkpoint of size {size!r}?"
        )
    if report["missing"] or report["skipped_shape"]:
        LOG.warning(
            "%s: %d of %d tensors left at random init (missing %s, shape mismatch %s)",
            where,
            total - len(report["loaded"]),
            total,
            report["missing"][:5],
            report["skipped_shape"][:5],
        )
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
