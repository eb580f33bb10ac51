"""A recipe: everything needed to fit the production model again on other rows.

The same recipe fits the evaluated model (rows before the test period), each
month of the walk-forward backtest (rows labelled before that month), the
shipped refit (every labelled row) and, in `retrain`, the champion's settings
on today's data. metadata.json stores it, so a later run can refit it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from models_py import config
from models_py.calibration import CalibratedClassifier, calibration_input, fit_calibrator
from models_py.pipelines import build_pipeline
from models_py.splits import calibration_split

if TYPE_CHECKING:
    from models_py.data import TrainingData
    from models_py.fits import FitCache


@dataclass(frozen=True)
class Recipe:
    model: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    rf_params: dict = field(default_factory=dict)
    rf_trees: int = config.RF_TREES
    calibration: str = "none"
    calibration_fraction: float = config.CALIBRATION_FRACTION

    def __post_init__(self) -> None:
        if self.model not in config.PRODUCTION_CANDIDATES:
            raise ValueError(
                f"recipe model {self.model!r} is not one of {config.PRODUCTION_CANDIDATES}"
            )
        if self.calibration not in config.CALIBRATION_METHODS:
            raise ValueError(
                f"recipe calibration {self.calibration!r} is not one of "
                f"{config.CALIBRATION_METHODS}"
            )

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def with_changes(self, **changes: Any) -> Recipe:
        return Recipe(**{**asdict(self), **changes})

    def to_dict(self) -> dict:
        values = asdict(self)
        values["numeric"], values["categorical"] = list(self.numeric), list(self.categorical)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> Recipe:
        try:
            return cls(
                model=values["model"],
                numeric=tuple(values["numeric"]),
                categorical=tuple(values["categorical"]),
                rf_params=dict(values.get("rf_params") or {}),
                rf_trees=int(values.get("rf_trees", config.RF_TREES)),
                calibration=values.get("calibration", "none"),
                calibration_fraction=float(
                    values.get("calibration_fraction", config.CALIBRATION_FRACTION)
                ),
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"recipe is missing or malformed: {error!r}") from error

    def missing_features(self, data: TrainingData) -> list[str]:
        return [name for name in self.features if name not in data.features]


def fit_recipe(
    recipe: Recipe,
    X: np.ndarray,
    y: np.ndarray,
    dates: np.ndarray,
    ends: np.ndarray,
    rows: np.ndarray,
    cache: FitCache | None = None,
    matrix: str = "",
    base: np.ndarray | None = None,
) -> CalibratedClassifier:
    """Fit the recipe on `rows` (positions into X): with a calibration method,
    the model trains on the rows whose label window ends before the last
    `calibration_fraction` of their dates and the calibration map is fitted on
    those last dates (purged); with none, the model trains on every row. The
    clip bound comes from the calibration rows either way. X holds the recipe's
    features in order. With a FitCache the model's fit is shared (keyed by
    `matrix` and the positions `base[...]` in it when X holds the rows `base`)."""
    fit_pos, cal_pos = calibration_split(dates, ends, rows, recipe.calibration_fraction)
    if recipe.calibration != "none" and (len(np.unique(y[rows][fit_pos])) < 2 or len(cal_pos) == 0):
        raise ValueError(
            f"cannot calibrate ({recipe.calibration}): the rows before the calibration "
            "block hold a single class"
        )
    train_pos = np.arange(len(rows)) if recipe.calibration == "none" else fit_pos
    pipeline = build_pipeline(
        recipe.model, recipe.features, list(recipe.categorical), recipe.rf_params, recipe.rf_trees
    )
    fitted_rows = rows[train_pos]
    if cache is None:
        pipeline.fit(X[fitted_rows], y[fitted_rows])
    else:
        key_rows = fitted_rows if base is None else base[fitted_rows]
        pipeline = cache.fit(matrix, pipeline, key_rows, X, y, fitted_rows)
    X_cal = X[rows][cal_pos]
    score = (
        np.asarray(pipeline.predict_proba(X_cal), dtype=float)[:, 1]
        if recipe.calibration == "none"
        else calibration_input(pipeline, X_cal)
    )
    calibrator, low, high = fit_calibrator(recipe.calibration, score, y[rows][cal_pos])
    return CalibratedClassifier(pipeline, recipe.calibration, calibrator, low, high)
