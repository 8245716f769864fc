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
* A folder or file has no reliable pixel size, so one must be given
  (``pixel_size_um``); :func:`require_pixel_size` raises the one-line error.
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
    "open_image",
    "open_image_files",
    "iter_frames",
    "frame_count",
    "require_pixel_size",
    "ImageSource",
]

IMAGE_SUFFIXES = (".tif", ".tiff", ".png")


@dataclass
class Frame:
    """One 2D frame of an :class:`ImageSource` with its location keys."""

    source: ImageSource
    t: int
    z: int  # -1 for a max projection
    data: Any  # lazy (Y, X) dask array

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
        sources.append(ImageSource(
            data=lazy, axes=axes, pixel_size_um=pixel_size_um, image_id=f.stem, path=str(f),
            group_path=f.stem,
            scale={a: (pixel_size_um if a in "yx" and pixel_size_um else 1.0) for a in axes},
            units={a: "micrometer" for a in axes if a in "yx" and pixel_size_um},
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
            raise InputError(f"{s.path}: pixel size is missing (no NGFF scale with a unit); "
                             "pass --pixel-size in µm")


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
        Channel index or name (ignored when there is no ``c`` axis).
    z_mode : {"max", "each"}
        Max-project z (frame ``z = -1``) or yield every plane (``z = index``).
    """
    if z_mode not in ("max", "each"):
        raise InputError(f"z_mode must be 'max' or 'each', got {z_mode!r}")
    data, axes = src.data, list(src.axes)
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
            yield Frame(src, t, z_key, data[t].max(axis=0) if data.shape[1] > 1 else data[t, 0])
        else:
            for z in range(data.shape[1]):
                yield Frame(src, t, z, data[t, z])


def frame_count(src: ImageSource, z_mode: str = "max") -> int:
    """Number of frames :func:`iter_frames` yields."""
    return src.size("t") * (src.size("z") if z_mode == "each" else 1)
