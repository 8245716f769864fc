"""Validated YAML configuration.

Every stage declares its configuration as a pydantic model deriving from
:class:`StrictModel` (unknown keys are errors).  :func:`load_config` reads a
YAML file, applies ``key.sub=value`` overrides from the command line and
validates; any problem becomes a one-line :class:`~mitoscale.errors.ConfigError`.

Examples
--------
>>> class Cfg(StrictModel):
...     width: float = 1.0
>>> load_config(None, Cfg, overrides=["width=2.5"]).width
2.5
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from mitoscale.errors import ConfigError

__all__ = [
    "StrictModel",
    "load_config",
    "load_yaml",
    "apply_overrides",
    "config_hash",
    "dump_config",
]

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base model: unknown keys are rejected, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, raising :class:`ConfigError` on any problem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__}: {exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def add_override_args(parser, example: str = "section.key=value") -> None:
    """Add the shared repeatable ``--set KEY=VALUE`` option (``args.overrides``) to ``parser``."""
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help=f"override a config value (repeatable), e.g. --set {example}")


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides; values are parsed as YAML scalars/lists."""
    data = json.loads(json.dumps(data))  # deep copy of plain data
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.subkey=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = value
    return data


def _format_validation_error(exc: ValidationError, source: str) -> str:
    msgs = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        if err["type"] == "extra_forbidden":
            msgs.append(f"unknown key '{loc}'")
        else:
            msgs.append(f"'{loc}': {err['msg']}")
    return f"invalid config {source}: " + "; ".join(msgs)


def validate(data: dict[str, Any], model: type[M], source: str = "") -> M:
    """Validate a plain mapping against ``model`` with a one-line error."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, source)) from None


def load_config(
    path: str | Path | None,
    model: type[M],
    overrides: list[str] | None = None,
    section: str | None = None,
) -> M:
    """Load and validate a YAML config.

    Parameters
    ----------
    path : str or Path or None
        YAML file; ``None`` uses the model's defaults.
    model : type
        A :class:`StrictModel` subclass.
    overrides : list of str, optional
        ``key.sub=value`` strings applied after reading the file.
    section : str, optional
        Read only this top-level section of the file (used by pipeline configs).

    Returns
    -------
    model instance

    Raises
    ------
    ConfigError
        For a missing file, bad YAML, unknown keys or invalid values.
    """
    data: dict[str, Any] = load_yaml(path) if path is not None else {}
    if section is not None:
        data = data.get(section, {}) or {}
    data = apply_overrides(data, overrides)
    return validate(data, model, source=str(path) if path else "(defaults)")


def dump_config(cfg: BaseModel) -> dict[str, Any]:
    """JSON-compatible dict of a config (for store attributes and manifests)."""
    return json.loads(cfg.model_dump_json())


def config_hash(cfg: BaseModel | dict[str, Any]) -> str:
    """Stable SHA-256 (hex, 16 chars) of a config's canonical JSON."""
    data = dump_config(cfg) if isinstance(cfg, BaseModel) else cfg
    blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
