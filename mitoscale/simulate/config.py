"""Validated configuration of the simulator (``configs/simulate.yaml``).

Every range of the method lives here with its default; lengths are in nm.
A range is a two-element list ``[min, max]`` with ``min <= max``.
"""

from __future__ import annotations

from pathlib import Path

from typing import Literal

from pydantic import Field, field_validator, model_serializer, model_validator

from mitoscale.config import StrictModel, load_config
from mitoscale.simulate.config_broad import BroadConfig
from mitoscale.simulate.config_broad import check_range as _check_range
from mitoscale.simulate.psf import Optics

__all__ = ["GeometryConfig", "OpticsConfig", "ImagingConfig", "CorpusConfig",
           "SimulateConfig", "load_simulate_config", "PRESETS", "preset_path"]

#: name -> the shipped YAML file of each preset (``configs/`` in the repository and the package)
PRESETS = {"paper": "simulate.yaml", "broad": "simulate_broad.yaml"}

Range = tuple[float, float]
IntRange = tuple[int, int]


class GeometryConfig(StrictModel):
    """Mitochondria as thick tubes along 3D Bezier curves with hemispherical caps."""

    xy_extent_nm: float = Field(5000.0, gt=0, description="control points lie within +-this of the crop centre")
    z_range_nm: Range = (0.0, 500.0)
    count_per_crop: IntRange = (4, 16)
    length_nm: Range = (500.0, 2500.0)
    width_nm: Range = (200.0, 500.0)
    control_points: IntRange = Field((3, 5), description="Bezier control points per curve")
    bend: float = Field(0.3, ge=0, le=1,
                        description="max lateral offset of inner control points, fraction of the chord")
    z_jitter_nm: float = Field(150.0, ge=0, description="max z offset of a control point from the curve's mean z")
    brightness: Range = Field((0.7, 1.3), description="relative dye density per mitochondrion")

    @field_validator("z_range_nm", "length_nm", "width_nm", "brightness", "count_per_crop",
                     "control_points")
    @classmethod
    def _ranges(cls, v, info):
        positive = info.field_name in ("length_nm", "width_nm", "brightness", "count_per_crop")
        _check_range(info.field_name, v, positive=positive)
        if info.field_name == "control_points" and v[0] < 2:
            raise ValueError("control_points: a Bezier curve needs at least 2 control points")
        return v


class OpticsConfig(StrictModel):
    """Gibson-Lanni widefield optics (oil immersion, used at its design values)."""

    numerical_aperture: float = Field(1.42, gt=0)
    magnification: float = Field(100.0, gt=0)
    wavelength_nm: float = Field(660.0, gt=0, description="emission wavelength")
    ni: float = Field(1.515, gt=1, description="immersion oil index (experimental)")
    ni0: float = Field(1.515, gt=1, description="immersion oil index (design)")
    ns: float = Field(1.33, gt=1, description="specimen index (live cells in aqueous medium)")
    ng: float = Field(1.515, gt=1, description="coverslip index (experimental)")
    ng0: float = Field(1.515, gt=1, description="coverslip index (design)")
    tg_nm: float = Field(170_000.0, gt=0, description="coverslip thickness (experimental), #1.5")
    tg0_nm: float = Field(170_000.0, gt=0, description="coverslip thickness (design)")
    ti0_nm: float = Field(150_000.0, gt=0, description="working distance (design oil thickness)")
    z0_depth_nm: float = Field(300.0, ge=0, description="depth above the coverslip of z = 0")
    psf_radius_nm: float = Field(1600.0, gt=0, description="PSF support used for convolution")
    oversample: int = Field(3, ge=1, le=9, description="sub-samples per pixel and axis (pixel integration)")

    @model_validator(mode="after")
    def _na(self):
        if self.numerical_aperture >= self.ni:
            raise ValueError(f"numerical_aperture {self.numerical_aperture} must be < ni {self.ni}")
        return self

    def optics(self) -> Optics:
        return Optics(na=self.numerical_aperture, wavelength_nm=self.wavelength_nm,
                      magnification=self.magnification, ns=self.ns, ni=self.ni, ni0=self.ni0,
                      ng=self.ng, ng0=self.ng0, tg_nm=self.tg_nm, tg0_nm=self.tg0_nm,
                      ti0_nm=self.ti0_nm)


class ImagingConfig(StrictModel):
    """Focal scan, max projection, photon budget."""

    n_focal_slices: int = Field(10, ge=1, description="focal planes evenly spaced over z_range_nm")
    object_plane_spacing_nm: float = Field(125.0, gt=0,
                                           description="z sampling of the dye density (linear interpolation)")
    sbr: Range = Field((2.0, 6.0), description="signal-to-background ratio, uniform per image")
    background_photons: Range = Field((50.0, 200.0),
                                      description="background photons per pixel at pixel_size_nm")

    @field_validator("sbr", "background_photons")
    @classmethod
    def _ranges(cls, v, info):
        return _check_range(info.field_name, v, positive=True)


class CorpusConfig(StrictModel):
    """Layout of the written corpus."""

    pixel_size_nm: float = Field(80.0, gt=0)
    crop_px: int = Field(128, ge=8, description="crop side in pixels at pixel_size_nm")
    crops_per_side: int = Field(4, ge=1, description="crops tiled per image side")
    max_label_layers: int = Field(8, ge=1, description="layers of the layered label array")
    images_per_chunk: int = Field(8, ge=1, description="images per Zarr chunk / Dask task")

    @property
    def image_px(self) -> int:
        return self.crop_px * self.crops_per_side

    @property
    def crop_nm(self) -> float:
        return self.crop_px * self.pixel_size_nm


class SimulateConfig(StrictModel):
    """Configuration of ``mitoscale simulate``; see ``configs/simulate.yaml``.

    ``preset: paper`` (the default) is the method's Table 1 and uses
    ``geometry`` and ``imaging``; ``preset: broad`` uses the ``broad``
    section instead (``configs/simulate_broad.yaml``, docs/simulate.md).
    ``optics`` (its depth, PSF support and oversampling; the broad preset
    draws the rest) and ``corpus`` serve both.
    """

    preset: Literal["paper", "broad"] = "paper"
    geometry: GeometryConfig = GeometryConfig()
    optics: OpticsConfig = OpticsConfig()
    imaging: ImagingConfig = ImagingConfig()
    corpus: CorpusConfig = CorpusConfig()
    broad: BroadConfig = BroadConfig()

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        # the paper preset dumps (and hashes) exactly as before the broad preset existed
        data = handler(self)
        if self.preset == "paper":
            data.pop("preset", None)
            data.pop("broad", None)
        return data

    @model_validator(mode="after")
    def _consistency(self):
        g, o = self.geometry, self.optics
        if self.preset == "broad":
            bg = self.broad.geometry
            lowest = o.z0_depth_nm + bg.z_range_nm[0] - bg.width_nm[1] / 2
            if lowest < 0:
                raise ValueError(
                    f"optics.z0_depth_nm={o.z0_depth_nm}: the widest tube at z={bg.z_range_nm[0]} would "
                    f"reach {lowest:g} nm below the coverslip; raise z0_depth_nm")
            return self
        lowest = o.z0_depth_nm + g.z_range_nm[0] - g.width_nm[1] / 2
        if lowest < 0:
            raise ValueError(
                f"optics.z0_depth_nm={o.z0_depth_nm}: the widest tube at z={g.z_range_nm[0]} would reach "
                f"{lowest:g} nm below the coverslip; raise z0_depth_nm")
        if g.xy_extent_nm > self.corpus.crop_nm / 2:
            raise ValueError(f"geometry.xy_extent_nm={g.xy_extent_nm} exceeds half a crop "
                             f"({self.corpus.crop_nm / 2:g} nm)")
        return self


def preset_path(name: str) -> Path:
    """The shipped YAML file of a preset (``paper``, ``broad``)."""
    from mitoscale.errors import ConfigError

    if name not in PRESETS:
        raise ConfigError(f"unknown simulator preset {name!r}; choose one of {', '.join(PRESETS)}")
    here = Path(__file__).resolve().parents[1] / "configs" / PRESETS[name]   # installed package data
    repo = Path(__file__).resolve().parents[2] / "configs" / PRESETS[name]   # source checkout
    return here if here.is_file() else repo


def load_simulate_config(path: str | Path | None, overrides: list[str] | None = None,
                         preset: str | None = None) -> SimulateConfig:
    """Read and validate a simulator config (``None``: the defaults, i.e. the paper preset).

    ``preset`` names a shipped preset file (``paper``, ``broad``) instead of ``path``.
    """
    if preset is not None:
        if path is not None:
            from mitoscale.errors import ConfigError

            raise ConfigError("give either --config or --preset, not both")
        path = preset_path(preset)
    return load_config(path, SimulateConfig, overrides=overrides)
