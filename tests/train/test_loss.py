"""Dice-min loss on hand-made overlapping masks."""

import numpy as np
import pytest
import torch

from mitoscale.train.loss import dice_min_loss, mask_iou, soft_dice_loss


def _rect(h, w, y0, y1, x0, x1):
    m = torch.zeros(h, w, dtype=torch.bool)
    m[y0:y1, x0:x1] = True
    return m


def _logits(mask, scale=20.0):
    return (mask.float() * 2 - 1) * scale  # ~ +scale inside, -scale outside


def test_soft_dice_perfect_and_disjoint():
    a = _rect(16, 16, 2, 8, 2, 8).float()
    b = _rect(16, 16, 9, 14, 9, 14).float()
    assert soft_dice_loss(a, a).item() == pytest.approx(0.0, abs=1e-6)
    # disjoint: 1 - eps / (|a| + |b| + eps)
    assert soft_dice_loss(a, b).item() == pytest.approx(1 - 1 / (36 + 25 + 1))


def test_min_over_overlapping_targets_and_masks():
    # two crossing instances; the point lies on both (a cross-shaped overlap)
    horiz = _rect(32, 32, 14, 18, 2, 30)
    vert = _rect(32, 32, 2, 30, 14, 18)
    targets = torch.stack([horiz, vert])[None]  # (P=1, T=2, H, W)
    valid = torch.tensor([[True, True]])
    # mask 0 predicts garbage, mask 1 predicts exactly the vertical instance,
    # mask 2 the union of both
    garbage = _rect(32, 32, 0, 4, 0, 4)
    logits = torch.stack([_logits(garbage), _logits(vert), _logits(horiz | vert)])[None]
    out = dice_min_loss(logits, targets, valid, iou_weight=0.0)
    assert out["best_mask"].item() == 1
    assert out["best_target"].item() == 1
    assert out["dice"].item() < 1e-3
    # an invalid candidate never wins, even if it matches perfectly
    out2 = dice_min_loss(logits, targets, torch.tensor([[True, False]]))
    assert out2["best_target"].item() == 0
    assert out2["dice"].item() > 0.1


def test_only_best_pair_gets_gradient():
    inst_a = _rect(24, 24, 4, 10, 4, 20)
    inst_b = _rect(24, 24, 6, 20, 8, 12)
    targets = torch.stack([inst_a, inst_b])[None]
    valid = torch.ones(1, 2, dtype=torch.bool)
    logits = torch.stack([_logits(inst_a, 3.0), torch.zeros(24, 24), _logits(inst_b, -1.0)])[None]
    logits.requires_grad_(True)
    out = dice_min_loss(logits, targets, valid, iou_weight=0.0)
    out["loss"].backward()
    g = logits.grad[0].abs().sum(dim=(1, 2))
    assert out["best_mask"].item() == 0
    assert g[0] > 0 and g[1] == 0 and g[2] == 0


def test_low_res_logits_are_resized_and_iou_target():
    inst = _rect(32, 32, 8, 24, 8, 24)
    low = torch.nn.functional.avg_pool2d(_logits(inst)[None, None], 2)[0, 0]  # 16x16
    logits = torch.stack([low, -low, low])[None]
    iou_pred = torch.tensor([[1.0, 0.0, 1.0]])
    out = dice_min_loss(logits, inst[None, None], torch.ones(1, 1, dtype=torch.bool), iou_pred=iou_pred)
    assert out["dice"].item() < 0.02
    # predicted IoUs (1, 0, 1) are the true ones -> near-zero MSE
    assert out["iou_mse"].item() < 1e-3
    wrong = dice_min_loss(logits, inst[None, None], torch.ones(1, 1, dtype=torch.bool),
                          iou_pred=torch.tensor([[0.0, 1.0, 0.0]]))
    assert wrong["iou_mse"].item() > 0.9


def test_mask_iou_values():
    a = _rect(10, 10, 0, 4, 0, 4)
    b = _rect(10, 10, 2, 6, 0, 4)
    assert mask_iou(a, b).item() == pytest.approx(8 / 24)
    assert mask_iou(torch.zeros(10, 10), torch.zeros(10, 10)).item() == 0.0


def test_prompt_without_target_is_an_error():
    with pytest.raises(ValueError, match="valid target"):
        dice_min_loss(torch.zeros(1, 3, 8, 8), torch.zeros(1, 1, 8, 8, dtype=torch.bool),
                      torch.zeros(1, 1, dtype=torch.bool))


def test_batched_prompts_independent():
    rng = np.random.default_rng(0)
    masks = torch.from_numpy(rng.random((4, 2, 16, 16)) > 0.5)
    valid = torch.tensor([[True, False], [True, True], [False, True], [True, True]])
    logits = torch.from_numpy(rng.normal(size=(4, 3, 16, 16)).astype(np.float32))
    full = dice_min_loss(logits, masks, valid, iou_weight=0.0)
    single = [dice_min_loss(logits[i:i + 1], masks[i:i + 1], valid[i:i + 1], iou_weight=0.0)["dice"]
              for i in range(4)]
    assert full["dice"].item() == pytest.approx(torch.stack(single).mean().item(), rel=1e-5)


def test_shift_consistency_zero_for_equivariant_views_and_counts_disagreement():
    from mitoscale.train.loss import shift_consistency_loss

    rng = np.random.default_rng(0)
    frame = torch.from_numpy(rng.normal(0, 4, (3, 40, 40)).astype(np.float32))  # 3 masks
    # view A's window starts at (8, 4) of the frame, view B's tile is shifted by (4, 8) and
    # its window at (0, 0) of B, i.e. (4, 8) of the frame; scale 1 (logit px = input px)
    la = frame[:, 8:24, 4:20][None, None]
    lb = frame[:, 4:20, 8:24][None, None]
    oa, ob = torch.tensor([[[8, 4]]]), torch.tensor([[[0, 0]]])
    shift = torch.tensor([[4, 8]])
    assert float(shift_consistency_loss(la, lb, oa, ob, shift, 1)) == pytest.approx(0.0, abs=1e-7)
    # binary masks that differ: the loss is 1 - Dice (up to the +1) over the common area
    a = torch.full((1, 1, 1, 10, 10), -50.0)
    b = a.clone()
    a[..., 2:6, 2:6] = 50.0  # 16 px
    b[..., 2:6, 2:8] = 50.0  # 24 px, 16 shared
    zero = torch.zeros((1, 1, 2), dtype=torch.long)
    got = float(shift_consistency_loss(a, b, zero, zero, torch.zeros((1, 2)), 1))
    assert got == pytest.approx(8 / (16 + 24 + 1), rel=1e-4)
    # windows that do not overlap contribute nothing
    far = torch.tensor([[[100, 100]]])
    assert float(shift_consistency_loss(a, b, zero, far, torch.zeros((1, 2)), 1)) == 0.0
    # gradients reach both views
    a, b = (a / 25).requires_grad_(True), (b / 25).requires_grad_(True)
    shift_consistency_loss(a, b, zero, zero, torch.zeros((1, 2)), 1).backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0
