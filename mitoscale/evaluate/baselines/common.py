"""Label image -> instance table, shared by the baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mitoscale.io.tables import instances_to_table

__all__ = ["labels_to_table"]


def labels_to_table(
    labels: np.ndarray,
    *,
    image_id: str,
    pixel_size_um: float,
    image: np.ndarray | None = None,
    well: str = "",
    field: int = 0,
    t: int = 0,
    z: int = 0,
) -> pd.DataFrame:
    """Instance table of a 2D label image, built from per-object crops.

    Never builds a full-size mask per instance: objects are cut out with
    ``scipy.ndimage.find_objects`` and passed as crops with offsets.

    Parameters
    ----------
    labels : (H, W) int array
        0 = background; each positive value one instance.  Instance ids are
        renumbered 1..n in label order.
    image_id, pixel_size_um, well, field, t, z
        Location keys and pixel size of the rows.
    image : (H, W) array, optional
        Source intensities for ``mean_intensity``.

    Returns
    -------
    pandas.DataFrame
    """
    from scipy import ndimage as ndi

    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be 2D, got shape {labels.shape}")
    crops, offsets = [], []
    for value, slc in enumerate(ndi.find_objects(labels.astype(np.int64, copy=False)), start=1):
        if slc is None:
            continue
        crops.append(labels[slc] == value)
        offsets.append((slc[0].start, slc[1].start))
    return instances_to_table(crops, offsets=offsets, shape=labels.shape, image_id=image_id,
                              pixel_size_um=pixel_size_um, image=image, well=well, field=field, t=t, z=z)
