"""Fixtures of the tracking tests: small synthetic movies with known tracks."""

from __future__ import annotations

import pandas as pd
import pytest

from mitoscale.io.tables import write_table
from mitoscale.track.config import MovieConfig
from mitoscale.track.synthetic import simulate_movie


@pytest.fixture(scope="session")
def movie():
    """20 frames, ~40 objects: motion, drift, appear/disappear, misses, fission, fusion, bleaching."""
    return simulate_movie(MovieConfig(frames=20, objects=40, image_px=256, seed=0))


@pytest.fixture(scope="session")
def movie_truth(movie) -> pd.DataFrame:
    return pd.concat(movie.tables, ignore_index=True)


def write_untracked(movie, root, image_id="movie", well="", field=0):
    """Write the movie's masks as a segmentation-like folder of per-frame parts (no track columns)."""
    for t, tab in enumerate(movie.tables):
        tab = tab.drop(columns=["track_id", "parent_track_ids"]).assign(image_id=image_id, well=well,
                                                                         field=field)
        loc = {"image_id": image_id, "well": well, "field": field, "t": t, "z": 0}
        write_table(tab, root / "instances" / f"{image_id}{well.replace('/', '')}-{field}-t{t}.parquet",
                    locations=[loc])
    return root
