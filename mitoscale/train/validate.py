"""Validation: prompted segmentation of held-out images, scored by the evaluation protocol.

Each ground-truth instance of a held-out tile is prompted with one positive
point at its most interior pixel (maximum of the distance transform); the
mask with the highest predicted IoU among SAM's three outputs is kept.  The
predictions are matched to the ground truth with
:func:`mitoscale.evaluate.metrics.evaluate_image` (Dice >= 0.5) and pooled
with :func:`~mitoscale.evaluate.metrics.summarize`: precision, recall, mean
Dice and non-zero Dice.  This scores the model as the prompted segmenter it
is trained to be; the automatic (grid-prompt) pipeline is scored by
``mitoscale evaluate`` on ``mitoscale segment`` output.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi

from mitoscale.evaluate.metrics import evaluate_image, summarize
from mitoscale.model import normalize_intensity, to_sam_input
from mitoscale.train.corpus import Corpus, instance_masks
from mitoscale.train.dataset import tile_origins
from mitoscale.train.module import PromptedSam

__all__ = ["interior_point", "validate"]


def interior_point(mask: np.ndarray) -> tuple[int, int]:
    """(y, x) of the pixel farthest from the mask's border (first one on ties)."""
    ys, xs = np.nonzero(mask)
    y0, x0 = ys.min(), xs.min()
    crop = np.pad(mask[y0:ys.max() + 1, x0:xs.max() + 1], 1)
    dist = ndi.distance_transform_edt(crop)
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(y0 + y - 1), int(x0 + x - 1)


@torch.no_grad()
def validate(
    model: PromptedSam,
    corpus: Corpus,
    images: np.ndarray,
    img_size: int,
    embed: Callable[[int, int, torch.Tensor], torch.Tensor] | None = None,
    device: torch.device | str = "cpu",
    autocast: bool = False,
    prompt_batch: int = 64,
) -> dict:
    """Score prompted segmentation on held-out corpus images.

    Parameters
    ----------
    model : PromptedSam
    corpus : Corpus
    images : array of int
        Held-out image indices.
    img_size : int
    embed : callable, optional
        ``embed(image, tile, input) -> (1, C, E, E)``; default runs the encoder
        (a cache-backed callable skips it).
    device : torch device
    autocast : bool
        bf16 autocast on ``device``.

    Returns
    -------
    dict
        :func:`~mitoscale.evaluate.metrics.summarize` output.
    """
    was_training = model.training
    model.eval()
    scores = []
    h, w = corpus.image_shape
    origins = tile_origins(h, w, img_size)
    dev = torch.device(device)
    for image in images:
        img = np.asarray(corpus.images[int(image)])
        lab = np.asarray(corpus.labels[int(image)])
        norm = normalize_intensity(img)
        for tile, (y, x) in enumerate(origins):
            layers = lab[:, y:y + img_size, x:x + img_size]
            gt = instance_masks(layers)
            th, tw = layers.shape[-2:]
            if len(gt) == 0:
                continue
            inp = to_sam_input(norm[y:y + img_size, x:x + img_size], img_size)[None].to(dev)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=autocast):
                emb = embed(int(image), tile, inp) if embed is not None else model.encode(inp)
                pts = torch.tensor([interior_point(m)[::-1] for m in gt], dtype=torch.float32, device=dev)
                preds = []
                for lo in range(0, len(pts), prompt_batch):
                    logits, iou, origin = model.decode(emb.to(dev), pts[lo:lo + prompt_batch])
                    best = iou.float().argmax(dim=1)
                    lg = logits.float()[torch.arange(len(best)), best][:, None]
                    size = lg.shape[-1] * model.patch // 4
                    lg = F.interpolate(lg, size=(size, size), mode="bilinear", align_corners=False)
                    win = (lg[:, 0] > 0).cpu().numpy()
                    full = np.zeros((len(win), img_size, img_size), dtype=bool)
                    for i, (oy, ox) in enumerate(origin.cpu().numpy()):
                        full[i, oy:oy + size, ox:ox + size] = win[i]
                    preds.append(full[:, :th, :tw])
            scores.append(evaluate_image(np.concatenate(preds), gt))
    model.train(was_training)
    return summarize(scores)
