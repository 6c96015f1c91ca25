"""WGAST's weak supervision: the 10 m prediction averaged to 30 m against Landsat t2.

G loss = a·LSGAN + b·L1 + c·(1 − cosine) + d·(1 − MS-SSIM), all at 30 m, masked by the
Landsat t2 validity mask (gap-filled target pixels teach nothing).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from eofm.models.lst.wgast import gaussian_kernel

#: The standard five MS-SSIM scale weights (Wang et al. 2003); `ms_ssim` uses the first
#: ``scales`` of them, renormalised to sum to 1.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def pool_to_30m(x: torch.Tensor) -> torch.Tensor:
    """Physical averaging: each 30 m pixel is the mean of its 3×3 block of 10 m pixels."""
    return F.avg_pool2d(x, kernel_size=3, stride=3)


def masked_l1(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the valid pixels (0 when none is valid)."""
    w = valid.to(pred.dtype)
    return (w * (pred - target).abs()).sum() / w.sum().clamp_min(1.0)


def cosine_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """1 − the mean over samples of the cosine similarity of the flattened valid pixels.

    LST is one channel, so a per-pixel cosine over channels would only be the sign of the
    product; the image-level cosine measures whether the spatial pattern points the same way.
    """
    w = valid.to(pred.dtype).flatten(1)
    cos = F.cosine_similarity(pred.flatten(1) * w, target.flatten(1) * w, dim=1, eps=1e-8)
    return 1.0 - cos.mean()


def _filter(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    return F.conv2d(x, kernel.to(x.dtype))


def _ssim_cs(
    x: torch.Tensor, y: torch.Tensor, kernel: torch.Tensor, data_range: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample mean SSIM and contrast-structure term (valid convolution, no padding)."""
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    mu_x, mu_y = _filter(x, kernel), _filter(y, kernel)
    sxx = _filter(x * x, kernel) - mu_x**2
    syy = _filter(y * y, kernel) - mu_y**2
    sxy = _filter(x * y, kernel) - mu_x * mu_y
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    lum = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return (lum * cs).flatten(1).mean(1), cs.flatten(1).mean(1)


def ms_ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    scales: int = 3,
    window: int = 7,
    sigma: float = 1.5,
    data_range: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Multi-scale SSIM of (N, 1, H, W) images, mean over the batch, in [0, 1].

    The standard 5-scale, 11-px MS-SSIM needs images over 160 px; the 32 px training
    patches take 3 scales (32, 16, 8 px) with a 7-px Gaussian window (σ = 1.5) and the
    first three standard weights renormalised. As pytorch-msssim's ``normalize="relu"``
    (the `normalize=True` of the WGAST training), each scale's value is clipped at 0 before
    the weighted product, so a negative correlation cannot make the power undefined.
    ``data_range`` defaults to the range of ``y`` (LST in °C has no fixed range).
    """
    if data_range is None:
        data_range = (y.max() - y.min()).detach().clamp_min(1e-6)
    data_range = torch.as_tensor(data_range, dtype=x.dtype, device=x.device)
    min_side = min(x.shape[-2:])
    if min_side < window * 2 ** (scales - 1):
        raise ValueError(
            f"ms_ssim: images of {tuple(x.shape[-2:])} px are too small for {scales} scales "
            f"with a {window}-px window (need ≥ {window * 2 ** (scales - 1)} px)"
        )
    kernel = gaussian_kernel(window, sigma)[None, None].to(x.device)
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=x.dtype, device=x.device)
    weights = weights / weights.sum()
    values = []
    for level in range(scales):
        ssim, cs = _ssim_cs(x, y, kernel, data_range)
        if level < scales - 1:
            values.append(torch.relu(cs))
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        else:
            values.append(torch.relu(ssim))
    stack = torch.stack(values, dim=0)  # (scales, N)
    return torch.prod(stack ** weights[:, None], dim=0).mean()


def ms_ssim_loss(
    pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, *, scales: int = 3
) -> torch.Tensor:
    """1 − MS-SSIM, with gap-filled target pixels replaced by the (detached) prediction so
    they count as agreement, not as an error."""
    filled = torch.where(valid.bool(), target, pred.detach())
    return 1.0 - ms_ssim(pred, filled, scales=scales)


def lsgan_loss(scores: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss: mean squared distance of the patch scores to 1 (real) or 0."""
    return F.mse_loss(scores, torch.full_like(scores, 1.0 if real else 0.0))


def generator_terms(
    pred30: torch.Tensor,
    target30: torch.Tensor,
    valid30: torch.Tensor,
    fake_scores: torch.Tensor,
    *,
    scales: int = 3,
) -> dict[str, torch.Tensor]:
    """The four generator loss terms (unweighted), keyed `gan`, `l1`, `cosine`, `ms_ssim`."""
    return {
        "gan": lsgan_loss(fake_scores, True),
        "l1": masked_l1(pred30, target30, valid30),
        "cosine": cosine_loss(pred30, target30, valid30),
        "ms_ssim": ms_ssim_loss(pred30, target30, valid30, scales=scales),
    }
