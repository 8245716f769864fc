"""Classical baseline: background subtraction, Otsu threshold, distance-transform watershed.

Every length is in micrometres and converted with the image's pixel size,
so the same settings behave alike at 65 nm or 80 nm pixels.

Steps
-----
1. Background: a Gaussian of ``background_sigma_um`` (much wider than a
   mitochondrion, narrower than a cell) is subtracted, removing the diffuse
   cytoplasmic haze that varies across a cell.
2. Smoothing: a Gaussian of ``smooth_sigma_um``, about the PSF's standard
   deviation (0.21 * 660 nm / 1.42 ~ 0.1 um), suppresses shot noise without
   merging neighbours.
3. Foreground: Otsu's threshold on the smoothed, background-free image (or a
   fixed multiple of it via ``threshold_scale``); objects under
   ``min_area_um2`` and holes under ``max_hole_um2`` are removed.
4. Splitting: the Euclidean distance transform (in um) is smoothed, its
   h-maxima of height ``h_um`` seed a watershed on the inverted distance
   inside the foreground.  The h criterion (not a minimum peak distance)
   keeps long tubes whole when their width wiggles, and splits touching
   blobs joined by a neck thinner than ``h_um`` below their centres.
"""

from __future__ import annotations

import numpy as np

from mitoscale.config import StrictModel

__all__ = ["ClassicalConfig", "segment_classical"]


class ClassicalConfig(StrictModel):
    """Settings of :func:`segment_classical` (physical units)."""

    background_sigma_um: float = 2.0
    smooth_sigma_um: float = 0.1
    threshold_scale: float = 1.0
    min_area_um2: float = 0.064
    max_hole_um2: float = 0.02
    h_um: float = 0.06
    distance_smooth_um: float = 0.08


def segment_classical(image: np.ndarray, pixel_size_um: float, cfg: ClassicalConfig | None = None) -> np.ndarray:
    """Segment mitochondria in one 2D image.

    Parameters
    ----------
    image : (H, W) array
        Fluorescence intensities (any numeric dtype).
    pixel_size_um : float
        Pixel size in micrometres.
    cfg : ClassicalConfig, optional

    Returns
    -------
    labels : (H, W) int32 array
        0 is background, 1..n the instances (no overlaps).
    """
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu
    from skimage.measure import label
    from skimage.morphology import h_maxima, remove_small_holes, remove_small_objects
    from skimage.segmentation import watershed

    cfg = cfg or ClassicalConfig()
    if image.ndim != 2:
        raise ValueError(f"image must be 2D, got shape {image.shape}")
    px = float(pixel_size_um)
    img = np.asarray(image, dtype=np.float32)
    fg_img = img - ndi.gaussian_filter(img, cfg.background_sigma_um / px)
    if cfg.smooth_sigma_um > 0:
        fg_img = ndi.gaussian_filter(fg_img, cfg.smooth_sigma_um / px)
    if not np.isfinite(fg_img).all() or fg_img.max() <= fg_img.min():
        return np.zeros(img.shape, dtype=np.int32)
    thr = threshold_otsu(fg_img) * cfg.threshold_scale
    fg = fg_img > thr
    px_area = px * px
    fg = remove_small_objects(fg, max_size=max(int(round(cfg.min_area_um2 / px_area)) - 1, 0))
    fg = remove_small_holes(fg, max_size=int(round(cfg.max_hole_um2 / px_area)))
    if not fg.any():
        return np.zeros(img.shape, dtype=np.int32)

    dist = ndi.distance_transform_edt(fg, sampling=px)
    if cfg.distance_smooth_um > 0:
        dist = ndi.gaussian_filter(dist, cfg.distance_smooth_um / px) * fg
    markers = label(h_maxima(dist, cfg.h_um) & fg)
    # every foreground component gets at least one seed
    comps, n_comp = ndi.label(fg)
    seeded = np.zeros(n_comp + 1, dtype=bool)
    seeded[comps[markers > 0]] = True
    missing = ~seeded[comps] & fg
    if missing.any():
        extra = label(missing)
        markers = np.where(extra > 0, extra + markers.max(), markers)
    labels = watershed(-dist, markers, mask=fg)
    return _relabel(labels)


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Consecutive labels 1..n (drops ids the watershed did not use)."""
    from skimage.segmentation import relabel_sequential

    return relabel_sequential(labels.astype(np.int32))[0]
