"""Training logs: CSV files (always) and TensorBoard events (optional).

``logs/train.csv`` gets one row per logged step, ``logs/val.csv`` one row per
validation.  On resume, rows after the resumed step (written by the
interrupted run after its last checkpoint) are dropped, so each step appears
once.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

__all__ = ["RunLogger"]


class RunLogger:
    """Append metrics to CSV and TensorBoard; a no-op on ranks other than 0.

    Parameters
    ----------
    out_dir : path
        The run directory (logs go to ``out_dir/logs``).
    enabled : bool
        False on non-zero ranks.
    tensorboard : bool
    resume_step : int, optional
        Drop CSV rows with a larger step (see module docstring).
    """

    def __init__(self, out_dir: str | Path, enabled: bool = True, tensorboard: bool = True,
                 resume_step: int | None = None):
        self.enabled = enabled
        self.dir = Path(out_dir) / "logs"
        self._tb = None
        if not enabled:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        for name in ("train", "val"):
            path = self.dir / f"{name}.csv"
            if path.exists():
                rows = list(csv.DictReader(path.open()))
                if resume_step is None:
                    rows = []
                else:
                    rows = [r for r in rows if int(r["step"]) <= resume_step]
                self._rewrite(path, rows)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(self.dir / "tensorboard"),
                                     purge_step=resume_step + 1 if resume_step is not None else None)

    @staticmethod
    def _rewrite(path: Path, rows: list[dict]) -> None:
        if not rows:
            path.unlink()
            return
        with path.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)

    def log(self, kind: str, step: int, values: dict[str, float]) -> None:
        """Record ``values`` at ``step`` under ``kind`` ("train" or "val")."""
        if not self.enabled:
            return
        row = {"step": step, **{k: float(v) for k, v in values.items()}}
        path = self.dir / f"{kind}.csv"
        new = not path.exists()
        with path.open("a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)
        if self._tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and math.isfinite(v):
                    self._tb.add_scalar(f"{kind}/{k}", v, step)
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
