"""The three morphology figures (the paper's Figure 5): bars of the per-condition
mean with bootstrap CIs, and every replicate unit (well, series or image) as a point over its bar."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from mitoscale.analyse.replicates import unit_word

__all__ = ["FIGURES", "plot_metric", "plot_all"]

#: file stem -> (per-image variable, y label, title)
FIGURES = {
    "fig_a_counts": ("count", "instances per image", "(a) Count of each class"),
    "fig_b_count_fraction": ("count_fraction", "fraction of instances", "(b) Proportion of counts"),
    "fig_c_area_fraction": ("area_fraction", "fraction of mitochondrial area", "(c) Proportion of area"),
}
_COLORS = {"dot": "#d95f02", "rod": "#1b9e77"}


def plot_metric(ds: xr.Dataset, var: str, ax, *, ylabel: str = "", title: str = "", seed: int = 0) -> None:
    """Grouped bars (condition x class) of ``mean_<var>`` with CI error bars and image points."""
    rng = np.random.default_rng(seed)
    conditions = [str(c) for c in ds["condition"].to_numpy()]
    classes = [str(c) for c in ds["class"].to_numpy()]
    width = 0.8 / len(classes)
    unit_var = f"unit_{var}" if f"unit_{var}" in ds else var  # points: the replicate units
    img_cond = ds["unit_condition" if unit_var != var else "image_condition"].to_numpy()
    for j, cls in enumerate(classes):
        x = np.arange(len(conditions)) + (j - (len(classes) - 1) / 2) * width
        mean = ds[f"mean_{var}"].sel({"class": cls}).to_numpy()
        ci = ds[f"ci_{var}"].sel({"class": cls}).to_numpy()
        yerr = np.abs(np.stack([mean - ci[:, 0], ci[:, 1] - mean]))
        color = _COLORS.get(cls, f"C{j}")
        ax.bar(x, mean, width * 0.9, color=color, alpha=0.55, label=cls, edgecolor=color)
        ax.errorbar(x, mean, yerr=yerr, fmt="none", ecolor="black", elinewidth=1, capsize=3)
        values = ds[unit_var].sel({"class": cls}).to_numpy()
        for i, cond in enumerate(conditions):
            v = values[img_cond == cond]
            v = v[np.isfinite(v)]
            jitter = rng.uniform(-0.25, 0.25, size=v.size) * width
            ax.scatter(x[i] + jitter, v, s=14, color=color, edgecolor="black", linewidth=0.5, zorder=3)
    ax.set_xticks(np.arange(len(conditions)))
    n = ds["n_units" if "n_units" in ds else "n_images"].to_numpy()
    unit = ds.attrs.get("replicate", "image")
    ax.set_xticklabels([f"{c}\n(n={k} {unit_word(unit, k)})" for c, k in zip(conditions, n)])
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if var.endswith("fraction"):
        ax.set_ylim(0, 1)
    ax.legend(frameon=False)
    ax.spines[["top", "right"]].set_visible(False)


def plot_all(ds: xr.Dataset, out_dir: str | Path, *, suptitle: str = "") -> list[Path]:
    """Write the three figures as PNG and PDF into ``out_dir``; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mitoscale.io.atomic import atomic_write_bytes

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    thr = ds.attrs.get("dot_max_area_um2")
    note = f"dot: area <= {thr:g} µm²; bars: mean of {unit_word(ds.attrs.get('replicate', 'image'))}, whiskers: {ds.attrs.get('ci', 0.95):.0%} bootstrap CI" \
        if thr is not None else ""
    for stem, (var, ylabel, title) in FIGURES.items():
        fig, ax = plt.subplots(figsize=(1.8 + 1.6 * ds.sizes["condition"], 4.2), constrained_layout=True)
        plot_metric(ds, var, ax, ylabel=ylabel, title=title)
        if suptitle or note:
            fig.suptitle("\n".join(s for s in (suptitle, note) if s), fontsize=8)
        for ext in ("png", "pdf"):
            import io

            buf = io.BytesIO()
            fig.savefig(buf, format=ext, dpi=150)
            path = out_dir / f"{stem}.{ext}"
            atomic_write_bytes(path, buf.getvalue())
            paths.append(path)
        plt.close(fig)
    return paths
