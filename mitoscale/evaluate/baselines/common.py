"""Label image -> instance table, shared by the baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mitoscale.io.tables import SCHEMA, empty_table, encode_mask, mask_properties, validate_table

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
    """Instance table of a 2D label image, built crop by crop.

    Unlike :func:`mitoscale.io.tables.instances_to_table` this never builds a
    full-size mask per instance, so a 1024x1024 frame with hundreds of
    objects costs one pass over ``scipy.ndimage.find_objects``.

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
    h, w = labels.shape
    rows = []
    for value, slc in enumerate(ndi.find_objects(labels.astype(np.int64, copy=False)), start=1):
        if slc is None:
            continue
        crop = labels[slc] == value
        (cy0, cx0, cy1, cx1), blob = encode_mask(crop)
        y0, x0 = slc[0].start + cy0, slc[1].start + cx0
        crop = crop[cy0:cy1, cx0:cx1]
        props = mask_properties(crop, offset=(y0, x0))
        mean_int = (float(np.asarray(image)[y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]][crop].mean())
                    if image is not None else np.nan)
        rows.append(dict(
            image_id=str(image_id), well=str(well), field=int(field), t=int(t), z=int(z),
            instance_id=len(rows) + 1, pixel_size_um=float(pixel_size_um),
            image_height=h, image_width=w,
            bbox_y0=int(y0), bbox_x0=int(x0), bbox_y1=int(y0 + crop.shape[0]), bbox_x1=int(x0 + crop.shape[1]),
            mask=blob, area_um2=props["area_px"] * float(pixel_size_um) ** 2,
            mean_intensity=mean_int, score=np.nan, **props,
        ))
    if not rows:
        return empty_table()
    return validate_table(pd.DataFrame(rows, columns=list(SCHEMA)))
