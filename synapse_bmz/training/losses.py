"""Losses on per-channel probabilities."""

from __future__ import annotations

import torch


def dice_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """1 - mean per-channel soft Dice; pred and target are (B, C, ...) in [0, 1]."""
    dims = (0,) + tuple(range(2, pred.ndim))
    inter = (pred * target).sum(dims)
    denom = (pred * pred).sum(dims) + (target * target).sum(dims)
    return 1 - ((2 * inter + eps) / (denom + eps)).mean()


def weighted_bce(pred: torch.Tensor, target: torch.Tensor, foreground_weight: float = 1.0) -> torch.Tensor:
    """Binary cross-entropy with foreground voxels weighted by ``foreground_weight``."""
    pred = pred.clamp(1e-6, 1 - 1e-6)
    w = 1 + (foreground_weight - 1) * target
    return (-(target * torch.log(pred) + (1 - target) * torch.log(1 - pred)) * w).mean()


def combined_loss(pred, target, foreground_weight: float = 1.0):
    """Dice + weighted BCE, the default for all our U-Nets."""
    return dice_loss(pred, target) + weighted_bce(pred, target, foreground_weight)


def masked_dice_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """1 - mean per-channel soft Dice over the voxels where ``mask`` is 1 (pseudo-labels)."""
    return dice_loss(pred * mask, target * mask, eps)
