"""Per-epoch training metrics: the divergence guard, the CSV log and the PNG of the curves."""

from __future__ import annotations

import io
import logging
import math
from typing import Any

import pandas as pd

from mirage.featstore.errors import TrainingDivergedError

log = logging.getLogger(__name__)

CSV_NAME = "history.csv"
PNG_NAME = "history.png"


def check_losses(stage: str, epoch: int, step: int, losses: dict[str, float], max_loss: float) -> None:
    """Raise TrainingDivergedError when a loss is NaN/inf or above ``max_loss``."""
    for name, value in losses.items():
        if not math.isfinite(value):
            raise TrainingDivergedError(
                f"{stage}: loss {name} became {value} at epoch {epoch + 1}, step {step + 1}; expected finite losses — "
                "no checkpoint was written; lower the learning rate (--lr-g/--lr-d/--lr-align) or check the store with `featstore verify`")
        if abs(value) > max_loss:
            raise TrainingDivergedError(
                f"{stage}: loss {name} exploded to {value:.3g} at epoch {epoch + 1}, step {step + 1} (limit {max_loss:g}); "
                "no checkpoint was written; lower the learning rate (--lr-g/--lr-d/--lr-align)")


class History:
    """Rows of ``{stage, epoch, metric...}``; columns a stage lacks stay empty in the CSV."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, stage: str, epoch: int, **metrics: float) -> None:
        self.rows.append({"stage": stage, "epoch": epoch + 1, **{k: float(v) for k, v in metrics.items()}})

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def last(self, stage: str) -> dict[str, Any]:
        for row in reversed(self.rows):
            if row["stage"] == stage:
                return row
        return {}

    def csv_bytes(self) -> bytes:
        # Fixed float format: the file is part of the (deterministic) model dir.
        return self.frame().to_csv(index=False, float_format="%.6g").encode()

    def png_bytes(self) -> bytes:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        df = self.frame()
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
        _panel(axes[0], df[df.stage == "align"], ["loss", "loss_ce", "loss_cl", "loss_qt"], "stage 1: alignment loss")
        _panel(axes[1], df[df.stage == "gan"], ["loss_d", "loss_g_adv", "loss_g_mi_y", "loss_g_mi_t", "loss_moment"],
               "stage 2: GAN losses")
        _panel(axes[2], df[df.stage == "gan"], ["mi_y_nats", "mi_t_nats", "batch_mi_y_nats", "batch_mi_t_nats",
                                                 "mi_y_ceiling_nats", "mi_t_ceiling_nats"],
               "stage 2: MI lower bounds of G's samples (nats)", dashed=("ceiling",))
        fig.tight_layout()
        buf = io.BytesIO()
        # No timestamp in the PNG metadata so reruns give the same bytes.
        fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
        plt.close(fig)
        return buf.getvalue()


def _panel(ax, df: pd.DataFrame, columns: list[str], title: str, dashed: tuple[str, ...] = ()) -> None:
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("epoch")
    drawn = False
    for col in columns:
        if col in df.columns and df[col].notna().any():
            style = "--" if any(d in col for d in dashed) else "-"
            part = df[["epoch", col]].dropna()  # eval-set columns are filled on a schedule only
            ax.plot(part["epoch"], part[col], style, label=col, marker="." if len(part) < 60 else None)
            drawn = True
    if drawn:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "not trained", ha="center", va="center", transform=ax.transAxes)
