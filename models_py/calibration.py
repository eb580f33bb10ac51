"""Honest probabilities: the calibration a shipped model may carry (none, sigmoid,
or isotonic with a minimum bin size: config.CALIBRATION_METHODS,
CALIBRATION_MIN_BIN), chosen on a recent purged validation period, and the clip
bound that keeps every shipped probability away from exactly 0 and 1 (Laplace's
rule of succession on the extreme bin's calibration rows).

Imports: scikit-learn, numpy, models_py/ and inference/ (floor 2; never
apy_runway). The rules as a user sees them: docs/model.md#training-and-its-outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import _SigmoidCalibration
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import log_loss

from models_py import config

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


class CalibratedClassifier(ClassifierMixin, BaseEstimator):
    """A fitted classifier (a Pipeline), a 1-D calibration map of its p_keep and
    the clip bounds of the shipped probability.

    `calibrator` is None (method none), a fitted IsotonicRegression (isotonic)
    or a fitted _SigmoidCalibration (sigmoid: p = 1 / (1 + exp(a * s + b))) of
    the score s = the forest's p_keep or the linear model's decision, as
    scikit-learn's CalibratedClassifierCV does. Only fitted pieces go in: this
    wrapper never fits.
    """

    def __init__(
        self,
        estimator: Any,
        method: str = "none",
        calibrator: Any = None,
        low: float = 0.0,
        high: float = 1.0,
    ) -> None:
        self.estimator = estimator
        self.method = method
        self.calibrator = calibrator
        self.low = low
        self.high = high

    def __sklearn_is_fitted__(self) -> bool:
        return True

    @property
    def classes_(self) -> np.ndarray:
        return self.estimator.classes_

    def fit(self, X: ArrayLike, y: ArrayLike) -> CalibratedClassifier:
        raise NotImplementedError("CalibratedClassifier wraps fitted parts; see fit_calibrated")

    def calibration_input(self, X: ArrayLike) -> np.ndarray:
        """What the calibration map reads: the model's p_keep, or a linear
        model's decision (logit), as scikit-learn's CalibratedClassifierCV does."""
        return (
            calibration_input(self.estimator, X)
            if self.calibrator is not None
            else (np.asarray(self.estimator.predict_proba(X), dtype=float)[:, 1])
        )

    def calibrate(self, score: np.ndarray) -> np.ndarray:
        """Calibration map of calibration_input's score, then the clip bound."""
        p = score if self.calibrator is None else self.calibrator.predict(score)
        return np.clip(np.asarray(p, dtype=float), self.low, self.high)

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        p = self.calibrate(self.calibration_input(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: ArrayLike) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] > 0.5).astype(int)


def calibration_input(pipeline: Any, X: ArrayLike) -> np.ndarray:
    """A calibration map's input: a linear model's decision function (logit),
    a forest's p_keep."""
    if hasattr(pipeline[-1], "decision_function"):
        return np.asarray(pipeline.decision_function(X), dtype=float)
    return np.asarray(pipeline.predict_proba(X), dtype=float)[:, 1]


def binned_isotonic(scores: np.ndarray, y: np.ndarray, min_bin: int) -> tuple[Any, np.ndarray]:
    """Isotonic regression on bins of at least `min_bin` consecutive scores.

    Returns the fitted map and the number of calibration rows behind each
    calibration row's fitted value's block (for the clip bound)."""
    order = np.argsort(scores, kind="stable")
    n_bins = max(1, len(scores) // max(1, min_bin))
    groups = np.array_split(order, n_bins)
    bin_x = np.array([scores[g].mean() for g in groups])
    bin_y = np.array([y[g].mean() for g in groups])
    weights = np.array([len(g) for g in groups], dtype=float)
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
    iso.fit(bin_x, bin_y, sample_weight=weights)
    fitted = iso.predict(bin_x)
    block_rows = np.array([weights[fitted == value].sum() for value in fitted])
    return iso, block_rows


def fit_calibrator(method: str, raw: np.ndarray, y: np.ndarray) -> tuple[Any, float, float]:
    """(calibrator, low, high) fitted on the calibration rows' raw p_keep and labels."""
    raw, y = np.asarray(raw, dtype=float), np.asarray(y, dtype=int)
    if method == "isotonic":
        calibrator, block_rows = binned_isotonic(raw, y, config.CALIBRATION_MIN_BIN)
        n_low = int(block_rows[0]) if len(block_rows) else 0
        n_high = int(block_rows[-1]) if len(block_rows) else 0
        return calibrator, laplace_low(n_low), 1.0 - laplace_low(n_high)
    if method == "sigmoid":
        calibrator = _SigmoidCalibration().fit(raw, y)
        calibrated = calibrator.predict(raw)
    elif method == "none":
        calibrator, calibrated = None, raw
    else:
        raise ValueError(
            f"unknown calibration method {method!r}; choose from {config.CALIBRATION_METHODS}"
        )
    n_low, n_high = extreme_decile_rows(calibrated)
    return calibrator, laplace_low(n_low), 1.0 - laplace_low(n_high)


def laplace_low(n: int) -> float:
    """1 / (n + 2): the least probability n agreeing rows can back."""
    return 1.0 / (max(int(n), 0) + 2)


def extreme_decile_rows(p: np.ndarray) -> tuple[int, int]:
    """Rows in the lowest and the highest decile bin of the scores."""
    if len(p) == 0:
        return 0, 0
    low_cut, high_cut = np.quantile(p, [0.1, 0.9])
    return int(np.sum(p <= low_cut)), int(np.sum(p >= high_cut))


def expected_calibration_error(y: ArrayLike, p: ArrayLike, bins: int = 10) -> float:
    """ECE: the row-weighted mean |observed share kept - mean p_keep| over
    `bins` equal-width bins of p_keep."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    if len(y) == 0:
        return float("nan")
    index = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.sum() * abs(y[mask].mean() - p[mask].mean())
    return float(total / len(y))


def reliability_table(y: ArrayLike, p: ArrayLike, bins: int = 10) -> list[dict]:
    """Per equal-width bin of p_keep: rows, mean predicted and observed share kept."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    index = np.minimum((p * bins).astype(int), bins - 1)
    rows = []
    for b in range(bins):
        mask = index == b
        rows.append(
            {
                "bin": f"{b / bins:.1f}-{(b + 1) / bins:.1f}",
                "rows": int(mask.sum()),
                "mean_p_keep": float(p[mask].mean()) if mask.any() else float("nan"),
                "observed_kept": float(y[mask].mean()) if mask.any() else float("nan"),
            }
        )
    return rows


@dataclass
class CalibrationChoice:
    method: str
    table: list[dict]  # per method: mean fold log loss, Brier, ECE


def choose_method(candidates: dict[str, list[tuple[np.ndarray, np.ndarray]]]) -> CalibrationChoice:
    """Ship a calibration only on consistent evidence: a method qualifies when
    its held-out log loss is lower than none's by more than
    CALIBRATION_MIN_GAIN on EVERY checked fold; the qualifying method with the
    lowest mean log loss wins, else none. (A calibration fitted on one period
    can hurt the next when the base rate moves; one fold's gain is not enough.)"""
    table = []
    for method in config.CALIBRATION_METHODS:
        pairs = candidates.get(method) or []
        if not pairs:
            continue
        losses = [log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1]) for y, p in pairs]
        table.append(
            {
                "method": method,
                "log_loss": float(np.mean(losses)),
                "fold_log_loss": [float(value) for value in losses],
                "brier": float(np.mean([np.mean((p - y) ** 2) for y, p in pairs])),
                "ece": float(np.mean([expected_calibration_error(y, p) for y, p in pairs])),
                "folds": len(pairs),
            }
        )
    none = next((row for row in table if row["method"] == "none"), None)
    chosen = none
    for row in table:
        row["beats_none_on_every_fold"] = (
            none is not None
            and row is not none
            and all(
                loss < base - config.CALIBRATION_MIN_GAIN
                for loss, base in zip(row["fold_log_loss"], none["fold_log_loss"], strict=True)
            )
        )
        if row["beats_none_on_every_fold"] and row["log_loss"] < chosen["log_loss"]:
            chosen = row
    for row in table:
        row["chosen"] = row is chosen
    return CalibrationChoice(chosen["method"] if chosen else "none", table)
