"""Low-rank adapters (LoRA) on a backbone's attention projections, for any torch model.

Fine-tuning a whole weather backbone costs its full gradient and optimiser state; LoRA
freezes every weight and learns a rank-r update ``scale · B·A`` beside chosen linear
layers (Hu et al. 2021), so the trainable state is a few thousand numbers per layer and a
run saves only those (:func:`lora_state_dict`). ``B`` starts at zero, so a freshly adapted
model computes exactly what the backbone did.

Layers are chosen by name (each adapter's ``lora_targets``), not by class, so the same
code serves Aurora, ClimaX and Prithvi WxC without their packages knowing about it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "LoRALinear",
    "apply_lora",
    "load_lora_state_dict",
    "lora_state_dict",
    "merge_lora_",
]


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update: ``base(x) + s·B·A·x``.

    ``A`` (rank × in) starts Kaiming-uniform and ``B`` (out × rank) at zero, so the output
    at initialisation is the base layer's, bit for bit; ``s = alpha / rank``.
    """

    def __init__(
        self, base: nn.Linear, rank: int = 8, alpha: float = 8.0, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        if alpha <= 0:
            raise ValueError(f"LoRA alpha must be > 0, got {alpha}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"LoRA dropout must be in [0, 1), got {dropout}")
        self.base = base
        self.base.requires_grad_(False)
        self.rank = int(rank)
        self.alpha = float(alpha)
        self.scale = self.alpha / self.rank
        like = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.lora_a = nn.Parameter(torch.empty(self.rank, base.in_features, **like))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, self.rank, **like))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))  # as nn.Linear and peft
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = F.linear(F.linear(self.dropout(x), self.lora_a), self.lora_b)
        return self.base(x) + self.scale * update

    def delta_weight(self) -> torch.Tensor:
        """The update ``s·B·A`` (out × in) that :meth:`merged` adds to the base weight."""
        return self.scale * (self.lora_b @ self.lora_a)

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` computing the same function, for export without LoRA."""
        base = self.base
        out = nn.Linear(
            base.in_features,
            base.out_features,
            bias=base.bias is not None,
            device=base.weight.device,
            dtype=base.weight.dtype,
        )
        out.weight.copy_(base.weight + self.delta_weight().to(base.weight.dtype))
        if base.bias is not None:
            out.bias.copy_(base.bias)
        out.requires_grad_(base.weight.requires_grad)
        return out

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha}"


def apply_lora(
    model: nn.Module,
    targets: Sequence[str],
    rank: int = 8,
    alpha: float = 8.0,
    dropout: float = 0.0,
) -> list[str]:
    """Freeze all of ``model`` and wrap the matching linear layers in :class:`LoRALinear`.

    A layer matches a pattern when its qualified name (``model.named_modules()``) matches
    it with :func:`fnmatch.fnmatchcase` either whole or as a dotted suffix: ``"qkv"``
    matches every layer called ``qkv``, ``"blocks.*.attn.qkv"`` those under ``blocks``
    (``*`` spans dots), also inside a wrapper such as an activation-checkpointing one.
    Returns the qualified names replaced. Raises ``ValueError`` when nothing matches, so
    a misspelt pattern never silently trains nothing.
    """
    if isinstance(targets, str):
        targets = (targets,)
    targets = tuple(targets)
    if not targets:
        raise ValueError(f"apply_lora: no target patterns given for {type(model).__name__}")
    existing = [name for name, m in model.named_modules() if isinstance(m, LoRALinear)]
    if existing:
        raise ValueError(
            f"apply_lora: {type(model).__name__} already has LoRA on {existing[:3]}"
            f"{' …' if len(existing) > 3 else ''}; apply it once"
        )
    model.requires_grad_(False)
    chosen = [
        name
        for name, module in model.named_modules()
        if name and isinstance(module, nn.Linear) and _matches(name, targets)
    ]
    if not chosen:
        raise ValueError(
            f"apply_lora: no nn.Linear layer of {type(model).__name__} matches {list(targets)}; "
            f"linear layers are e.g. {_linear_names(model)[:6]}"
        )
    for name in chosen:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        if isinstance(parent, nn.MultiheadAttention):
            raise ValueError(
                f"apply_lora: {name!r} belongs to an nn.MultiheadAttention, which reads its "
                f"weights directly and would bypass the adapter; narrow the patterns {targets}"
            )
        setattr(parent, child, LoRALinear(getattr(parent, child), rank, alpha, dropout))
    return chosen


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the LoRA tensors of ``model``'s state dict: all a LoRA run needs to save."""
    ids = {
        id(p) for m in model.modules() if isinstance(m, LoRALinear) for p in (m.lora_a, m.lora_b)
    }
    if not ids:
        raise ValueError(f"lora_state_dict: {type(model).__name__} has no LoRA layers")
    # Keys from state_dict(), which wrappers such as activation checkpointing keep equal to
    # the unwrapped model's, so the tensors load back with load_state_dict.
    return {
        key: value.detach()
        for key, value in model.state_dict(keep_vars=True).items()
        if id(value) in ids
    }


def load_lora_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Load tensors saved by :func:`lora_state_dict` into a model with the same LoRA layers."""
    expected = set(lora_state_dict(model))
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(
            f"load_lora_state_dict: LoRA keys differ for {type(model).__name__}: "
            f"missing {missing[:4]}, unexpected {unexpected[:4]}"
        )
    model.load_state_dict(dict(state), strict=False)


def merge_lora_(model: nn.Module) -> list[str]:
    """Replace every :class:`LoRALinear` in ``model`` by its merged ``nn.Linear``, in place.

    The model then has the backbone's own parameter names again, so exported weights load
    into the unmodified architecture. Returns the qualified names merged.
    """
    merged = [name for name, m in model.named_modules() if isinstance(m, LoRALinear)]
    for name in merged:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, getattr(parent, child).merged())
    return merged


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatchcase(name, p) or fnmatchcase(name, f"*.{p}") for p in patterns)


def _linear_names(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
