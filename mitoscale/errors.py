"""User-facing errors.

Anything a user can fix (bad config, bad input, unwritable path, ...) is raised
as a :class:`MitoscaleError` subclass.  The command-line layer prints its
message on one line and exits non-zero; no traceback is shown.
"""


class MitoscaleError(Exception):
    """Base class of errors caused by user input or environment."""

    exit_code = 2


class ConfigError(MitoscaleError):
    """A configuration file or override is invalid."""


class InputError(MitoscaleError):
    """An input image, table or store is invalid (axes, pixel size, content)."""


class OutputError(MitoscaleError):
    """An output location cannot be used (unwritable, inside input, conflicting)."""


class ModelError(MitoscaleError):
    """A checkpoint is missing, corrupt or does not match the configuration."""


class ClusterError(MitoscaleError):
    """A cluster profile is invalid or a cluster cannot be started."""
