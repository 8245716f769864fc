"""``mitoscale analyze``: instance tables + conditions -> Dataset, CSVs and figures.

Outputs in ``OUT``::

    morphology.nc            the xarray Dataset (netCDF4 via h5netcdf)
    per_image.csv            one row per (image, class)
    per_condition.csv        one row per (condition, class), means and CIs
    per_condition_shape.csv  one row per (condition, shape column): mean over images and CI
    fig_d_class_share_over_time.{png,pdf}, fig_e_event_rates.{png,pdf}   timelapses / tracks
    fig_a_counts.{png,pdf}, fig_b_count_fraction.{png,pdf}, fig_c_area_fraction.{png,pdf}
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from mitoscale.analyse.conditions import assign_conditions, read_conditions
from mitoscale.analyse.config import AnalyseConfig
from mitoscale.analyse.dataset import build_dataset, dataset_to_frames
from mitoscale.analyse.morphology import per_image_summary
from mitoscale.errors import InputError

__all__ = ["load_tables", "load_locations", "analyse_tables", "analyse_paths", "write_outputs"]

log = logging.getLogger(__name__)


def load_tables(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Read and concatenate instance tables (files or directories of parts), validated."""
    from mitoscale.io.tables import LOCATION_KEYS, read_table

    frames = [read_table(p) for p in paths]
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    dup = df.duplicated(subset=[*LOCATION_KEYS, "instance_id"])
    if dup.any():
        row = df[dup].iloc[0]
        raise InputError(f"image {row['image_id']!r} appears in more than one table (duplicate instance ids)")
    return df


def load_locations(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Every location the tables cover, those without instances included.

    See :func:`mitoscale.io.tables.read_locations`; tables written without
    location metadata contribute the locations of their rows.

    Returns
    -------
    pandas.DataFrame
        Columns ``LOCATION_KEYS``, one row per location.
    """
    from mitoscale.io.tables import LOCATION_KEYS, read_locations

    locs = pd.concat([read_locations(p) for p in paths], ignore_index=True)
    return locs.drop_duplicates(LOCATION_KEYS).reset_index(drop=True)


def analyse_tables(df: pd.DataFrame, conditions_csv: str | Path, cfg: AnalyseConfig | None = None,
                   *, attrs: dict | None = None, locations: pd.DataFrame | None = None,
                   tracks: Sequence[str | Path] | None = None):
    """Classify instances, map conditions and aggregate.

    Parameters
    ----------
    df : pandas.DataFrame
        Validated instance table(s).
    conditions_csv : path
        See :func:`mitoscale.analyse.conditions.read_conditions`.
    cfg : AnalyseConfig, optional
    attrs : dict, optional
        Extra attributes for the Dataset (method name, input paths).
    locations : pandas.DataFrame, optional
        Processed locations (:func:`load_locations`).  A location without
        rows is an image with zero dots and zero rods: it counts in
        ``n_images`` and the mean counts, while its fractions are NaN and
        left out of the mean fractions.  ``None``: the locations of the rows.
    tracks : list of path, optional
        ``mitoscale track`` outputs: adds event rates per condition
        (:mod:`mitoscale.analyse.timecourse`).

    Returns
    -------
    xarray.Dataset
    """
    cfg = cfg or AnalyseConfig()
    if len(df) == 0:
        raise InputError("the instance tables hold no instances")
    per_image = per_image_summary(df, cfg.dot_max_area_um2, cfg.min_area_um2, locations=locations,
                                  class_rule=cfg.class_rule,
                                  network_min_branch_points=cfg.network_min_branch_points)
    from mitoscale.analyse.shape_stats import image_shape_means

    return _analyse(per_image, image_shape_means(df, cfg), conditions_csv, cfg, attrs, tracks)


def analyse_paths(paths: Sequence[str | Path], conditions_csv: str | Path, cfg: AnalyseConfig | None = None,
                  *, attrs: dict | None = None, tracks: Sequence[str | Path] | None = None):
    """:func:`analyse_tables` out of core: streams the tables from disk (``mitoscale analyze``).

    Reads only the columns the analysis needs, never the masks (except for
    older tables without shape columns), with memory bounded by the number
    of images, not of instances (:func:`mitoscale.analyse.stream.scan_tables`).
    Every processed location counts, those without instances included.
    The same numbers as ``analyse_tables(load_tables(paths), ..., locations=load_locations(paths))``.
    """
    from mitoscale.analyse.stream import scan_tables

    cfg = cfg or AnalyseConfig()
    per_image, means, n = scan_tables(paths, cfg)
    return _analyse(per_image, means, conditions_csv, cfg, {"n_instances": int(n), **(attrs or {})}, tracks)


def _analyse(per_image: pd.DataFrame, shape_means: pd.DataFrame, conditions_csv, cfg: AnalyseConfig,
             attrs: dict | None, tracks):
    """Conditions, replicate units, bootstrap: everything after the per-image summary."""
    cond = read_conditions(conditions_csv)
    per_image["condition"] = assign_conditions(per_image, cond, source=str(conditions_csv)).to_numpy()
    missing = per_image["condition"].isna()
    if missing.any():
        log.warning("%d image(s) not listed in %s are left out, e.g. %s", int(missing.sum()),
                    conditions_csv, per_image.loc[missing, "image"].iloc[0])
        per_image = per_image[~missing].reset_index(drop=True)
    order = cfg.condition_order or list(dict.fromkeys(cond["condition"]))
    unknown = [c for c in order if c not in set(cond["condition"])]
    if unknown:
        raise InputError(f"condition_order names {unknown[0]!r}, which the conditions file does not use")
    order += [c for c in dict.fromkeys(cond["condition"]) if c not in order]
    from mitoscale.analyse.classes import classes_of_rule
    from mitoscale.analyse.shape_stats import add_shape_means

    ds = build_dataset(
        per_image, order, n_bootstrap=cfg.n_bootstrap, ci=cfg.ci, seed=cfg.seed, replicate=cfg.replicate,
        attrs=dict(dot_max_area_um2=cfg.dot_max_area_um2, min_area_um2=cfg.min_area_um2,
                   conditions_csv=str(conditions_csv), class_rule=cfg.class_rule, **(attrs or {})),
        classes=classes_of_rule(cfg.class_rule),
    )
    from mitoscale.analyse.timecourse import add_event_rates, add_time_course

    ds = add_time_course(add_shape_means(ds, None, per_image, cfg, means=shape_means), per_image, cfg)
    return add_event_rates(ds, list(tracks), conditions_csv, cfg) if tracks else ds


def write_outputs(ds, out_dir: str | Path, *, suptitle: str = "") -> dict[str, Path]:
    """Write netCDF, the two CSVs and the three figures; returns their paths by name."""
    import tempfile

    from mitoscale.analyse.plots import plot_all
    from mitoscale.io.atomic import atomic_write_bytes, atomic_write_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    nc = out_dir / "morphology.nc"
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".nc-") as tmp:
        tmp_nc = Path(tmp) / "m.nc"
        ds.to_netcdf(tmp_nc, engine="h5netcdf")
        atomic_write_bytes(nc, tmp_nc.read_bytes())
    per_image, per_condition = dataset_to_frames(ds)
    atomic_write_text(out_dir / "per_image.csv", per_image.to_csv(index=False))
    atomic_write_text(out_dir / "per_condition.csv", per_condition.to_csv(index=False))
    if "mean_shape" in ds:
        from mitoscale.analyse.shape_stats import shape_frame

        atomic_write_text(out_dir / "per_condition_shape.csv", shape_frame(ds).to_csv(index=False))
    figs = plot_all(ds, out_dir, suptitle=suptitle)
    from mitoscale.analyse.timecourse import plot_time_figures

    figs += plot_time_figures(ds, out_dir)
    return dict(netcdf=nc, per_image=out_dir / "per_image.csv",
                per_condition=out_dir / "per_condition.csv", **{p.name: p for p in figs})


def format_summary(ds) -> str:
    """Plain-text table of the per-condition means (printed by the CLI)."""
    from mitoscale.analyse.replicates import unit_word

    unit = unit_word(ds.attrs.get("replicate", "image"))
    lines = [f"dot: area <= {ds.attrs['dot_max_area_um2']:g} um^2; mean over replicates "
             f"(n = {unit}) [{ds.attrs['ci']:.0%} bootstrap CI]",
             f"{'condition':<16}{'n':>4}  {'dots/img':>9} {'rods/img':>9}  {'dot share (count)':>24}  "
             f"{'dot share (area)':>24}"]
    for cond in ds["condition"].to_numpy():
        s = ds.sel(condition=cond)

        def ci(v):
            m = float(s[f"mean_{v}"].sel({"class": "dot"}))
            lo, hi = (float(x) for x in s[f"ci_{v}"].sel({"class": "dot"}).to_numpy())
            return f"{m:.3f} [{lo:.3f}, {hi:.3f}]"

        lines.append(
            f"{str(cond):<16}{int(s['n_units']):>4}  {float(s['mean_count'].sel({'class': 'dot'})):>9.1f} "
            f"{float(s['mean_count'].sel({'class': 'rod'})):>9.1f}  {ci('count_fraction'):>24}  "
            f"{ci('area_fraction'):>24}")
    return "\n".join(lines)
