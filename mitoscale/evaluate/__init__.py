"""mitoscale.evaluate: the matching protocol, baselines and method comparison.

:mod:`~mitoscale.evaluate.metrics` holds the pure-NumPy protocol
(:func:`evaluate_image`, :func:`summarize`, :func:`evaluate_tables`).
"""

from mitoscale.evaluate.metrics import (
    ImageScore,
    SparseMasks,
    evaluate_image,
    evaluate_tables,
    summarize,
)

__all__ = ["ImageScore", "SparseMasks", "evaluate_image", "evaluate_tables", "summarize"]
