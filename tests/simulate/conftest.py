"""Fixtures of the simulator tests: small configs that keep the suite fast."""

import pytest

from mitoscale.simulate import SimulateConfig


@pytest.fixture(scope="session")
def cfg():
    """The default configuration (512 x 512 images, 4 x 4 crops)."""
    return SimulateConfig()


@pytest.fixture(scope="session")
def small_cfg():
    """Default physics on 256 x 256 images (2 x 2 crops) for corpus-level tests."""
    return SimulateConfig.model_validate({"corpus": {"crops_per_side": 2}})
