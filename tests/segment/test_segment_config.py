"""configs/segment.yaml states the defaults; bad keys are one-line config errors."""

from pathlib import Path

import pytest

from mitoscale.config import dump_config, load_config
from mitoscale.errors import ConfigError
from mitoscale.segment.config import SegmentConfig

YAML = Path(__file__).resolve().parents[2] / "configs" / "segment.yaml"


def test_yaml_equals_defaults():
    assert dump_config(load_config(YAML, SegmentConfig)) == dump_config(SegmentConfig())


def test_unknown_key_and_bad_value():
    with pytest.raises(ConfigError, match="unknown key 'decode.windw'"):
        load_config(None, SegmentConfig, ["decode.windw=8"])
    with pytest.raises(ConfigError, match="postprocess.max_overlap"):
        load_config(None, SegmentConfig, ["postprocess.max_overlap=2"])
