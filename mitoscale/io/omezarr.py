"""OME-Zarr input and label output (NGFF 0.4 on Zarr v2, NGFF 0.5 on Zarr v3).

Reading
-------
:func:`open_ome_zarr` turns a store into a list of :class:`ImageSource`, one
per image: a single multiscale image, or every field of every well of an HCS
plate.  Each source holds the full-resolution level as a *lazy* dask array,
its axes (any subset of ``t, c, z, y, x`` in NGFF order), the y/x pixel size
in µm read from the NGFF ``scale`` transforms and axis units, and its
location keys (``image_id``, ``well``, ``field``).

:func:`iter_frames` (in :mod:`mitoscale.io.images`, shared by every input
kind) then yields the 2D frames (one per ``t`` and ``z``, or per ``t`` with a
z max-projection) with their location keys.  Baselines and the segmenter
read inputs through these same two calls, so they see identical pixels::

    from mitoscale.io.images import open_image, iter_frames
    for src in open_image("plate.ome.zarr"):           # or a TIFF/PNG folder
        for frame in iter_frames(src, channel=0, z_mode="max"):
            img = frame.data.compute()                  # (Y, X) numpy array
            frame.keys                                  # image_id/well/field/t/z

Pixel size rules: the y/x ``scale`` of the first dataset (times any
multiscale-level ``scale``) converted from the axis ``unit`` to µm.  Axes
without a unit and a scale of exactly 1 carry no physical size, which is
reported as missing; ``pixel_size_um`` given by the caller overrides the
metadata.  Anisotropic y/x pixels are rejected.

Writing
-------
:func:`create_label_image` makes ``<image group>/labels/<name>`` in an output
store (same NGFF version as the input) with the ``image-label`` metadata and
the input's scale; :func:`create_frame_image` makes the image group itself
(the segmented frames on the same grid) and :func:`copy_plate_layout` the
plate and well metadata, so the output is valid NGFF on its own;
:func:`write_label_frame` fills one 2D frame of either.  Each
frame lives in its own chunks, so frames written by different workers never
touch the same chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field as _field
from pathlib import Path
from typing import Any

import numpy as np

from mitoscale.errors import InputError

__all__ = [
    "KNOWN_AXES",
    "ImageSource",
    "is_ome_zarr",
    "open_ome_zarr",
    "unit_to_um",
    "create_label_image",
    "label_levels",
    "write_label_frame",
    "check_labels_target",
    "create_frame_image",
    "copy_plate_layout",
    "staging_name",
    "publish_labels",
    "remove_label_images",
    "label_axes",
    "write_ome_zarr_image",
]

KNOWN_AXES = ("t", "c", "z", "y", "x")

_UNIT_UM = {
    "angstrom": 1e-4, "nanometer": 1e-3, "nm": 1e-3, "micrometer": 1.0, "micron": 1.0,
    "um": 1.0, "µm": 1.0, "millimeter": 1e3, "mm": 1e3, "centimeter": 1e4, "meter": 1e6,
}


@dataclass
class ImageSource:
    """One image to segment: a lazy array with axes, pixel size and location.

    Attributes
    ----------
    data : dask.array.Array
        Full-resolution pixels, dimensions named by ``axes``.
    axes : tuple of str
        Subset of ``t, c, z, y, x`` in array order.
    pixel_size_um : float or None
        y/x pixel size in µm (``None`` when unknown).
    image_id, well, field : location keys of the instance table.
    path : str
        Where the image lives (store path plus group path), for messages.
    group_path : str
        Group of the image inside its store (``""`` for a root image,
        ``"A/1/0"`` for a plate field); the output mirrors it.
    scale : dict of str to float
        NGFF scale per axis (used for the output label image).
    units : dict of str to str
        NGFF unit per axis, where given.
    ngff_version : str
        ``"0.4"`` or ``"0.5"`` (``""`` for non-Zarr inputs).
    channel_names : list of str
    """

    data: Any
    axes: tuple[str, ...]
    pixel_size_um: float | None
    image_id: str
    well: str = ""
    field: int = 0
    path: str = ""
    group_path: str = ""
    scale: dict[str, float] = _field(default_factory=dict)
    units: dict[str, str] = _field(default_factory=dict)
    ngff_version: str = ""
    channel_names: list[str] = _field(default_factory=list)
    array: Any = None  # the zarr.Array behind ``data`` (frames index it directly), if any

    def size(self, axis: str) -> int:
        """Length of ``axis`` (1 when the axis is absent)."""
        return int(self.data.shape[self.axes.index(axis)]) if axis in self.axes else 1


def unit_to_um(unit: str | None) -> float | None:
    """Factor that converts a length in ``unit`` to µm (``None`` if not a length unit)."""
    if unit is None:
        return None
    return _UNIT_UM.get(str(unit).strip().lower())


def _attrs(group) -> dict:
    """NGFF attributes of a group: under ``ome`` (0.5) or at the top (<= 0.4)."""
    attrs = dict(group.attrs)
    if "ome" in attrs and isinstance(attrs["ome"], dict):
        ome = dict(attrs["ome"])
        ome.setdefault("version", ome.get("version", "0.5"))
        return ome
    return attrs


def is_ome_zarr(path: str | Path) -> bool:
    """True when ``path`` is a Zarr group with NGFF image or plate metadata."""
    path = Path(path)
    if not path.is_dir():
        return False
    if not any((path / n).exists() for n in ("zarr.json", ".zgroup", ".zattrs")):
        return False
    try:
        import zarr

        attrs = _attrs(zarr.open_group(str(path), mode="r"))
    except Exception:  # noqa: BLE001 - any unreadable store is "not OME-Zarr"
        return False
    return "multiscales" in attrs or "plate" in attrs


def _parse_axes(ms: dict, ndim: int, where: str) -> tuple[str, ...]:
    raw = ms.get("axes")
    if raw is None:  # NGFF <= 0.2 always has 5D tczyx
        names = list(KNOWN_AXES[-ndim:])
    else:
        names = [a["name"] if isinstance(a, dict) else str(a) for a in raw]
    names = [str(n).lower() for n in names]
    unknown = [n for n in names if n not in KNOWN_AXES]
    if unknown or len(set(names)) != len(names):
        raise InputError(f"{where}: unknown axes {names} (allowed: any subset of t, c, z, y, x)")
    if "y" not in names or "x" not in names:
        raise InputError(f"{where}: axes {names} lack y and x")
    if len(names) != ndim:
        raise InputError(f"{where}: metadata names {len(names)} axes {names} but the array has {ndim} dimensions")
    order = [KNOWN_AXES.index(n) for n in names]
    if order != sorted(order):
        raise InputError(f"{where}: axes {names} are not in NGFF order t, c, z, y, x")
    return tuple(names)


def _scale_of(ms: dict, dataset: dict, ndim: int) -> list[float]:
    scale = [1.0] * ndim
    for transforms in (dataset.get("coordinateTransformations") or [],
                       ms.get("coordinateTransformations") or []):
        for tr in transforms:
            if tr.get("type") == "scale" and "scale" in tr:
                scale = [a * float(b) for a, b in zip(scale, tr["scale"])]
    return scale


def _units_of(ms: dict) -> dict[str, str]:
    out = {}
    for a in ms.get("axes") or []:
        if isinstance(a, dict) and a.get("unit"):
            out[str(a["name"]).lower()] = str(a["unit"])
    return out


def _pixel_size(scale: dict[str, float], units: dict[str, str], where: str) -> float | None:
    sizes = []
    for ax in ("y", "x"):
        s = scale.get(ax, 1.0)
        unit = units.get(ax)
        if unit is None:
            if s == 1.0:
                return None  # no physical size recorded
            factor = 1.0  # unit-less but scaled: NGFF convention is micrometer
        else:
            factor = unit_to_um(unit)
            if factor is None:
                raise InputError(f"{where}: axis {ax!r} has unit {unit!r}, not a length unit")
        sizes.append(s * factor)
    py, px = sizes
    if py <= 0 or px <= 0:
        raise InputError(f"{where}: non-positive pixel size {py} x {px} µm")
    if abs(py - px) > 0.01 * max(py, px):
        raise InputError(f"{where}: anisotropic pixels ({py} x {px} µm) are not supported")
    return float(px)


def _open_multiscale(store_root: Path, group_path: str, *, image_id: str, well: str = "",
                     field: int = 0, pixel_size_um: float | None = None) -> ImageSource:
    import dask.array as da
    import zarr

    where = str(store_root / group_path) if group_path else str(store_root)
    try:
        root = zarr.open_group(str(store_root), mode="r")
        group = root[group_path] if group_path else root
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{where}: cannot open Zarr group ({exc.__class__.__name__}: {exc})") from None
    attrs = _attrs(group)
    if "multiscales" not in attrs or not attrs["multiscales"]:
        raise InputError(f"{where}: no NGFF 'multiscales' metadata")
    ms = attrs["multiscales"][0]
    version = str(ms.get("version") or attrs.get("version") or "")
    datasets = ms.get("datasets") or []
    if not datasets:
        raise InputError(f"{where}: 'multiscales' lists no datasets")
    try:
        arr = group[datasets[0]["path"]]
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{where}: dataset {datasets[0].get('path')!r} missing ({exc})") from None
    axes = _parse_axes(ms, arr.ndim, where)
    scale = dict(zip(axes, _scale_of(ms, datasets[0], arr.ndim)))
    units = _units_of(ms)
    meta_ps = _pixel_size(scale, units, where)
    if 0 in arr.shape:
        raise InputError(f"{where}: image is empty (shape {tuple(arr.shape)})")
    channels = [str(c.get("label", i)) for i, c in enumerate((attrs.get("omero") or {}).get("channels", []))]
    return ImageSource(
        data=da.from_zarr(arr),
        axes=axes,
        pixel_size_um=float(pixel_size_um) if pixel_size_um is not None else meta_ps,
        image_id=image_id, well=well, field=field,
        path=where, group_path=group_path, scale=scale, units=units,
        ngff_version=version or ("0.5" if arr.metadata.zarr_format == 3 else "0.4"),
        channel_names=channels,
        array=arr,
    )


def open_ome_zarr(path: str | Path, pixel_size_um: float | None = None) -> list[ImageSource]:
    """Open an OME-Zarr image or HCS plate as a list of :class:`ImageSource`.

    Parameters
    ----------
    path : path
        Root of the store (an image group or a plate group).
    pixel_size_um : float, optional
        Overrides the NGFF scale metadata.

    Returns
    -------
    list of ImageSource
        One image, or one per (well, field) of a plate in plate order.

    Raises
    ------
    InputError
        Not a readable OME-Zarr, unknown axes, inconsistent metadata.
    """
    import zarr

    path = Path(path)
    try:
        root = zarr.open_group(str(path), mode="r")
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{path}: not a readable Zarr store ({exc.__class__.__name__})") from None
    attrs = _attrs(root)
    image_id = path.name
    for suffix in (".ome.zarr", ".zarr"):
        if image_id.lower().endswith(suffix) and len(image_id) > len(suffix):
            image_id = image_id[: -len(suffix)]
            break
    if "plate" in attrs:
        plate = attrs["plate"]
        sources = []
        for w in plate.get("wells", []):
            wpath = w["path"]
            try:
                wattrs = _attrs(root[wpath])
            except KeyError:
                raise InputError(f"{path}: plate lists well {wpath!r} that is missing") from None
            images = (wattrs.get("well") or {}).get("images", [])
            for fi, img in enumerate(images):
                sources.append(_open_multiscale(path, f"{wpath}/{img['path']}", image_id=image_id,
                                                well=wpath, field=fi, pixel_size_um=pixel_size_um))
        if not sources:
            raise InputError(f"{path}: plate has no fields")
        return sources
    if "multiscales" in attrs:
        return [_open_multiscale(path, "", image_id=image_id, pixel_size_um=pixel_size_um)]
    raise InputError(f"{path}: Zarr group has neither NGFF 'multiscales' nor 'plate' metadata")


# ----------------------------------------------------------------------------- output


def label_axes(src: ImageSource, z_mode: str) -> tuple[str, ...]:
    """Axes of the label image made from ``src``: no channel, no z when projected."""
    return tuple(a for a in src.axes if a != "c" and not (a == "z" and z_mode == "max"))


def _fmt(version: str):
    from ome_zarr.format import FormatV04, FormatV05

    return FormatV04() if version == "0.4" else FormatV05()


def label_levels(shape_yx: Sequence[int], min_size: int = 256, max_levels: int = 6) -> int:
    """Resolution levels of a label pyramid: halve y/x while the smaller side stays >= ``min_size``."""
    n, side = 1, min(int(v) for v in shape_yx)
    while n < max_levels and side // 2 >= min_size:
        side //= 2
        n += 1
    return n


def create_label_image(out_root: str | Path, src: ImageSource, *, z_mode: str = "max",
                       name: str = "mitochondria", version: str | None = None,
                       dtype: str = "uint32", max_chunk: int = 4096,
                       levels: int | None = None, listed: bool = True,
                       meta_name: str | None = None) -> str:
    """Create (or reopen) ``<group>/labels/<name>`` for ``src`` in an output store.

    The group path mirrors the input (``""`` or ``"A/1/0"``), the axes are
    the input's without ``c`` (and without ``z`` for a max projection) and
    the scale and units are the input's, so viewers overlay it on the input.
    Chunks hold exactly one 2D frame (split in y/x beyond ``max_chunk``).
    ``levels`` resolution levels (default :func:`label_levels`): level ``k``
    is level 0 subsampled by ``2**k`` in y and x (nearest neighbour, as labels
    must be), written frame by frame by :func:`write_label_frame`, so napari
    and other viewers can show whole plates and long movies quickly.
    ``listed=False`` leaves ``name`` out of the ``labels`` list (a staging
    copy, see :func:`publish_labels`); ``meta_name`` is the multiscale's
    ``name`` (default ``name``).

    Returns
    -------
    str
        Path of the label array's group inside ``out_root``.
    """
    import zarr
    from ome_zarr.writer import add_metadata

    version = version or src.ngff_version or "0.5"
    fmt = _fmt(version)
    root = zarr.open_group(str(out_root), mode="a", zarr_format=2 if version == "0.4" else 3)
    image_group = root.require_group(src.group_path) if src.group_path else root
    labels = image_group.require_group("labels")
    label_path = f"{src.group_path}/labels/{name}" if src.group_path else f"labels/{name}"
    lg = labels.require_group(name)
    if _pyramid(lg, src, z_mode, dtype, max_chunk, levels, fmt, meta_name or name,
                where=f"{out_root}/{label_path}"):
        add_metadata(lg, {"image-label": {"version": fmt.version}}, fmt=fmt)
        _list_label(labels, name if listed else None, fmt)
    return label_path


def create_frame_image(out_root: str | Path, src: ImageSource, *, z_mode: str = "max",
                       version: str | None = None, max_chunk: int = 4096,
                       levels: int | None = None) -> str:
    """Create (or reopen) the image of the *segmented frames* at ``src``'s group in an output.

    The frames the model saw (the chosen channel, z projected or not) on the
    grid of the label image, with the same levels, axes and scale: the output
    is then a valid NGFF image (and a plate a valid plate) with its labels
    beside it, and a viewer shows both lined up without the input.

    Returns
    -------
    str
        The image group's path inside ``out_root`` (``""`` for the root).
    """
    import zarr

    version = version or src.ngff_version or "0.5"
    root = zarr.open_group(str(out_root), mode="a", zarr_format=2 if version == "0.4" else 3)
    group = root.require_group(src.group_path) if src.group_path else root
    _pyramid(group, src, z_mode, str(src.data.dtype), max_chunk, levels, _fmt(version),
             f"{src.image_id} (segmented frames)", where=f"{out_root}/{src.group_path}")
    return src.group_path


def copy_plate_layout(input_path: str | Path, out_root: str | Path, version: str | None = None) -> None:
    """Give an output the input plate's ``plate`` and ``well`` metadata (a no-op for other inputs)."""
    import zarr
    from ome_zarr.writer import add_metadata

    src = zarr.open_group(str(input_path), mode="r")
    plate = _attrs(src).get("plate")
    if not plate:
        return
    version = version or str(_attrs(src).get("version") or plate.get("version") or "0.5")
    fmt = _fmt("0.4" if version.startswith("0.4") else "0.5")
    out = zarr.open_group(str(out_root), mode="a", zarr_format=2 if fmt.version == "0.4" else 3)
    ver = {} if fmt.version == "0.4" else {"version": fmt.version}  # 0.5: under "ome", with its version
    add_metadata(out, {**ver, "plate": plate}, fmt=fmt)
    for well in plate.get("wells", []):
        meta = _attrs(src[well["path"]]).get("well")
        if meta:
            add_metadata(out.require_group(well["path"]), {**ver, "well": meta}, fmt=fmt)


def _pyramid(group, src: ImageSource, z_mode: str, dtype: str, max_chunk: int, levels: int | None,
             fmt, name: str, where: str) -> bool:
    """Arrays ``0..levels-1`` (one 2D frame per chunk) and multiscales metadata in ``group``.

    Returns False when they exist already (their shape checked), True when created.
    """
    axes = label_axes(src, z_mode)
    shape = tuple(src.size(a) for a in axes)
    yx = [i for i, a in enumerate(axes) if a in ("y", "x")]
    if "0" in group:
        if tuple(group["0"].shape) != shape:
            raise InputError(f"{where}: exists with shape {group['0'].shape}, expected {shape}")
        return False
    levels = label_levels([shape[i] for i in yx]) if levels is None else max(1, int(levels))
    for k in range(levels):
        lshape = tuple(-(-n // 2**k) if i in yx else n for i, n in enumerate(shape))
        chunks = tuple(min(n, max_chunk) if i in yx else 1 for i, n in enumerate(lshape))
        kw = {"dimension_names": list(axes)} if fmt.version not in ("0.4",) else {}
        group.create_array(str(k), shape=lshape, chunks=chunks, dtype=dtype, fill_value=0,
                           overwrite=True, **kw)
    axes_meta = []
    for a in axes:
        entry = {"name": a, "type": "time" if a == "t" else "space"}
        if a in src.units:
            entry["unit"] = src.units[a]
        elif a in ("y", "x", "z") and src.pixel_size_um is not None:
            entry["unit"] = "micrometer"
        axes_meta.append(entry)
    scale = [float(src.scale.get(a, 1.0)) for a in axes]
    if src.pixel_size_um is not None and not src.units.get("x"):
        # pixel size given by the user: record it in µm
        for i, a in enumerate(axes):
            if a in ("y", "x"):
                scale[i] = float(src.pixel_size_um)
    from ome_zarr.writer import write_multiscales_metadata

    datasets = [{"path": str(k), "coordinateTransformations": [
        {"type": "scale", "scale": [v * 2**k if i in yx else v for i, v in enumerate(scale)]}]}
        for k in range(levels)]
    write_multiscales_metadata(group, datasets=datasets, fmt=fmt, axes=axes_meta, name=name)
    return True


def _list_label(labels, name: str | None, fmt, remove: str | None = None) -> None:
    """Add ``name`` to (and drop ``remove`` from) a ``labels`` group's list; 0.5 groups carry the version."""
    from ome_zarr.writer import add_metadata

    names = [n for n in (_attrs(labels).get("labels") or []) if n != remove]
    if name is not None and name not in names:
        names.append(name)
    meta: dict[str, Any] = {"labels": names}
    if fmt.version not in ("0.1", "0.2", "0.3", "0.4"):
        meta["version"] = fmt.version
    add_metadata(labels, meta, fmt=fmt)


def staging_name(name: str) -> str:
    """Name under which labels written into an input are staged until every frame is done."""
    return f"{name}-partial"


def _label_groups(root: Path, sources: Sequence[ImageSource]) -> list[Path]:
    return sorted({root / s.group_path / "labels" if s.group_path else root / "labels"
                   for s in sources})


def check_labels_target(input_path: str | Path, sources: Sequence[ImageSource]) -> None:
    """Refuse ``--labels-into-input`` on anything but a writable OME-Zarr store."""
    import os
    import tempfile

    from mitoscale.errors import OutputError

    input_path = Path(input_path)
    if not input_path.is_dir() or not all(s.ngff_version for s in sources):
        raise OutputError(f"--labels-into-input needs an OME-Zarr store; {input_path} is not one "
                          "(write the labels to --out instead)")
    for s in sources:
        image = input_path / s.group_path if s.group_path else input_path
        try:
            if not os.access(image, os.W_OK):
                raise PermissionError(13, "permission denied")
            with tempfile.NamedTemporaryFile(dir=image, prefix=".mitoscale-probe-"):
                pass
        except OSError as exc:
            raise OutputError(f"--labels-into-input: the input store {input_path} is read-only "
                              f"({exc.strerror or exc}); write the labels to --out instead") from None


def publish_labels(root: str | Path, sources: Sequence[ImageSource], staging: str, name: str) -> None:
    """Move staged labels into place under ``name`` and list them (one rename per image).

    A previous ``name`` is replaced.  Readers see either the old labels or
    the complete new ones, never a half-written image.
    """
    import shutil

    import zarr

    root = Path(root)
    for labels_dir in _label_groups(root, sources):
        src, dst = labels_dir / staging, labels_dir / name
        if not src.is_dir():
            continue
        group = zarr.open_group(str(src), mode="r+")
        ms = _attrs(group)["multiscales"]
        version = _attrs(group).get("version") or ("0.4" if group.metadata.zarr_format == 2 else "0.5")
        fmt = _fmt("0.4" if str(version).startswith("0.4") else "0.5")
        ms[0]["name"] = name
        from ome_zarr.writer import add_metadata

        add_metadata(group, {"multiscales": ms}, fmt=fmt)
        if dst.exists():
            old = dst.with_name(f"{name}-old")
            shutil.rmtree(old, ignore_errors=True)
            dst.rename(old)
            src.rename(dst)
            shutil.rmtree(old)
        else:
            src.rename(dst)
        labels = zarr.open_group(str(labels_dir), mode="r+")
        _list_label(labels, name, fmt, remove=staging)


def remove_label_images(root: str | Path, sources: Sequence[ImageSource], name: str) -> None:
    """Delete ``labels/<name>`` of every image (``--overwrite`` of an output)."""
    import shutil

    for labels_dir in _label_groups(Path(root), sources):
        shutil.rmtree(labels_dir / name, ignore_errors=True)


def write_label_frame(out_root: str | Path, label_path: str, index: Sequence[int],
                      labels: np.ndarray) -> None:
    """Write one 2D frame at leading-axis ``index`` (t and/or z positions), every level.

    Works for any multiscale group made by :func:`create_label_image` or
    :func:`create_frame_image` (levels subsample by striding).
    """
    import zarr

    group = zarr.open_group(str(Path(out_root) / label_path), mode="r+")
    sel = tuple(int(i) for i in index) + (slice(None), slice(None))
    for k, level in enumerate(_attrs(group)["multiscales"][0]["datasets"]):  # level k: 2**k coarser
        arr = group[level["path"]]
        arr[sel] = labels[::2**k, ::2**k].astype(arr.dtype, copy=False)


def write_ome_zarr_image(path: str | Path, data: np.ndarray, axes: str | Sequence[str],
                         pixel_size_um: float | None, *, version: str = "0.5",
                         z_step_um: float | None = None, chunks: Sequence[int] | None = None,
                         channel_names: Sequence[str] | None = None) -> Path:
    """Write a single-resolution OME-Zarr image (NGFF 0.4 on Zarr v2 or 0.5 on Zarr v3).

    Parameters
    ----------
    path : path
        New store (or an existing group path inside a plate).
    data : array
        Pixels, dimensions named by ``axes`` (NGFF order, e.g. ``"tczyx"``).
    axes : str or sequence of str
    pixel_size_um : float or None
        y/x pixel size; ``None`` writes no physical size (scale 1, no unit).
    version : {"0.4", "0.5"}
    z_step_um : float, optional
    chunks : sequence of int, optional
        Default: one 2D plane per chunk.
    channel_names : sequence of str, optional
        Written as ``omero`` channel labels.
    """
    import zarr
    from ome_zarr.writer import write_image

    axes = list(axes)
    data = np.asarray(data)
    fmt = _fmt(version)
    scale = [1.0] * len(axes)
    units: dict[str, str] = {}
    for i, a in enumerate(axes):
        if a in "yx" and pixel_size_um is not None:
            scale[i] = float(pixel_size_um)
            units[a] = "micrometer"
        elif a == "z" and z_step_um is not None:
            scale[i] = float(z_step_um)
            units[a] = "micrometer"
    if chunks is None:
        chunks = [1 if a not in "yx" else data.shape[i] for i, a in enumerate(axes)]
    group = zarr.open_group(str(path), mode="a", zarr_format=2 if version == "0.4" else 3)
    write_image(data, group, scale_factors=[], fmt=fmt, axes=axes,
                scale=dict(zip(axes, scale)),
                axes_units=units or None, storage_options={"chunks": tuple(chunks)})
    if channel_names:
        from ome_zarr.writer import add_metadata

        add_metadata(group, {"omero": {"channels": [{"label": str(n)} for n in channel_names]}}, fmt=fmt)
    return Path(path)
