"""Fit each (model, rows) once per training run, and share the fit.

Choosing settings, choosing the calibration, the evaluated fit and the
backtest fit the same pipelines on the same rows: the forest of fold k for
its fold AUC and for the `none` calibration candidate, one model on a fold's
rows before its calibration block for both calibrated candidates, the
evaluated fit and the backtest's first month (both trained on the rows
labelled before the test start). A FitCache keys a fitted pipeline by its
matrix's name (row positions index it), its parameters and its rows, so a
shared fit is the fit the unshared path would make (deterministic given
random_state; tests/test_train_fits.py checks results within 1e-12).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import clone

if TYPE_CHECKING:
    from collections.abc import Callable

    from sklearn.pipeline import Pipeline


def matrix_name(features: list[str] | tuple[str, ...]) -> str:
    """The name of the training data's matrix of these features (data.matrix(features))."""
    return "data:" + ",".join(features)


def pipeline_key(pipeline: Pipeline) -> str:
    """The pipeline's parameters, without those that do not change the fit."""
    params = pipeline.get_params(deep=True)
    params.pop("classifier__oob_score", None)  # scored after fitting: the trees are the same
    return repr(sorted((k, repr(v)) for k, v in params.items() if "__" in k))


def rows_key(rows: np.ndarray) -> str:
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    return f"{len(rows)}:{hashlib.blake2b(rows.tobytes(), digest_size=16).hexdigest()}"


class FitCache:
    """Fitted pipelines by (matrix name, pipeline parameters, rows)."""

    def __init__(self) -> None:
        self._fits: dict[tuple[str, str, str], Any] = {}
        self.hits = 0
        self.fits = 0

    def fit(
        self,
        matrix: str,
        pipeline: Pipeline,
        rows: np.ndarray,
        fit: Callable[[Pipeline], Pipeline],
    ) -> Pipeline:
        """The pipeline fitted on `rows` of the matrix named `matrix`, by
        `fit(clone)` the first time, shared afterwards."""
        key = (matrix, pipeline_key(pipeline), rows_key(rows))
        if key in self._fits:
            self.hits += 1
            return self._fits[key]
        fitted = fit(clone(pipeline))
        self._fits[key] = fitted
        self.fits += 1
        return fitted

    def put(self, matrix: str, pipeline: Pipeline, rows: np.ndarray) -> None:
        """Record an already fitted pipeline (e.g. the one scored on the test period)."""
        self._fits[(matrix, pipeline_key(pipeline), rows_key(rows))] = pipeline


def fit_on(
    cache: FitCache | None,
    matrix: str,
    pipeline: Pipeline,
    X: np.ndarray,
    y: np.ndarray,
    rows: np.ndarray,
) -> Pipeline:
    """`pipeline` fitted on X[rows], y[rows]: through the cache when there is one."""
    if cache is None:
        return clone(pipeline).fit(X[rows], y[rows])
    return cache.fit(matrix, pipeline, rows, lambda fresh: fresh.fit(X[rows], y[rows]))
