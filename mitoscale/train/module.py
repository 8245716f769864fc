"""SAM driven by point prompts, as one ``nn.Module`` (so DDP can wrap it).

Optionally each prompt is decoded against a local *window* of the image
embedding centred on its point, with the matching slice of SAM's dense
positional encoding: the same local-window decoding that ``mitoscale
segment`` uses at inference (``mitoscale.segment.decode``), so the decoder
is trained the way it is run.  Mitochondria are a few µm long, so a 16-cell
window (128 px, 10 µm at 80 nm) holds the whole object.
"""

from __future__ import annotations

import torch

__all__ = ["PromptedSam", "window_origins", "crop_windows"]


def window_origins(points: torch.Tensor, window: int, grid: int, patch: int) -> torch.Tensor:
    """Top-left embedding cell (y, x) of the window centred on each (x, y) point.

    Same rule as ``mitoscale.segment.decode``: the point's cell minus
    ``window // 2``, clipped so the window lies inside the ``grid``.
    """
    cell = torch.floor(points.flip(-1) / patch).long()  # (K, 2) as (y, x)
    return (cell - window // 2).clamp(0, max(0, grid - window))


def crop_windows(maps: torch.Tensor, origins: torch.Tensor, size: int) -> torch.Tensor:
    """Per-row crops ``maps[k, ..., y0:y0+size, x0:x0+size]``.

    Parameters
    ----------
    maps : (K, C, H, W) tensor
    origins : (K, 2) long tensor of (y0, x0)
    size : int
    """
    k = maps.shape[0]
    ar = torch.arange(size, device=maps.device)
    iy = (origins[:, 0, None] + ar)[:, None, :, None]  # (K, 1, size, 1)
    ix = (origins[:, 1, None] + ar)[:, None, None, :]  # (K, 1, 1, size)
    ic = torch.arange(maps.shape[1], device=maps.device)[None, :, None, None]
    return maps[torch.arange(k, device=maps.device)[:, None, None, None], ic, iy, ix]


class PromptedSam(torch.nn.Module):
    """Image (or cached embedding) + K positive points per image -> 3 masks per point.

    Parameters
    ----------
    sam : segment_anything.modeling.Sam
        Built by :func:`mitoscale.model.build_sam` or loaded by
        :func:`mitoscale.model.load_model`.
    window : int, optional
        Decode each prompt against ``window x window`` embedding cells around
        its point; ``None`` (or a window as large as the map) decodes against
        the whole map exactly as ``Sam`` does.

    Notes
    -----
    Every point is its own prompt (one positive point plus SAM's padding
    point), decoded with ``multimask_output=True``.  The image is encoded once
    and the mask decoder runs for all K prompts of that image at once.
    """

    def __init__(self, sam, window: int | None = None):
        super().__init__()
        self.sam = sam
        self.window = window

    @property
    def patch(self) -> int:
        return self.sam.image_encoder.patch_embed.proj.kernel_size[0]

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) SAM-normalised images -> (B, 256, E, E) embeddings."""
        return self.sam.image_encoder(images)

    def decode(self, embedding: torch.Tensor, points: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Decode K prompts of one image.

        Parameters
        ----------
        embedding : (1, C, E, E) tensor
        points : (K, 2) tensor of (x, y) input-pixel coordinates

        Returns
        -------
        logits : (K, 3, 4w, 4w) low-resolution logits of the window (w = E without a window)
        iou : (K, 3) predicted IoU
        origin : (K, 2) long tensor, (y, x) input pixel of the window's top-left corner
        """
        sam = self.sam
        k = points.shape[0]
        _, c, grid, _ = embedding.shape
        coords = points[:, None, :].to(torch.float32)
        labels = torch.ones((k, 1), dtype=torch.int64, device=coords.device)
        sparse, _ = sam.prompt_encoder(points=(coords, labels), boxes=None, masks=None)
        dense = sam.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        pe = sam.prompt_encoder.get_dense_pe()
        w = grid if self.window is None else min(int(self.window), grid)
        if w >= grid:
            origin = torch.zeros((k, 2), dtype=torch.long, device=points.device)
            src, pos = embedding.expand(k, -1, -1, -1), pe.expand(k, -1, -1, -1)
        else:
            origin = window_origins(points, w, grid, self.patch)
            both = crop_windows(torch.cat([embedding, pe.to(embedding.dtype)], 1).expand(k, -1, -1, -1),
                                origin, w)
            src, pos = both[:, :c], both[:, c:]
        dec = sam.mask_decoder
        tokens = torch.cat([dec.iou_token.weight, dec.mask_tokens.weight], dim=0)
        tokens = torch.cat([tokens[None].expand(k, -1, -1), sparse], dim=1)
        hs, src_out = dec.transformer(src + dense, pos.contiguous(), tokens)
        src_out = src_out.transpose(1, 2).reshape(k, c, w, w)
        up = dec.output_upscaling(src_out)
        mask_tokens = hs[:, 1:1 + dec.num_mask_tokens, :]
        hyper = torch.stack([dec.output_hypernetworks_mlps[i](mask_tokens[:, i, :])
                             for i in range(dec.num_mask_tokens)], dim=1)
        b, cu, hu, wu = up.shape
        masks = (hyper @ up.reshape(b, cu, hu * wu)).reshape(b, -1, hu, wu)
        iou = dec.iou_prediction_head(hs[:, 0, :])
        # multimask output: SAM's masks 1..3 (mask 0 is its single-mask output)
        return masks[:, 1:], iou[:, 1:], origin * self.patch

    def forward(self, points: torch.Tensor, images: torch.Tensor | None = None,
                embeddings: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Masks for a batch.

        Parameters
        ----------
        points : (B, K, 2) tensor of (x, y) pixel coordinates in the model input
        images : (B, 3, S, S) tensor, optional
        embeddings : (B, C, E, E) tensor, optional
            Precomputed image embeddings (then ``images`` is ignored).

        Returns
        -------
        logits : (B, K, 3, h, w) low-resolution mask logits (of the window)
        iou : (B, K, 3) predicted IoU
        origin : (B, K, 2) window corners in input pixels (zeros without a window)
        """
        if embeddings is None:
            if images is None:
                raise ValueError("give images or embeddings")
            embeddings = self.encode(images)
        outs = [self.decode(embeddings[b:b + 1], points[b]) for b in range(points.shape[0])]
        return tuple(torch.stack(t) for t in zip(*outs))
