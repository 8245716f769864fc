"""Morphology classes of instances: the paper's dot/rod rule, or dot/rod/network.

- ``"dot_rod"`` (default, the paper's rule): dot if ``area_um2 <= dot_max_area_um2``, else rod
  (:func:`mitoscale.analyse.morphology.classify`).
- ``"dot_rod_network"``: network if the skeleton has at least ``network_min_branch_points``
  branch points (the ``n_branch_points`` shape column; ``>= 1`` = branched), otherwise dot/rod
  by area as above.  Tables without the shape columns get them from their masks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mitoscale.analyse.morphology import classify

__all__ = ["RULES", "classes_of_rule", "classify_instances"]

RULES = {"dot_rod": ("dot", "rod"), "dot_rod_network": ("dot", "rod", "network")}


def classes_of_rule(rule: str) -> tuple[str, ...]:
    """The class names a rule produces, in display order."""
    return RULES[rule]


def classify_instances(df: pd.DataFrame, dot_max_area_um2: float, rule: str = "dot_rod",
                       network_min_branch_points: int = 1) -> np.ndarray:
    """Class name of every row of an instance table (see the module doc)."""
    if rule not in RULES:
        raise ValueError(f"unknown class rule {rule!r}; choose one of {', '.join(RULES)}")
    labels = classify(df["area_um2"].to_numpy(), dot_max_area_um2).astype(object)
    if rule == "dot_rod_network" and len(df):
        if "n_branch_points" not in df or df["n_branch_points"].isna().any():  # older rows: from masks
            from mitoscale.io.tables import with_shape_columns

            df = with_shape_columns(df)
        branched = df["n_branch_points"].to_numpy() >= network_min_branch_points
        labels[branched] = "network"
    return labels.astype(str)
