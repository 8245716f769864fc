"""Dice-min loss over multimask outputs and ambiguous point targets.

A point on overlapping mitochondria is ambiguous: every instance containing it
is a correct answer.  SAM answers a point with three masks.  The loss of a
point is the smallest Dice loss over all (predicted mask, target instance)
pairs, so only the best match is back-propagated (SAM's own multimask rule,
extended to several valid targets).  SAM's IoU head is trained with an MSE
against the IoU each predicted mask actually reaches with its best target.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["soft_dice_loss", "dice_min_loss", "mask_iou"]


def soft_dice_loss(probs: torch.Tensor, targets: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft Dice loss ``1 - (2 sum(p g) + eps) / (sum p + sum g + eps)`` over the last two axes.

    Parameters
    ----------
    probs, targets : (..., H, W) tensors broadcastable to each other
        Probabilities in [0, 1] and binary targets.
    eps : float
        Smoothing (in pixels); keeps empty-vs-empty at loss 0.
    """
    inter = (probs * targets).sum(dim=(-2, -1))
    total = probs.sum(dim=(-2, -1)) + targets.sum(dim=(-2, -1))
    return 1.0 - (2.0 * inter + eps) / (total + eps)


def mask_iou(pred: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """IoU of binary masks over the last two axes (0 for two empty masks)."""
    pred, targets = pred.bool(), targets.bool()
    inter = (pred & targets).sum(dim=(-2, -1)).float()
    union = (pred | targets).sum(dim=(-2, -1)).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(union))


def dice_min_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    valid: torch.Tensor,
    iou_pred: torch.Tensor | None = None,
    iou_weight: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Dice loss of the best (mask, instance) pair per point, plus the IoU-head MSE.

    Parameters
    ----------
    logits : (P, M, h, w) tensor
        Mask logits of P prompts with M outputs each, at any resolution; they
        are bilinearly resized to the targets' (H, W).
    targets : (P, T, H, W) bool tensor
        Candidate target instances per prompt.
    valid : (P, T) bool tensor
        Which candidates are real; every prompt needs at least one.
    iou_pred : (P, M) tensor, optional
        SAM's predicted IoU per mask; trained towards the IoU of the
        thresholded mask with its best-matching valid target.
    iou_weight : float
        Weight of the IoU MSE in ``loss``.

    Returns
    -------
    dict
        ``loss`` (scalar to back-propagate), ``dice`` (mean Dice-min loss),
        ``iou_mse`` (0 without ``iou_pred``), ``best_mask`` (P,) index of the
        chosen output and ``best_target`` (P,) index of the matched instance.
    """
    if not bool(valid.any(dim=1).all()):
        raise ValueError("every prompt needs at least one valid target")
    h, w = targets.shape[-2:]
    if logits.shape[-2:] != (h, w):
        logits = F.interpolate(logits.float(), size=(h, w), mode="bilinear", align_corners=False)
    logits = logits.float()
    probs = torch.sigmoid(logits)
    tgt = targets.float()
    # (P, M, T) Dice loss of every output against every candidate instance;
    # the intersections are one batched matmul, no (P, M, T, H, W) temporary
    inter = torch.bmm(probs.flatten(2), tgt.flatten(2).transpose(1, 2))
    total = probs.sum(dim=(-2, -1))[:, :, None] + tgt.sum(dim=(-2, -1))[:, None, :]
    dl = 1.0 - (2.0 * inter + 1.0) / (total + 1.0)  # soft_dice_loss with eps = 1
    dl = dl.masked_fill(~valid[:, None, :], float("inf"))
    per_mask, target_of_mask = dl.min(dim=2)  # (P, M): best instance for each output
    dice, best_mask = per_mask.min(dim=1)  # (P,)
    best_target = target_of_mask.gather(1, best_mask[:, None])[:, 0]
    out = {"dice": dice.mean(), "best_mask": best_mask, "best_target": best_target}
    loss = out["dice"]
    if iou_pred is not None:
        with torch.no_grad():
            p, m = target_of_mask.shape
            matched = tgt[torch.arange(p)[:, None], target_of_mask]  # (P, M, H, W)
            actual = mask_iou(logits > 0, matched)
        mse = F.mse_loss(iou_pred.float(), actual)
        out["iou_mse"] = mse
        loss = loss + iou_weight * mse
    else:
        out["iou_mse"] = torch.zeros((), device=logits.device)
    out["loss"] = loss
    return out
