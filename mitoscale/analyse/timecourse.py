"""Timelapses in the analysis: class shares over time and track-level event rates.

Class share over time: every timelapse (image_id, well, field, z: the
experimental unit) gives, per frame ``t``, the fraction of its instances in
each class; per condition and ``t`` the mean over its timelapses with a
percentile bootstrap CI over timelapses::

    mean_count_fraction_t  (condition, t, class)
    ci_count_fraction_t    (condition, t, class, bound)
    n_timelapses_t         (condition, t)

Event rates, from ``mitoscale track`` outputs: per timelapse, fission and
fusion events per track per minute (events / summed track lifetimes in
minutes) and the mean track lifetime (s); per condition the mean over
timelapses with a bootstrap CI over timelapses::

    timelapse_rate  (timelapse, rate)     rate = fission_per_track_min, fusion_per_track_min,
                                                 mean_lifetime_s
    mean_rate       (condition, rate)
    ci_rate         (condition, rate, bound)
    n_timelapses    (condition)

Figures: ``fig_d_class_share_over_time`` and ``fig_e_event_rates`` (PNG, PDF).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["RATES", "add_time_course", "add_event_rates", "plot_time_figures"]

UNIT_KEYS = ["image_id", "well", "field", "z"]
RATES = ("fission_per_track_min", "fusion_per_track_min", "mean_lifetime_s")


def _boot(vals: np.ndarray, cfg, rng) -> tuple[float, np.ndarray]:
    from mitoscale.analyse.dataset import bootstrap_mean_ci

    vals = vals[np.isfinite(vals)]
    if not len(vals):
        return np.nan, np.full(2, np.nan)
    return float(vals.mean()), bootstrap_mean_ci(vals[:, None], cfg.n_bootstrap, cfg.ci, rng)[0]


def add_time_course(ds: xr.Dataset, per_image: pd.DataFrame, cfg) -> xr.Dataset:
    """``ds`` plus the class-share-over-time variables, when some timelapse has several frames."""
    classes = [str(c) for c in ds["class"].to_numpy()]
    frames = per_image.groupby(UNIT_KEYS)["t"].nunique()
    if not (frames > 1).any():
        return ds
    series = per_image[per_image.set_index(UNIT_KEYS).index.isin(frames[frames > 1].index)]
    counts = series[[f"count_{c}" for c in classes]].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = counts / counts.sum(axis=1, keepdims=True)
    ts = np.sort(series["t"].unique())
    conds = [str(c) for c in ds["condition"].to_numpy()]
    mean = np.full((len(conds), len(ts), len(classes)), np.nan)
    ci = np.full((len(conds), len(ts), len(classes), 2), np.nan)
    n = np.zeros((len(conds), len(ts)), dtype=np.int64)
    rng = np.random.default_rng(cfg.seed + 2)
    cond, t_of = series["condition"].astype(str).to_numpy(), series["t"].to_numpy()
    for i, c in enumerate(conds):
        for k, t in enumerate(ts):
            sel = (cond == c) & (t_of == t)
            n[i, k] = sel.sum()
            for j in range(len(classes)):
                mean[i, k, j], ci[i, k, j] = _boot(frac[sel, j], cfg, rng)
    return ds.assign(
        mean_count_fraction_t=(("condition", "t", "class"), mean),
        ci_count_fraction_t=(("condition", "t", "class", "bound"), ci),
        n_timelapses_t=(("condition", "t"), n),
    ).assign_coords(t=ts)


def add_event_rates(ds: xr.Dataset, tracks_dirs: list[str | Path], conditions_csv: str | Path, cfg) -> xr.Dataset:
    """``ds`` plus the event-rate variables from ``mitoscale track`` output folders."""
    from mitoscale.analyse.conditions import assign_conditions, read_conditions
    from mitoscale.errors import InputError
    from mitoscale.track.outputs import read_parquet_dir

    tracks = pd.concat([read_parquet_dir(Path(d) / "tracks") for d in tracks_dirs], ignore_index=True)
    events = pd.concat([read_parquet_dir(Path(d) / "events") for d in tracks_dirs], ignore_index=True)
    if tracks.empty:
        raise InputError(f"no track tables in {', '.join(map(str, tracks_dirs))} (run mitoscale track)")
    rows = []
    for key, g in tracks.groupby(UNIT_KEYS, sort=True):
        ev = events[(events[UNIT_KEYS] == pd.Series(key, index=UNIT_KEYS)).all(axis=1)] if len(events) else events
        minutes = g["lifetime_s"].sum() / 60.0
        rows.append([*key, (ev["event"] == "fission").sum() / minutes if len(ev) else 0.0,
                     (ev["event"] == "fusion").sum() / minutes if len(ev) else 0.0, g["lifetime_s"].mean()])
    units = pd.DataFrame(rows, columns=[*UNIT_KEYS, *RATES])
    units["condition"] = assign_conditions(units, read_conditions(conditions_csv), source=str(conditions_csv))
    units = units.dropna(subset=["condition"]).reset_index(drop=True)
    conds = [str(c) for c in ds["condition"].to_numpy()]
    mean = np.full((len(conds), len(RATES)), np.nan)
    ci = np.full((len(conds), len(RATES), 2), np.nan)
    n = np.zeros(len(conds), dtype=np.int64)
    rng = np.random.default_rng(cfg.seed + 3)
    for i, c in enumerate(conds):
        sel = units["condition"] == c
        n[i] = sel.sum()
        for j, r in enumerate(RATES):
            mean[i, j], ci[i, j] = _boot(units.loc[sel, r].to_numpy(float), cfg, rng)
    names = ["/".join(str(v) for v in row if str(v) != "") for row in units[UNIT_KEYS].itertuples(index=False)]
    return ds.assign(
        timelapse_rate=(("timelapse", "rate"), units[list(RATES)].to_numpy(float)),
        timelapse_condition=("timelapse", units["condition"].astype(str).to_numpy()),
        mean_rate=(("condition", "rate"), mean), ci_rate=(("condition", "rate", "bound"), ci),
        n_timelapses=("condition", n),
    ).assign_coords(timelapse=names, rate=list(RATES))


def plot_time_figures(ds: xr.Dataset, out_dir: str | Path, *, suptitle: str = "") -> list[Path]:
    """Class share over time (one panel per class) and event rates per condition, PNG and PDF."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir, paths = Path(out_dir), []
    conds = [str(c) for c in ds["condition"].to_numpy()]
    if "mean_count_fraction_t" in ds:
        classes = [str(c) for c in ds["class"].to_numpy()]
        fig, axes = plt.subplots(1, len(classes), figsize=(4 * len(classes), 3.4), squeeze=False)
        t = ds["t"].to_numpy()
        for ax, cls in zip(axes[0], classes):
            for i, c in enumerate(conds):
                m = ds["mean_count_fraction_t"].sel(condition=c, **{"class": cls}).to_numpy()
                lo, hi = ds["ci_count_fraction_t"].sel(condition=c, **{"class": cls}).to_numpy().T
                ax.plot(t, m, color=f"C{i}", marker="o", ms=3, label=c)
                ax.fill_between(t, lo, hi, color=f"C{i}", alpha=0.2, linewidth=0)
            ax.set_title(f"{cls} share")
            ax.set_xlabel("frame t")
            ax.set_ylim(0, 1)
            ax.spines[["top", "right"]].set_visible(False)
        axes[0][0].set_ylabel("fraction of instances")
        axes[0][0].legend(frameon=False)
        paths += _save(fig, out_dir / "fig_d_class_share_over_time", suptitle or "(d) Class share over time")
    if "mean_rate" in ds:
        labels = {"fission_per_track_min": "fission / track / min", "fusion_per_track_min": "fusion / track / min",
                  "mean_lifetime_s": "mean track lifetime (s)"}
        fig, axes = plt.subplots(1, len(RATES), figsize=(4 * len(RATES), 3.4))
        x = np.arange(len(conds))
        for ax, r in zip(axes, RATES):
            m = ds["mean_rate"].sel(rate=r).to_numpy()
            lo, hi = ds["ci_rate"].sel(rate=r).to_numpy().T
            ax.bar(x, m, 0.6, color=[f"C{i}" for i in x], alpha=0.6)
            ax.errorbar(x, m, yerr=np.abs(np.stack([m - lo, hi - m])), fmt="none", ecolor="black", capsize=3)
            vals = ds["timelapse_rate"].sel(rate=r).to_numpy()
            for i, c in enumerate(conds):
                v = vals[ds["timelapse_condition"].to_numpy() == c]
                ax.scatter(np.full(v.size, i), v, s=14, color="black", zorder=3)
            ax.set_xticks(x)
            ax.set_xticklabels([f"{c}\n(n={k})" for c, k in zip(conds, ds["n_timelapses"].to_numpy())])
            ax.set_title(labels[r])
            ax.spines[["top", "right"]].set_visible(False)
        paths += _save(fig, out_dir / "fig_e_event_rates", suptitle or "(e) Event rates per condition")
    return paths


def _save(fig, stem: Path, title: str) -> list[Path]:
    import matplotlib.pyplot as plt

    fig.suptitle(title)
    fig.tight_layout()
    out = []
    for ext in ("png", "pdf"):
        p = stem.with_suffix(f".{ext}")
        fig.savefig(p, dpi=150)
        out.append(p)
    plt.close(fig)
    return out
