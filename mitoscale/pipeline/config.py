"""The one-config pipeline: ``configs/pipeline.yaml`` validated.

Each stage section names its own stage config file (``config:``) and
single-key overrides (``set:``), so a pipeline config is a thin layer over
the stage configs a user already knows.  Relative paths in the file are
resolved against the file's own folder (so ``mitoscale run --config
/abs/configs/demo.yaml`` works from anywhere); paths given with ``--set``
against the current directory.  They are stored absolute in the run directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, PositiveInt, field_validator

from mitoscale.config import StrictModel, load_config, load_yaml, validate
from mitoscale.track.config import MovieConfig

__all__ = [
    "ClusterSection",
    "SimulateSection",
    "SampleCondition",
    "SamplesSection",
    "TrainSection",
    "SegmentInput",
    "SegmentSection",
    "AnalyzeSection",
    "PipelineConfig",
    "load_pipeline_config",
    "overrides_list",
    "stage_config",
]


def overrides_list(mapping: dict[str, Any]) -> list[str]:
    """``{"a.b": 1}`` -> ``["a.b=1"]`` (values written as YAML/JSON)."""
    import json

    return [f"{k}={json.dumps(v)}" for k, v in mapping.items()]


class ClusterSection(StrictModel):
    """Where the Dask stages (simulate, samples, segment) run; not part of any stage key."""

    profile: str = Field("local", description="cluster profile name or YAML path")
    workers: PositiveInt | None = None
    scheduler: str | None = None
    options: dict[str, Any] = Field(default_factory=dict, description="single-key profile overrides")


class SimulateSection(StrictModel):
    """The synthetic training corpus (``RUN_DIR/corpus.zarr``)."""

    enabled: bool = True
    config: str | None = Field(None, description="simulate YAML; null = built-in defaults")
    set: dict[str, Any] = Field(default_factory=dict)
    n_images: PositiveInt = 64
    seed: int = 0
    chunk_images: PositiveInt | None = None


class SampleCondition(StrictModel):
    """One experimental condition of the synthetic acquisitions: simulator overrides."""

    name: str
    set: dict[str, Any] = Field(default_factory=dict)


class SamplesSection(StrictModel):
    """Synthetic acquisitions to segment and analyse (the demo's stand-in for microscope data).

    Writes ``samples/timelapse.ome.zarr`` (t, y, x) and ``samples/plate.ome.zarr``
    (an HCS plate: one row per condition) at ``pixel_size_um``, plus
    ``samples/plate_conditions.csv`` mapping wells to conditions.
    """

    enabled: bool = False
    config: str | None = Field(None, description="simulate YAML the conditions start from")
    seed: int = 1
    image_px: PositiveInt = 256
    pixel_size_um: float = Field(0.08, gt=0)
    timelapse_frames: int = Field(4, ge=0, description="0 = no timelapse")
    timelapse_condition: str | None = Field(None, description="default: the first condition")
    timelapse_interval_s: float = Field(60.0, gt=0, description="time step in the timelapse's metadata")
    wells_per_condition: int = Field(2, ge=0, description="0 = no plate")
    fields_per_well: PositiveInt = 2
    conditions: list[SampleCondition] = Field(
        default_factory=lambda: [SampleCondition(name="control")])
    movie: MovieConfig = Field(default_factory=lambda: MovieConfig(frames=0),
                               description="timelapse with known tracks (samples/movie.ome.zarr); "
                                           "frames 0 = none")

    @field_validator("conditions")
    @classmethod
    def _unique(cls, v: list[SampleCondition]) -> list[SampleCondition]:
        names = [c.name for c in v]
        if not names or len(set(names)) != len(names):
            raise ValueError("needs at least one condition, with unique names")
        if len(names) > 26:
            raise ValueError("at most 26 conditions (one plate row each)")
        return v


class TrainSection(StrictModel):
    """Fine-tune on the corpus (``RUN_DIR/train``); off = segment with ``segment.model``."""

    enabled: bool = False
    config: str | None = Field(None, description="train YAML; data.corpus is set to the run's corpus")
    set: dict[str, Any] = Field(default_factory=dict)


class SegmentInput(StrictModel):
    """An image, timelapse or plate of the user's to segment (and analyse)."""

    name: str
    path: str
    conditions: str | None = Field(None, description="CSV for `analyze`; null = not analysed")
    set: dict[str, Any] = Field(default_factory=dict, description="segment overrides for this input")


class SegmentSection(StrictModel):
    """Segment every input (``RUN_DIR/segment/<name>``)."""

    enabled: bool = True
    config: str | None = None
    set: dict[str, Any] = Field(default_factory=dict)
    model: str | None = Field(None, description="checkpoint when train is off; null = shipped model")
    inputs: list[SegmentInput] = Field(default_factory=list)


class AnalyzeSection(StrictModel):
    """Dot/rod morphology per condition (``RUN_DIR/results/<name>``)."""

    enabled: bool = True
    config: str | None = None
    set: dict[str, Any] = Field(default_factory=dict)


class TrackSection(StrictModel):
    """Tracks, fission and fusion of every segmented timelapse (``RUN_DIR/tracks/<name>``)."""

    enabled: bool = True
    config: str | None = None
    set: dict[str, Any] = Field(default_factory=dict)


class PipelineConfig(StrictModel):
    """``mitoscale run --config pipeline.yaml``: every stage in one file."""

    cluster: ClusterSection = Field(default_factory=ClusterSection)
    simulate: SimulateSection = Field(default_factory=SimulateSection)
    samples: SamplesSection = Field(default_factory=SamplesSection)
    train: TrainSection = Field(default_factory=TrainSection)
    segment: SegmentSection = Field(default_factory=SegmentSection)
    analyze: AnalyzeSection = Field(default_factory=AnalyzeSection)
    track: TrackSection = Field(default_factory=TrackSection)


def _absolutise(cfg: PipelineConfig, base: Path) -> None:
    def fix(p: str | None) -> str | None:
        if p is None:
            return None
        q = Path(p).expanduser()
        return str(q if q.is_absolute() else (base / q).resolve())

    for section in (cfg.simulate, cfg.samples, cfg.train, cfg.segment, cfg.analyze, cfg.track):
        section.config = fix(section.config)
    cfg.segment.model = fix(cfg.segment.model)
    for inp in cfg.segment.inputs:
        inp.path = fix(inp.path)
        inp.conditions = fix(inp.conditions)
    if cfg.cluster.profile.endswith((".yaml", ".yml")):
        cfg.cluster.profile = fix(cfg.cluster.profile)


def load_pipeline_config(path: str | Path | None, overrides: list[str] | None = None,
                         base: str | Path | None = None) -> PipelineConfig:
    """Read and validate a pipeline YAML; relative paths become absolute.

    Parameters
    ----------
    path : path or None
        The YAML file; ``None`` uses the defaults.
    overrides : list of str
        ``section.key=value`` overrides (``--set``).
    base : path, optional
        Directory the file's relative paths are resolved against (default:
        the file's folder).  Paths in ``overrides`` are resolved against the
        current directory, as for every other ``mitoscale`` command.
    """
    from mitoscale.config import apply_overrides, dump_config

    source = str(path) if path else "(defaults)"
    data = load_yaml(path) if path is not None else {}
    if base is None:
        base = Path(path).expanduser().absolute().parent if path is not None else Path.cwd()
    from_file = validate(data, PipelineConfig, source=source)
    _absolutise(from_file, Path(base))
    data = apply_overrides(dump_config(from_file), overrides)
    cfg = validate(data, PipelineConfig, source=source)
    _absolutise(cfg, Path.cwd())  # what the overrides added; absolute paths stay
    return cfg


def stage_config(model, path: str | None, overrides: dict[str, Any], extra: list[str] = ()):
    """Load a stage config (file + ``set`` overrides + forced ``extra``) with one-line errors."""
    return load_config(path, model, overrides=[*overrides_list(overrides), *extra])
