"""Dice-min loss over multimask outputs and ambiguous point targets.

A point on overlapping mitochondria is ambiguous: every instance containing it
is a correct answer.  SAM answers a point with three masks.  The loss of a
point is the smallest Dice loss over all (predicted mask, target instance)
pairs, so only the best match is back-propagated (SAM's own multimask rule,
extended to several valid targets).  SAM's IoU head is trained with an MSE
against the IoU each predicted mask actually reaches with its best target.

The optional *shift-consistency* loss asks the model for the same masks when
the same object is seen from two tiles a window-aligned shift apart, as
happens wherever ``mitoscale segment``'s overlapping tiles meet.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["soft_dice_loss", "dice_min_loss", "mask_iou", "shift_consistency_loss"]


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


def shift_consistency_loss(logits_a: torch.Tensor, logits_b: torch.Tensor,
                           origin_a: torch.Tensor, origin_b: torch.Tensor,
                           shift: torch.Tensor, scale: int) -> torch.Tensor:
    """Disagreement between two views' masks of the same prompts, over their common area.

    View B's tile starts ``shift`` px (y, x) after view A's, and each prompt's
    window (``origin``, px in its own tile) is placed in a common frame.  For
    every output mask of A and the same output of B, over the pixels both
    windows cover, the loss is ``sum((pa - pb)^2) / (sum(pa + pb) + 1)``: 0
    for identical masks and ``1 - Dice`` (up to the +1) for two binary masks.
    Both views get gradients; the mean over masks and prompts is returned.

    Parameters
    ----------
    logits_a, logits_b : (B, K, M, h, w) tensors
        Low-resolution mask logits of the windows.
    origin_a, origin_b : (B, K, 2) long tensors
        Window corners (y, x) in input pixels of their tiles.
    shift : (B, 2) tensor
        Origin of tile B minus origin of tile A (px).
    scale : int
        Input pixels per low-resolution logit (``patch // 4`` for SAM).

    Returns
    -------
    scalar tensor
    """
    pa, pb = torch.sigmoid(logits_a.float()), torch.sigmoid(logits_b.float())
    _, _, _, h, w = pa.shape
    d = (origin_b + shift[:, None, :].to(origin_b) - origin_a) // scale  # (B, K, 2) B's window in A's
    losses = []
    for b in range(pa.shape[0]):
        for k in range(pa.shape[1]):
            dy, dx = int(d[b, k, 0]), int(d[b, k, 1])
            ya0, ya1, xa0, xa1 = max(0, dy), min(h, h + dy), max(0, dx), min(w, w + dx)
            if ya1 <= ya0 or xa1 <= xa0:
                continue
            a = pa[b, k, :, ya0:ya1, xa0:xa1]
            bb = pb[b, k, :, ya0 - dy:ya1 - dy, xa0 - dx:xa1 - dx]
            losses.append(((a - bb) ** 2).sum(dim=(-2, -1)) / ((a + bb).sum(dim=(-2, -1)) + 1.0))
    if not losses:
        return pa.sum() * 0.0
    return torch.cat(losses).mean()
