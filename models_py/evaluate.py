"""Metrics on predicted probabilities (p_keep = P(is_apy_kept = 1)).

Pure functions over arrays. The headline is ROC AUC on the test period; the
walk-forward fold AUCs are what settings are chosen on.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.base import clone
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from inference import contracts

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from numpy.typing import ArrayLike
    from sklearn.pipeline import Pipeline

    from models_py.fits import FitCache
    from models_py.splits import Fold


def safe_auc(y: ArrayLike, p: ArrayLike) -> float:
    y = np.asarray(y)
    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")


def metrics(y: ArrayLike, p_keep: ArrayLike) -> dict:
    y, p = np.asarray(y, dtype=int), np.clip(np.asarray(p_keep, dtype=float), 1e-6, 1 - 1e-6)
    return {
        "roc_auc": safe_auc(y, p),
        # PR AUC of the "Down" class (the warning users need), and its base rate
        "pr_auc_down": float(average_precision_score(1 - y, 1 - p)) if 0 in y else float("nan"),
        "down_rate": float(1 - y.mean()),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "rows": len(y),
    }


def cross_validate(
    pipeline: Pipeline,
    X: np.ndarray,
    y: np.ndarray,
    folds: Iterable[Fold],
    cache: FitCache | None = None,
    matrix: str = "",
    base: np.ndarray | None = None,
) -> dict:
    """Fit a clone per walk-forward fold; fold AUCs and out-of-fold predictions.
    With a FitCache, each fold's fit is shared (keyed by `matrix` and the
    rows' positions `base[train]` in it; X holds the rows `base`)."""
    aucs, briers, predictions, seconds = [], [], [], []
    for train, validation in folds:
        started = time.perf_counter()
        if cache is None:
            model = clone(pipeline).fit(X[train], y[train])
        else:
            model = cache.fit(matrix, pipeline, train if base is None else base[train], X, y, train)
        seconds.append(time.perf_counter() - started)
        p = model.predict_proba(X[validation])[:, 1]
        aucs.append(safe_auc(y[validation], p))
        briers.append(float(brier_score_loss(y[validation], p)))
        predictions.append((validation, p))
    return {
        "fold_auc": aucs,
        "cv_auc_mean": float(np.nanmean(aucs)),
        "cv_auc_std": float(np.nanstd(aucs)),
        "fold_brier": briers,
        "fit_seconds_mean": float(np.mean(seconds)),
        "predictions": predictions,
        "last_model": model,
    }


def rank_auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic (ties count one half): the same
    number as roc_auc_score, exact at perfect separation (1.0, not 1 - 1e-16)."""
    y = np.asarray(y)
    n_keep = int(y.sum())
    n_down = len(y) - n_keep
    if n_keep == 0 or n_down == 0:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[y == 1].sum() - n_keep * (n_keep + 1) / 2) / (n_keep * n_down))


def bootstrap_auc_by_pool(
    y: ArrayLike,
    p: ArrayLike,
    pools: ArrayLike,
    samples: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """Percentile CI of the AUC resampling whole pools (rows of a pool are correlated)."""
    y, p, pools = np.asarray(y), np.asarray(p), np.asarray(pools)
    codes, uniques = pd.factorize(pools)
    if len(uniques) < 2:
        return {
            "low": float("nan"),
            "high": float("nan"),
            "samples": 0,
            "level": level,
            "note": "a single pool: no by-pool interval",
        }
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, len(uniques), len(uniques)) for _ in range(samples)]
    values = [auc for auc in _resampled_aucs(y, p, codes, len(uniques), draws) if np.isfinite(auc)]
    if not values:
        return {"low": float("nan"), "high": float("nan"), "samples": 0}
    alpha = (1 - level) / 2
    return {
        "low": float(np.quantile(values, alpha)),
        "high": float(np.quantile(values, 1 - alpha)),
        "samples": len(values),
        "level": level,
    }


def _resampled_aucs(
    y: np.ndarray, p: np.ndarray, codes: np.ndarray, n_pools: int, draws: list[np.ndarray]
) -> list[float]:
    """rank_auc of each resample (the rows of every drawn pool, as often as it
    is drawn), computed with each row weighted by its pool's draw count: one
    sort of p for all resamples. Every sum is of whole and half counts, so
    each AUC equals rank_auc's of the concatenated rows to the last bit."""
    order = np.argsort(p, kind="stable")
    sorted_p, keep = p[order], np.asarray(y)[order] == 1
    starts = np.flatnonzero(np.r_[True, sorted_p[1:] != sorted_p[:-1]])  # runs of tied p
    aucs: list[float] = []
    for chunk in range(0, len(draws), 25):  # bounded memory: 25 resamples x rows at a time
        counts = np.stack([np.bincount(d, minlength=n_pools) for d in draws[chunk : chunk + 25]])
        weight = counts[:, codes[order]].astype(float)
        w_keep = np.add.reduceat(np.where(keep, weight, 0.0), starts, axis=1)
        w_down = np.add.reduceat(np.where(keep, 0.0, weight), starts, axis=1)
        below = np.cumsum(w_down, axis=1) - w_down  # down weight strictly below each tie run
        numerator = (w_keep * (below + 0.5 * w_down)).sum(axis=1)
        n_keep, n_down = w_keep.sum(axis=1), w_down.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            auc = np.where((n_keep > 0) & (n_down > 0), numerator / (n_keep * n_down), np.nan)
        aucs.extend(float(a) for a in auc)
    return aucs


def auc_by_group(
    y: ArrayLike, p: ArrayLike, groups: ArrayLike, top: int | None = None
) -> pd.DataFrame:
    """AUC per group (month or project), with row count and down rate."""
    frame = pd.DataFrame({"y": np.asarray(y), "p": np.asarray(p), "group": np.asarray(groups)})
    rows = []
    for group, part in frame.groupby("group", sort=True):
        rows.append(
            {
                "group": group,
                "rows": len(part),
                "down_rate": 1 - part["y"].mean(),
                "roc_auc": safe_auc(part["y"], part["p"]),
            }
        )
    table = pd.DataFrame(rows, columns=["group", "rows", "down_rate", "roc_auc"])
    if top is not None:
        table = table.sort_values("rows", ascending=False).head(top)
    return table.reset_index(drop=True)


def confidence_cutpoints(p_keep: ArrayLike) -> list[float]:
    """Tercile cut-points [q1, q2] of the shown probability (stored, not recomputed)."""
    shown = contracts.predicted_probability(np.asarray(p_keep, dtype=float))
    q1, q2 = np.quantile(shown, [1 / 3, 2 / 3])
    return [float(q1), float(q2)]


def hit_rate_by_confidence(
    y: ArrayLike, p_keep: ArrayLike, cutpoints: Sequence[float]
) -> pd.DataFrame:
    """Share of correct class calls ('Down' when p_down >= p_keep) per confidence
    bin, binned by the one shared bin function."""
    y, p_keep = np.asarray(y), np.asarray(p_keep, dtype=float)
    predicted_keep = (~contracts.predicted_class_is_down(p_keep)).astype(int)
    bins = contracts.confidence_bin(contracts.predicted_probability(p_keep), cutpoints)
    rows = []
    for b in (1, 2, 3):
        mask = bins == b
        rows.append(
            {
                "confidence": b,
                "rows": int(mask.sum()),
                "hit_rate": float((predicted_keep[mask] == y[mask]).mean())
                if mask.any()
                else float("nan"),
                "predicted_down_share": float((predicted_keep[mask] == 0).mean())
                if mask.any()
                else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def time_predict(model: Pipeline, X: np.ndarray, rows: int, repeats: int = 3) -> dict:
    """predict_proba on `rows` rows (tiled if needed): best-of-`repeats` wall ms
    and the CPU ms of this process for one call (less sensitive to other load)."""
    reps = int(np.ceil(rows / max(len(X), 1)))
    batch = np.concatenate([X] * reps)[:rows] if reps > 1 else X[:rows]
    model.predict_proba(batch[:10])
    wall, cpu = float("inf"), float("inf")
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        model.predict_proba(batch)
        wall = min(wall, time.perf_counter() - started)
        cpu = min(cpu, time.process_time() - started_cpu)
    return {"rows": len(batch), "wall_ms": round(1000 * wall, 1), "cpu_ms": round(1000 * cpu, 1)}
