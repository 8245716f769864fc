"""Validated configuration of the ``broad`` simulator preset (``configs/simulate_broad.yaml``).

The ``paper`` preset (``configs/simulate.yaml``) is the method's Table 1 and
stays as it is.  The ``broad`` preset widens every range toward what real
widefield images of cells show: long, curved, branched and crossing
mitochondria on a whole field, dots, uneven labelling, out-of-focus haze,
randomised optics, a camera (ADU) and other pixel sizes.  Each item is a
range drawn per image (or per object); docs/simulate.md gives the reasons.
Lengths in nm unless a name says otherwise.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field, field_validator, model_validator
from scipy import special

from mitoscale.config import StrictModel

__all__ = ["LengthDistribution", "BroadGeometry", "BroadIntensity", "BroadOptics",
           "BroadCamera", "BroadConfig"]

Range = tuple[float, float]
IntRange = tuple[int, int]


def check_range(name: str, value, positive: bool = False, nonneg: bool = False,
                unit: bool = False):
    """Validate a ``[min, max]`` range (one-line messages for :class:`ConfigError`)."""
    lo, hi = value
    if lo > hi:
        raise ValueError(f"{name}: min {lo} > max {hi}")
    if positive and lo <= 0:
        raise ValueError(f"{name}: values must be positive, got {lo}")
    if nonneg and lo < 0:
        raise ValueError(f"{name}: values must be >= 0, got {lo}")
    if unit and (lo < 0 or hi > 1):
        raise ValueError(f"{name}: values must lie in [0, 1], got {list(value)}")
    return value


class LengthDistribution(StrictModel):
    """A length distribution truncated to ``range_nm``: log-normal (long-tailed) or uniform."""

    distribution: Literal["lognormal", "uniform"] = "lognormal"
    median_nm: float = Field(1800.0, gt=0, description="median of the untruncated log-normal")
    sigma: float = Field(0.85, gt=0, description="standard deviation of ln(length)")
    range_nm: Range = (300.0, 14000.0)

    @field_validator("range_nm")
    @classmethod
    def _range(cls, v):
        return check_range("range_nm", v, positive=True)

    @model_validator(mode="after")
    def _mass(self):
        lo, hi = self.range_nm
        if self.distribution == "lognormal":
            a, b = self._bounds()
            if not (special.ndtr(b) - special.ndtr(a) > 1e-9):
                raise ValueError(f"length distribution: log-normal (median {self.median_nm:g} nm, "
                                 f"sigma {self.sigma:g}) has no mass in range_nm {list(self.range_nm)}")
        elif hi <= lo:
            raise ValueError(f"length distribution: uniform range_nm {list(self.range_nm)} is empty")
        return self

    def _bounds(self) -> tuple[float, float]:
        lo, hi = self.range_nm
        mu = math.log(self.median_nm)
        return (math.log(lo) - mu) / self.sigma, (math.log(hi) - mu) / self.sigma

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` lengths (nm) by inverse transform of the truncated distribution."""
        u = rng.uniform(0.0, 1.0, n)
        return self.ppf(u)

    def ppf(self, u: np.ndarray) -> np.ndarray:
        lo, hi = self.range_nm
        if self.distribution == "uniform":
            return lo + np.asarray(u) * (hi - lo)
        a, b = self._bounds()
        ca, cb = special.ndtr(a), special.ndtr(b)
        return np.exp(math.log(self.median_nm) + self.sigma * special.ndtri(ca + np.asarray(u) * (cb - ca)))

    def cdf(self, x: np.ndarray) -> np.ndarray:
        """CDF of the truncated distribution (for goodness-of-fit tests)."""
        lo, hi = self.range_nm
        x = np.clip(np.asarray(x, dtype=float), lo, hi)
        if self.distribution == "uniform":
            return (x - lo) / (hi - lo)
        a, b = self._bounds()
        ca, cb = special.ndtr(a), special.ndtr(b)
        z = (np.log(x) - math.log(self.median_nm)) / self.sigma
        return (special.ndtr(z) - ca) / (cb - ca)


class BroadGeometry(StrictModel):
    """Objects on the whole field: tubes, dots, branched networks, haze."""

    objects_per_image: IntRange = Field((20, 400), description="in-focus objects per 512 px field, log-uniform")
    tube_length: LengthDistribution = LengthDistribution()
    width_nm: Range = Field((200.0, 700.0), description="tube diameter, log-uniform per object")
    bend: Range = Field((0.0, 0.6), description="lateral offset of inner control points, fraction of chord")
    dot_fraction: Range = Field((0.05, 0.5), description="share of objects that are round/ovoid dots, per image")
    dot_diameter_nm: Range = (300.0, 1000.0)
    dot_aspect: Range = Field((1.0, 1.8), description="length / diameter of a dot (1: a sphere)")
    network_fraction: Range = Field((0.0, 0.35), description="share of objects that are branched networks")
    network_edges: IntRange = Field((2, 6), description="tube segments per network (2: a V; 3: a Y or T)")
    branch_length: LengthDistribution = LengthDistribution(median_nm=1500.0, sigma=0.5,
                                                           range_nm=(600.0, 5000.0))
    crossing_rate: float = Field(0.25, ge=0, le=1,
                                 description="probability that a tube is laid across an earlier one")
    crossing_gap_nm: float = Field(150.0, ge=0, description="extra z gap between two crossing tubes")
    z_range_nm: Range = Field((-700.0, 1200.0),
                              description="centreline heights; the focal planes span [0, focal_span]")
    z_jitter_nm: float = Field(200.0, ge=0)
    nucleus_probability: float = Field(0.8, ge=0, le=1)
    nucleus_semi_axes_nm: Range = (3000.0, 7000.0)
    cluster_scale_nm: Range = Field((1000.0, 7000.0),
                                    description="mean distance of objects from the nucleus edge")
    haze_objects: IntRange = Field((0, 60), description="tubes far out of focus: light, no ground truth")
    haze_defocus_nm: Range = Field((1500.0, 4000.0),
                                   description="their distance beyond the outermost focal plane")

    @field_validator("width_nm", "bend", "dot_fraction", "dot_diameter_nm", "dot_aspect",
                     "network_fraction", "z_range_nm", "nucleus_semi_axes_nm", "cluster_scale_nm",
                     "haze_defocus_nm", "objects_per_image", "network_edges", "haze_objects")
    @classmethod
    def _ranges(cls, v, info):
        name = info.field_name
        positive = name in ("width_nm", "dot_diameter_nm", "dot_aspect", "nucleus_semi_axes_nm",
                            "cluster_scale_nm", "haze_defocus_nm", "objects_per_image", "network_edges")
        check_range(name, v, positive=positive, nonneg=name == "haze_objects",
                    unit=name in ("dot_fraction", "network_fraction", "bend"))
        if name == "dot_aspect" and v[0] < 1:
            raise ValueError("dot_aspect: must be >= 1")
        if name == "network_edges" and v[0] < 2:
            raise ValueError("network_edges: a network needs at least 2 edges")
        return v

    @model_validator(mode="after")
    def _fractions(self):
        if self.dot_fraction[1] + self.network_fraction[1] > 1:
            raise ValueError("dot_fraction max + network_fraction max must be <= 1")
        return self


class BroadIntensity(StrictModel):
    """Brightness between objects and along them."""

    brightness_sigma: float = Field(0.35, ge=0, description="log-normal spread of dye density between objects")
    dim_fraction: float = Field(0.15, ge=0, le=1, description="share of objects made dim")
    dim_factor: Range = Field((0.15, 0.45), description="brightness factor of a dim object")
    nucleoid_amplitude: Range = Field((0.2, 0.5), description="+- modulation of dye density along a tube")
    nucleoid_period_nm: Range = (400.0, 1200.0)

    @field_validator("dim_factor", "nucleoid_amplitude", "nucleoid_period_nm")
    @classmethod
    def _ranges(cls, v, info):
        return check_range(info.field_name, v, positive=info.field_name != "nucleoid_amplitude",
                           unit=info.field_name != "nucleoid_period_nm")


class BroadOptics(StrictModel):
    """Optics drawn per image from a bank of ``bank_size`` Gibson-Lanni configurations."""

    numerical_aperture: Range = (1.2, 1.49)
    wavelength_nm: Range = Field((500.0, 700.0), description="emission")
    ns: Range = Field((1.33, 1.40), description="specimen index: medium to cytoplasm")
    ni_mismatch: Range = Field((-0.004, 0.004), description="immersion index minus its design value")
    ni0: float = Field(1.515, gt=1, description="immersion (design) index; NA must stay below ni")
    focal_slices: IntRange = Field((1, 15), description="max-projected focal slices")
    single_plane_probability: float = Field(0.3, ge=0, le=1, description="share of one-plane images")
    focal_span_nm: Range = Field((200.0, 1000.0), description="z span of the focal slices")
    render_pixel_nm: Range = Field((60.0, 110.0),
                                   description="pixel size rendered at, then resampled to 80 nm")
    object_plane_spacing_nm: float = Field(200.0, gt=0)
    bank_size: int = Field(12, ge=1, le=64, description="optics configurations per corpus seed")

    @field_validator("numerical_aperture", "wavelength_nm", "ns", "ni_mismatch", "focal_slices",
                     "focal_span_nm", "render_pixel_nm")
    @classmethod
    def _ranges(cls, v, info):
        return check_range(info.field_name, v, positive=info.field_name != "ni_mismatch")

    @model_validator(mode="after")
    def _na(self):
        ni_min = self.ni0 + self.ni_mismatch[0]
        if self.numerical_aperture[1] >= ni_min:
            raise ValueError(f"numerical_aperture max {self.numerical_aperture[1]} must be < the immersion "
                             f"index {ni_min:g}")
        if self.ns[1] >= ni_min:
            raise ValueError(f"ns max {self.ns[1]} must be < the immersion index {ni_min:g}")
        return self


class BroadCamera(StrictModel):
    """Background, illumination and an sCMOS/EMCCD-like camera model (counts in ADU)."""

    sbr: Range = Field((1.5, 10.0), description="in-focus signal / uniform background, per image")
    background_photons: Range = Field((20.0, 300.0), description="uniform background per 80 nm pixel")
    cell_haze: Range = Field((0.0, 1.5), description="peak cell-body haze, in units of the background")
    illumination_falloff: Range = Field((0.0, 0.4), description="relative intensity lost at the corners")
    gain_adu_per_e: Range = (0.5, 3.0)
    offset_adu: Range = (90.0, 500.0)
    read_noise_e: Range = Field((1.0, 4.0), description="Gaussian read noise, electrons rms")
    eight_bit_probability: float = Field(0.35, ge=0, le=1,
                                         description="share of images contrast-stretched to 8 bits")
    stretch_percentiles: Range = Field((0.05, 99.95), description="8-bit stretch: low and high percentile")

    @field_validator("sbr", "background_photons", "cell_haze", "illumination_falloff", "gain_adu_per_e",
                     "offset_adu", "read_noise_e", "stretch_percentiles")
    @classmethod
    def _ranges(cls, v, info):
        name = info.field_name
        return check_range(name, v, positive=name in ("sbr", "background_photons", "gain_adu_per_e"),
                           nonneg=True, unit=name == "illumination_falloff")


class BroadConfig(StrictModel):
    """All ranges of the ``broad`` preset."""

    geometry: BroadGeometry = BroadGeometry()
    intensity: BroadIntensity = BroadIntensity()
    optics: BroadOptics = BroadOptics()
    camera: BroadCamera = BroadCamera()
