"""mitoscale: find every mitochondrion in fluorescence images, at scale.

Stages live in one subpackage each (``simulate``, ``train``, ``segment``,
``evaluate``, ``analyse``); shared pieces are ``config``, ``cluster``,
``io`` and ``model``.
"""

__version__ = "0.1.0"

TRAINING_PIXEL_SIZE_UM = 0.08
"""Pixel size (µm) of the synthetic corpus and of every model's input."""
