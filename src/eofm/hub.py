"""Model weights on disk: safetensors plus a JSON config, never pickles.

Local weight files are what every rule exchanges; downloading from the Hugging Face Hub
(pinned revision, checksum) lands in the same format.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from torch import nn

from eofm.io import atomic_path, read_json, write_json


def save_weights(
    module: nn.Module,
    weights_path: str | os.PathLike[str],
    config: dict[str, Any],
    config_path: str | os.PathLike[str],
) -> None:
    """Write the module's tensors as safetensors and its rebuild config as JSON, atomically."""
    with atomic_path(weights_path) as tmp:
        save_model(module, str(tmp), metadata={"format": "pt"})
    write_json(config, config_path)


def load_weights(module: nn.Module, weights_path: str | os.PathLike[str]) -> nn.Module:
    """Load safetensors into ``module`` strictly; name the file and the keys on mismatch."""
    path = Path(weights_path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: weights file not found")
    try:
        missing, unexpected = load_model(module, str(path), strict=False)
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path}: not a readable safetensors file ({err})") from None
    except RuntimeError as err:  # shape mismatch
        raise ValueError(f"{path}: weights do not fit the model ({err})") from None
    if missing or unexpected:
        raise ValueError(
            f"{path}: weights do not fit the model; missing keys {sorted(missing)[:5]}, "
            f"unexpected keys {sorted(unexpected)[:5]}"
        )
    return module


def read_config(config_path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON config saved beside a weights file."""
    return read_json(config_path)
