"""Input discovery for every stage: OME-Zarr images and plates, TIFF/PNG files and folders.

Two calls read any input the same way (the segmenter, the baselines and the
evaluation all use them)::

    from mitoscale.io.images import open_image, iter_frames
    sources = open_image("movie.ome.zarr")            # list of ImageSource
    sources = open_image("pngs/", pixel_size_um=0.08)  # a folder needs a pixel size
    for src in sources:
        for frame in iter_frames(src, channel=0, z_mode="max"):
            frame.keys   # {"image_id", "well", "field", "t", "z"} (z = -1 when projected)
            frame.data   # lazy (Y, X) dask array; .compute() reads it

* :func:`open_image` dispatches on the path: an OME-Zarr store (see
  :mod:`mitoscale.io.omezarr`), one ``.tif/.tiff/.png`` file, or a folder of
  them (sorted by name, each file one image with ``image_id`` = file stem).
* TIFF axes come from ``tifffile``'s series axes (``T``, ``C``/``S``, ``Z``,
  ``Y``, ``X``; ``I``/``Q`` are unknown and rejected unless the image is 2D
  plus that one axis, which is then read as ``t``).  RGB(A) PNGs become their
  luminance; 8/16-bit grey PNGs are read as they are.
* TIFF pixel sizes come from the tags (:func:`tiff_pixel_size`: OME-XML
  ``PhysicalSizeX/Y``, the ImageJ ``unit`` with the resolution tags, or the
  resolution tags in centimetres); PNGs carry none, so one must be given
  (``pixel_size_um``, which also overrides the tags); :func:`require_pixel_size`
  raises the one-line error.  :func:`check_pixel_sizes` refuses pixel sizes
  the model cannot resolve.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mitoscale.errors import InputError
from mitoscale.io.omezarr import ImageSource, is_ome_zarr, open_ome_zarr

__all__ = [
    "IMAGE_SUFFIXES",
    "Frame",
    "FrameRef",
    "open_image",
    "open_image_files",
    "iter_frames",
    "frame_count",
    "require_pixel_size",
    "check_pixel_sizes",
    "check_channel",
    "tiff_pixel_size",
    "ImageSource",
]

IMAGE_SUFFIXES = (".tif", ".tiff", ".png")


@dataclass
class Frame:
    """One 2D frame of an :class:`ImageSource` with its location keys."""

    source: ImageSource
    t: int
    z: int  # -1 for a max projection
    data: Any  # lazy (Y, X): a FrameRef (Zarr) or a dask array; .compute() reads it

    @property
    def keys(self) -> dict[str, Any]:
        s = self.source
        return dict(image_id=s.image_id, well=s.well, field=s.field, t=self.t, z=self.z)

    @property
    def unit(self) -> str:
        """Stable name of this frame as a unit of work (marker and part-file name)."""
        s = self.source
        well = s.well.replace("/", "-") or "_"
        return f"{s.image_id}__{well}__f{s.field}__t{self.t}__z{self.z}"


def _read_tiff(path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            series = tf.series[0]
            axes = series.axes.upper()
            data = series.asarray()
    except Exception as exc:  # noqa: BLE001 - tifffile raises many types
        raise InputError(f"{path}: cannot read TIFF ({exc.__class__.__name__}: {exc})") from None
    mapping = {"T": "t", "C": "c", "S": "c", "Z": "z", "Y": "y", "X": "x"}
    names = []
    for a in axes:
        if a in mapping:
            names.append(mapping[a])
        elif a in "IQ" and data.ndim == 3:
            names.append("t")
        else:
            raise InputError(f"{path}: unknown TIFF axes {axes!r} (allowed T, C/S, Z, Y, X)")
    if len(set(names)) != len(names):
        raise InputError(f"{path}: ambiguous TIFF axes {axes!r}")
    order = sorted(range(len(names)), key=lambda i: "tczyx".index(names[i]))
    return np.transpose(data, order), tuple(names[i] for i in order)


def _length_um(value: float, unit: str | None) -> float | None:
    from mitoscale.io.omezarr import unit_to_um

    unit = "micrometer" if unit is None else str(unit).replace("\\u00B5", "µ").replace("\u03bc", "µ")
    factor = unit_to_um(unit)
    return float(value) * factor if factor is not None and value > 0 else None


def tiff_pixel_size(path: str | Path) -> float | None:
    """Y/x pixel size in µm from a TIFF's tags, or ``None``.

    In order: OME-XML ``PhysicalSizeX``/``PhysicalSizeY`` (with their units),
    ImageJ's ``unit`` with the ``XResolution``/``YResolution`` tags, and the
    resolution tags with ``ResolutionUnit`` centimetre or inch (sizes above
    10 µm from those are the 72/300 dpi defaults of non-microscopy software
    and are ignored).  Anisotropic pixels are an :class:`InputError`.
    """
    import tifffile

    def frac(tag):
        if tag is None:
            return None
        v = tag.value
        return v[0] / v[1] if isinstance(v, tuple) and v[1] else float(v)

    try:
        with tifffile.TiffFile(path) as tf:
            page = tf.pages[0]
            sizes = None
            if tf.is_ome and tf.ome_metadata:
                sizes = _ome_xml_sizes(tf.ome_metadata)
            if sizes is None:
                xr, yr = frac(page.tags.get("XResolution")), frac(page.tags.get("YResolution"))
                unit_tag = page.tags.get("ResolutionUnit")
                runit = int(unit_tag.value) if unit_tag is not None else 2
                ij = tf.imagej_metadata or {}
                if xr and yr and ij.get("unit"):
                    sizes = (_length_um(1 / xr, ij["unit"]), _length_um(1 / yr, ij["unit"]))
                elif xr and yr and runit in (2, 3):
                    per = 25400.0 if runit == 2 else 10000.0
                    sizes = (per / xr, per / yr)
                    if max(sizes) > 10:
                        sizes = None
    except Exception:  # noqa: BLE001 - metadata is best effort; pixels are read elsewhere
        return None
    if not sizes or None in sizes:
        return None
    sx, sy = sizes
    if abs(sx - sy) > 1e-3 * max(sx, sy):
        raise InputError(f"{path}: anisotropic pixels ({sy:g} x {sx:g} µm) are not supported")
    return float(sx)


def _ome_xml_sizes(xml: str) -> tuple[float | None, float | None] | None:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(xml)
    for el in root.iter():
        if el.tag.endswith("}Pixels") or el.tag == "Pixels":
            if "PhysicalSizeX" not in el.attrib:
                return None
            x = _length_um(float(el.attrib["PhysicalSizeX"]), el.attrib.get("PhysicalSizeXUnit", "µm"))
            y = _length_um(float(el.attrib.get("PhysicalSizeY", el.attrib["PhysicalSizeX"])),
                           el.attrib.get("PhysicalSizeYUnit", el.attrib.get("PhysicalSizeXUnit", "µm")))
            return x, y
    return None


def _read_png(path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    import imageio.v3 as iio

    try:
        data = np.asarray(iio.imread(path))
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{path}: cannot read PNG ({exc.__class__.__name__}: {exc})") from None
    if data.ndim == 3:
        rgb = data[..., :3].astype(np.float32)
        data = rgb @ np.array([0.2125, 0.7154, 0.0721], dtype=np.float32)
    return data, ("y", "x")


def _read_file(path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    return _read_png(path) if path.suffix.lower() == ".png" else _read_tiff(path)


def open_image_files(files: list[Path], pixel_size_um: float | None = None) -> list[ImageSource]:
    """One :class:`ImageSource` per TIFF/PNG file; pixels are read lazily."""
    import dask
    import dask.array as da

    sources = []
    for f in files:
        data, axes = _read_file(f)  # header + pixels once, for shape and axes
        if 0 in data.shape:
            raise InputError(f"{f}: image is empty (shape {data.shape})")
        lazy = da.from_delayed(dask.delayed(lambda p: _read_file(p)[0])(f), shape=data.shape,
                               dtype=data.dtype)
        px = pixel_size_um
        if px is None and f.suffix.lower() in (".tif", ".tiff"):
            px = tiff_pixel_size(f)
        sources.append(ImageSource(
            data=lazy, axes=axes, pixel_size_um=px, image_id=f.stem, path=str(f),
            group_path=f.stem,
            scale={a: (px if a in "yx" and px else 1.0) for a in axes},
            units={a: "micrometer" for a in axes if a in "yx" and px},
        ))
    return sources


def open_image(path: str | Path, pixel_size_um: float | None = None) -> list[ImageSource]:
    """Open any supported input as a list of :class:`ImageSource`.

    Parameters
    ----------
    path : path
        OME-Zarr image or plate, a TIFF/PNG file, or a folder of them.
    pixel_size_um : float, optional
        Pixel size in µm; overrides OME-Zarr metadata, required for files.

    Raises
    ------
    InputError
        Missing path, unsupported files, unreadable data, bad axes.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"input not found: {path}")
    if pixel_size_um is not None and not (np.isfinite(pixel_size_um) and pixel_size_um > 0):
        raise InputError(f"pixel size must be a positive number of µm, got {pixel_size_um}")
    if path.is_dir() and is_ome_zarr(path):
        return open_ome_zarr(path, pixel_size_um=pixel_size_um)
    if path.is_dir():
        if any((path / n).exists() for n in ("zarr.json", ".zgroup", ".zattrs")):
            raise InputError(f"{path}: Zarr store without NGFF 'multiscales' or 'plate' metadata")
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(f"{path}: no OME-Zarr metadata and no {'/'.join(IMAGE_SUFFIXES)} files")
        return open_image_files(files, pixel_size_um)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return open_image_files([path], pixel_size_um)
    raise InputError(f"{path}: unsupported input (expected OME-Zarr, TIFF or PNG)")


def require_pixel_size(sources: list[ImageSource]) -> None:
    """Raise :class:`InputError` naming the first source without a pixel size."""
    for s in sources:
        if s.pixel_size_um is None:
            raise InputError(f"{s.path}: pixel size is missing (no NGFF scale with a unit, no TIFF "
                             "resolution tags); pass --pixel-size in µm")


#: how far (either way) an input's pixel size may be from the model's before it is refused
DEFAULT_MAX_RESAMPLE = 4.0


def check_pixel_sizes(sources: list[ImageSource], model_pixel_size_um: float,
                      max_resample: float = DEFAULT_MAX_RESAMPLE) -> None:
    """Refuse pixel sizes the model cannot resolve (far from its training pixel size).

    Frames are resampled to ``model_pixel_size_um``; a factor beyond
    ``max_resample`` either way means blur upsampled into fake detail (or
    mitochondria shrunk below a pixel).  Usually the pixel size is simply
    wrong (a pixel size in the wrong unit, a 72 dpi default).
    """
    for s in sources:
        if s.pixel_size_um is None:
            continue
        factor = s.pixel_size_um / model_pixel_size_um
        if factor > max_resample or factor < 1 / max_resample:
            way = (f"upsampled {factor:.3g}x: mitochondria (~0.3 µm wide) are not resolved at "
                   f"{s.pixel_size_um:g} µm/px" if factor > 1 else
                   f"downsampled {1 / factor:.3g}x")
            need = max(factor, 1 / factor)
            raise InputError(
                f"{s.path}: pixel size {s.pixel_size_um:g} µm is far from the model's "
                f"{model_pixel_size_um:g} µm (frames would be {way}); check --pixel-size, or "
                f"allow it with --set input.max_resample={np.ceil(need * 10) / 10:g}")


def check_channel(src: ImageSource, channel: int | str) -> None:
    """Refuse a channel the image does not have (an image without a ``c`` axis has only channel 0)."""
    if "c" in src.axes:
        _channel_index(src, channel)
    elif str(channel) not in ("0", "-1"):
        raise InputError(f"{src.path}: image has no channel axis, so channel {channel!r} does not "
                         "exist (leave --channel out)")


def _channel_index(src: ImageSource, channel: int | str) -> int:
    n = src.size("c")
    if isinstance(channel, str) and not channel.lstrip("-").isdigit():
        if channel in src.channel_names:
            return src.channel_names.index(channel)
        raise InputError(f"{src.path}: no channel named {channel!r} (have {src.channel_names})")
    c = int(channel)
    if not -n <= c < n:
        raise InputError(f"{src.path}: channel {c} out of range (image has {n})")
    return c % n


def iter_frames(src: ImageSource, channel: int | str = 0, z_mode: str = "max") -> Iterator[Frame]:
    """Yield the 2D frames of ``src``, t-major, each with its location keys.

    Parameters
    ----------
    src : ImageSource
    channel : int or str
        Channel index or name (only 0 exists when there is no ``c`` axis).
    z_mode : {"max", "each"}
        Max-project z (frame ``z = -1``) or yield every plane (``z = index``).
    """
    if z_mode not in ("max", "each"):
        raise InputError(f"z_mode must be 'max' or 'each', got {z_mode!r}")
    data, axes = src.data, list(src.axes)
    check_channel(src, channel)
    if "c" in axes:
        import dask.array as da

        data = da.take(data, _channel_index(src, channel), axis=axes.index("c"))
        axes.remove("c")
    if "t" not in axes:
        data, axes = data[None], ["t", *axes]
    if "z" not in axes:
        data, axes = data[:, None], ["t", "z", "y", "x"]
    for t in range(data.shape[0]):
        if z_mode == "max":
            # a projection of a missing z axis is the plane itself, but keys stay -1 only
            # when there is a real z axis to project
            z_key = -1 if "z" in src.axes else 0
            yield Frame(src, t, z_key, _frame(src, data, t, None, channel))
        else:
            for z in range(data.shape[1]):
                yield Frame(src, t, z, _frame(src, data, t, z, channel))


@dataclass(frozen=True)
class FrameRef:
    """A lazy 2D frame of a Zarr array: the array and an index, read where it is computed.

    A slice of the source's dask array would carry the graph of the whole
    array (for a 500-frame movie 1,000 tasks, ~50 KB pickled), pickled again
    for every frame of every task and held by the scheduler; this pickles as
    the array's store and metadata plus the index (~1 KB).
    """

    array: Any  # zarr.Array
    index: tuple  # an int or slice(None) per axis of ``array``
    project: bool  # max over the first remaining axis (z)
    shape: tuple[int, ...]
    dtype: Any

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def compute(self, scheduler: Any = None) -> np.ndarray:
        """Read the frame (only the chunks it touches); ``scheduler`` is accepted for dask's signature."""
        x = np.asarray(self.array[self.index])
        return x.max(axis=0) if self.project else x

    def __array__(self, dtype=None, copy=None):
        x = self.compute()
        return x if dtype is None else x.astype(dtype)


def _frame(src: ImageSource, data: Any, t: int, z: int | None, channel: int | str) -> Any:
    """Frame ``t`` (plane ``z``, or the max over z when ``None``) of ``data``, ``src``'s (t, z, y, x) view."""
    if src.array is None:  # not Zarr (a TIFF or PNG read whole by one small task): the dask slice
        if z is not None:
            return data[t, z]
        return data[t].max(axis=0) if data.shape[1] > 1 else data[t, 0]
    project = z is None and src.size("z") > 1
    pos = {"t": t, "z": slice(None) if project else (z or 0)}
    if "c" in src.axes:
        pos["c"] = _channel_index(src, channel)
    index = tuple(pos.get(a, slice(None)) for a in src.axes)
    return FrameRef(src.array, index, project, tuple(data.shape[-2:]), data.dtype)


def frame_count(src: ImageSource, z_mode: str = "max") -> int:
    """Number of frames :func:`iter_frames` yields."""
    return src.size("t") * (src.size("z") if z_mode == "each" else 1)
