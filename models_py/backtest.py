"""The monthly walk-forward backtest: the service as it would have run.

For each calendar month of the test period, the recipe is refitted on every
row labelled before the month starts (label window ended: purged), then
scores that month's rows. This is what a service retrained monthly would have
served, so its AUC is the headline number.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from inference.scoring import binned_by_hour
from models_py.calibration import expected_calibration_error
from models_py.confidence import HeldOut, choose_cutpoints
from models_py.evaluate import metrics
from models_py.fits import matrix_name
from models_py.recipe import Recipe, fit_recipe

LOG = logging.getLogger(__name__)
# the headline notes a base rate that moved by more than this across test months
BASE_RATE_MOVE = 0.15

if TYPE_CHECKING:
    from models_py.data import TrainingData
    from models_py.fits import FitCache


@dataclass
class Backtest:
    months: list[dict]  # per month: month, train_end, rows, pools, roc_auc, brier, ece, log_loss
    total: dict  # the same, pooled over every scored row
    predictions: pd.DataFrame  # pool_id, snapshot_date, month, is_apy_kept, p_keep, model_month
    rows: np.ndarray  # positions into the training data of the predictions' rows, in order


def month_starts(dates: np.ndarray, start: np.datetime64) -> list[np.datetime64]:
    """First day of each calendar month holding a date >= start (start itself first)."""
    dates = np.asarray(dates).astype("datetime64[D]")
    months = np.unique(dates[dates >= start].astype("datetime64[M]"))
    return [max(np.datetime64(m, "D"), np.datetime64(start, "D")) for m in months]


def monthly_backtest(
    recipe: Recipe,
    data: TrainingData,
    start: np.datetime64,
    last: int | None = None,
    confidence: bool = False,
    cache: FitCache | None = None,
    held_out: HeldOut | None = None,
) -> Backtest:
    """Backtest `recipe` over the months from `start` (only the `last` ones if
    given). With `confidence`, each month's refit also chooses its confidence
    levels on its own held-out block (models_py/confidence.py: `held_out`,
    the walk-forward predictions made so far, gains each month's) and bins each
    day of the month by its own quantiles at them, as the Lambda bins an hour
    (columns binned_confidence, cutpoint_low, cutpoint_high). A FitCache shares the
    first month's fit with training's evaluated fit (the same rows)."""
    X, y = data.matrix(recipe.features), data.y
    dates, ends = data.dates, data.label_end_dates
    pools = data.frame["pool_id"].to_numpy()
    held_out = held_out or HeldOut(len(y))
    starts = month_starts(dates, start)
    if last is not None:
        starts = starts[-last:]
    months, frames, positions = [], [], []
    for first in starts:
        month_end = np.datetime64(first.astype("datetime64[M]") + np.timedelta64(1, "M"), "D")
        train = np.flatnonzero(ends < first)
        scored = np.flatnonzero((dates >= first) & (dates < month_end))
        if len(scored) == 0:
            continue
        if len(train) == 0 or len(np.unique(y[train])) < 2:
            LOG.info(f"  backtest {str(first)[:7]}: no two-class training rows before it; skipped")
            continue
        model = fit_recipe(recipe, X, y, dates, ends, train, cache, matrix_name(recipe.features))
        p = model.predict_proba(X[scored])[:, 1]
        row = {
            "month": str(first)[:7],
            "train_end": str(dates[train].max()),
            "train_rows": len(train),
            **_scores(y[scored], p, pools[scored]),
        }
        extra = {}
        if confidence:
            cut = choose_cutpoints(*held_out.block(recipe, X, y, dates, ends, train))
            row["levels"] = cut["levels"]
            row["words"] = len(cut["words"])
            row["held_out_scored_by"] = held_out.source
            bins, low, high = binned_by_hour(p, dates[scored], cut["levels"], cut["cutpoints"])
            extra = {"binned_confidence": bins, "cutpoint_low": low, "cutpoint_high": high}
        held_out.add(scored, p)
        months.append(row)
        positions.append(scored)
        frames.append(
            pd.DataFrame(
                {
                    "pool_id": pools[scored],
                    "snapshot_date": dates[scored],
                    "month": row["month"],
                    "is_apy_kept": y[scored],
                    "p_keep": p,
                    "model_trained_to": row["train_end"],
                    **extra,
                }
            )
        )
        LOG.info(
            f"  backtest {row['month']}: trained on {len(train)} rows to {row['train_end']}, "
            f"AUC {row['roc_auc']:.4f}, ECE {row['ece']:.4f} on {row['rows']} rows"
        )
    predictions = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    total = (
        _scores(
            predictions["is_apy_kept"].to_numpy(),
            predictions["p_keep"].to_numpy(),
            predictions["pool_id"].to_numpy(),
        )
        if len(predictions)
        else {}
    )
    rows = np.concatenate(positions) if positions else np.array([], dtype=np.intp)
    if total:
        total.update(month_level(months))
    return Backtest(months, total, predictions, rows)


def month_level(months: list[dict]) -> dict:
    """The month-level truth the pooled figures hide: the mean of the monthly
    AUCs, the row-weighted mean of the monthly ECEs, and how far the base rate
    (share kept) moved across the months."""
    aucs = [m["roc_auc"] for m in months if np.isfinite(m["roc_auc"])]
    rows = np.array([m["rows"] for m in months], dtype=float)
    eces = np.array([m["ece"] for m in months], dtype=float)
    kept = [1.0 - m["down_rate"] for m in months]
    moved = float(max(kept) - min(kept)) if kept else 0.0
    return {
        "mean_month_auc": float(np.mean(aucs)) if aucs else float("nan"),
        "month_ece_row_weighted": float(np.sum(rows * eces) / rows.sum()) if len(rows) else 0.0,
        "base_rate_min": float(min(kept)) if kept else float("nan"),
        "base_rate_max": float(max(kept)) if kept else float("nan"),
        "base_rate_moved": moved > BASE_RATE_MOVE,
    }


def _scores(y: np.ndarray, p: np.ndarray, pools: np.ndarray) -> dict:
    m = metrics(y, p)
    return {
        "rows": len(y),
        "pools": len(np.unique(pools)),
        "down_rate": m["down_rate"],
        "roc_auc": m["roc_auc"],
        "brier": m["brier"],
        "log_loss": m["log_loss"],
        "ece": expected_calibration_error(y, p),
    }
