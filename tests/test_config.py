import pytest
from pydantic import Field

from mitoscale.config import StrictModel, config_hash, load_config
from mitoscale.errors import ConfigError


class Inner(StrictModel):
    width: float = Field(1.0, gt=0)


class Cfg(StrictModel):
    inner: Inner = Inner()
    n: int = 3


def test_overrides_and_hash(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("n: 5\ninner:\n  width: 2\n")
    cfg = load_config(p, Cfg, overrides=["inner.width=3.5"])
    assert cfg.n == 5 and cfg.inner.width == 3.5
    assert config_hash(cfg) != config_hash(Cfg())


@pytest.mark.parametrize("text,match", [
    ("bogus: 1\n", "unknown key 'bogus'"),
    ("inner:\n  width: -1\n", "inner.width"),
    ("[1, 2\n", "not valid YAML"),
])
def test_bad_config(tmp_path, text, match):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(p, Cfg)
