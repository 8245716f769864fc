"""Nellie baseline (Lefebvre et al., Nature Methods 2025; PyPI ``nellie``, CC BY 4.0).

Nellie reads files, not arrays: each frame is written to a temporary
OME-TIFF carrying its pixel size, opened with ``FileInfo`` /
``find_metadata()`` / ``load_metadata()`` and run on the CPU.  Its
``im_instance_label`` output (one label per organelle, no overlaps) becomes
our instance table.

By default only Nellie's segmentation steps run (``Filter`` then ``Label``,
with the same arguments ``nellie.run.run`` passes them); the later steps
(skeleton network, motion markers, tracking, feature hierarchy) never change
``im_instance_label`` and cost ~20x more on a single frame.  Set
``full_pipeline: true`` to call ``nellie.run.run`` itself.

Nellie imports no Qt/napari on this path, so it runs headless.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

from mitoscale.config import StrictModel
from mitoscale.errors import InputError

__all__ = ["NellieConfig", "segment_nellie", "nellie_available"]


class NellieConfig(StrictModel):
    """Settings passed to Nellie (its published defaults unless changed)."""

    min_radius_um: float = 0.25
    max_radius_um: float = 1.0
    otsu_thresh_intensity: bool = False
    threshold: float | None = None
    remove_edges: bool = False
    full_pipeline: bool = False


def nellie_available() -> bool:
    """Whether the optional ``nellie`` extra is importable."""
    try:
        import nellie.run  # noqa: F401
    except ImportError:
        return False
    return True


def segment_nellie(image: np.ndarray, pixel_size_um: float, cfg: NellieConfig | None = None) -> np.ndarray:
    """Segment one 2D frame with Nellie on the CPU.

    Parameters
    ----------
    image : (H, W) array
    pixel_size_um : float
    cfg : NellieConfig, optional

    Returns
    -------
    labels : (H, W) int32 array
        Nellie's ``im_instance_label``.

    Raises
    ------
    InputError
        If the ``nellie`` extra is not installed.
    """
    cfg = cfg or NellieConfig()
    if not nellie_available():
        raise InputError("baseline 'nellie' needs the optional extra: pip install 'mitoscale[nellie]'")
    import tifffile
    from nellie.im_info.verifier import FileInfo, ImInfo
    from nellie.segmentation.filtering import Filter
    from nellie.segmentation.labelling import Label

    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"image must be 2D, got shape {image.shape}")
    data = image if image.dtype in (np.uint8, np.uint16) else _to_uint16(image)
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.WARNING))
    with tempfile.TemporaryDirectory(prefix="mitoscale-nellie-") as tmp:
        path = Path(tmp) / "frame.ome.tif"
        tifffile.imwrite(path, data, ome=True, metadata={
            "axes": "YX", "PhysicalSizeX": float(pixel_size_um), "PhysicalSizeY": float(pixel_size_um),
            "PhysicalSizeXUnit": "µm", "PhysicalSizeYUnit": "µm",
        })
        fi = FileInfo(str(path), output_dir=str(Path(tmp) / "out"))
        fi.find_metadata()
        fi.load_metadata()
        if cfg.full_pipeline:
            import nellie.run

            im_info = nellie.run.run(fi, remove_edges=cfg.remove_edges,
                                     otsu_thresh_intensity=cfg.otsu_thresh_intensity,
                                     threshold=cfg.threshold, device="cpu")
        else:
            im_info = ImInfo(fi)
            Filter(im_info, remove_edges=cfg.remove_edges, min_radius_um=cfg.min_radius_um,
                   max_radius_um=cfg.max_radius_um, device="cpu").run()
            Label(im_info, otsu_thresh_intensity=cfg.otsu_thresh_intensity, threshold=cfg.threshold,
                  min_radius_um=cfg.min_radius_um, device="cpu").run()
        lab = np.array(im_info.get_memmap(im_info.pipeline_paths["im_instance_label"]))
    return lab.reshape(image.shape).astype(np.int32)


def _to_uint16(image: np.ndarray) -> np.ndarray:
    """Linear rescale of a float/int image to the full uint16 range."""
    img = image.astype(np.float64)
    lo, hi = np.nanmin(img), np.nanmax(img)
    if hi <= lo:
        return np.zeros(img.shape, np.uint16)
    return np.round((img - lo) / (hi - lo) * 65535).astype(np.uint16)
