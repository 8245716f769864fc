"""Map images (or plate wells) to experimental conditions from a CSV file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mitoscale.errors import InputError

__all__ = ["read_conditions", "assign_conditions", "well_key"]

_IMAGE_COLUMNS = ("image_id", "image", "file", "filename")


def read_conditions(path: str | Path) -> pd.DataFrame:
    """Read a conditions CSV.

    The file needs a ``condition`` column and one key column: ``image_id``,
    ``image``, ``file`` or ``filename`` (file names are reduced to their stem,
    so ``img_01.png`` matches the table's ``image_id`` ``img_01``), or
    ``well`` for plates, written any way plate readers and NGFF write it:
    ``B3``, ``B03``, ``b3``, ``B/3``, ``B-03`` all name the same well
    (:func:`well_key`).  Other columns are kept as metadata.

    Returns
    -------
    pandas.DataFrame
        Columns ``key`` ("image_id" or "well"), ``value`` and ``condition``
        plus any other columns, in file order.

    Raises
    ------
    InputError
        Missing file or columns, empty condition names, duplicated keys.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"conditions file not found: {path}")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable CSV ({exc})") from None
    df.columns = [c.strip() for c in df.columns]
    if "condition" not in df.columns:
        raise InputError(f"{path}: needs a 'condition' column (has {', '.join(df.columns) or 'none'})")
    key = next((c for c in _IMAGE_COLUMNS if c in df.columns), "well" if "well" in df.columns else None)
    if key is None:
        raise InputError(f"{path}: needs a column naming images ({', '.join(_IMAGE_COLUMNS)}) or wells (well)")
    if len(df) == 0:
        raise InputError(f"{path}: no rows")
    values = df[key].str.strip()
    if key != "well":
        values = values.map(lambda v: _stem(v))
    else:
        for i, v in enumerate(values):
            if v and well_key(v) is None:
                raise InputError(f"{path}: line {i + 2}: {v!r} is not a well name "
                                 "(a row letter and a column number: A1, A01, A/1)")
        values = values.map(lambda v: well_key(v) or "")
    blank = df["condition"].str.strip() == ""
    if blank.any():
        line = int(blank.to_numpy().nonzero()[0][0]) + 2
        raise InputError(f"{path}: empty condition on line {line}")
    if (values == "").any():
        line = int((values == "").to_numpy().nonzero()[0][0]) + 2
        raise InputError(f"{path}: empty {key} on line {line}")
    dup = values[values.duplicated()]
    if len(dup):
        raise InputError(f"{path}: {key} {dup.iloc[0]!r} is listed twice")
    out = df.drop(columns=[key]).assign(key="image_id" if key != "well" else "well", value=values,
                                        condition=df["condition"].str.strip())
    return out[["key", "value", "condition", *[c for c in out.columns if c not in ("key", "value", "condition")]]]


def well_key(name: str) -> str | None:
    """Canonical ``"B/3"`` form of a well name (``B3``, ``b03``, ``B/3``, ``B-03``...), or ``None``."""
    import re

    m = re.fullmatch(r"\s*([A-Za-z]{1,2})\s*[/_\- ]?\s*0*(\d{1,3})\s*", str(name))
    if m is None or int(m.group(2)) == 0:
        return None
    return f"{m.group(1).upper()}/{int(m.group(2))}"


def _stem(name: str) -> str:
    name = Path(name).name
    for suffix in (".ome.zarr", ".ome.tiff", ".ome.tif", ".zarr", ".tiff", ".tif", ".png"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def assign_conditions(images: pd.DataFrame, conditions: pd.DataFrame, source: str = "conditions") -> pd.Series:
    """Condition of each analysed image.

    Parameters
    ----------
    images : pandas.DataFrame
        One row per image with ``image_id`` and ``well`` columns.
    conditions : pandas.DataFrame
        From :func:`read_conditions`.
    source : str
        Name used in error messages.

    Returns
    -------
    pandas.Series
        Aligned with ``images``; NaN for images the CSV does not list.

    Raises
    ------
    InputError
        If the CSV names an image (or well) absent from the tables, or a
        condition ends up with no image.
    """
    key = conditions["key"].iloc[0]
    mapping = dict(zip(conditions["value"], conditions["condition"]))
    names = images[key].astype(str)
    if key == "well":  # the plate's own well paths ("A/01" or "A/1") in canonical form too
        names = names.map(lambda w: well_key(w) or w)
    known = set(names)
    unknown = [v for v in conditions["value"] if v not in known]
    if unknown:
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise InputError(f"{source}: {key} {unknown[0]!r}{more} not found in the instance tables")
    assigned = names.map(mapping)
    for cond in dict.fromkeys(conditions["condition"]):
        if not (assigned == cond).any():
            raise InputError(f"{source}: condition {cond!r} has no image in the instance tables")
    return assigned
