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
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.pipeline import Pipeline


def matrix_name(features: list[str] | tuple[str, ...]) -> str:
    """The name of the training data's matrix of these features (data.matrix(features))."""
    return "data:" + ",".join(features)


def pipeline_key(pipeline: Pipeline) -> str:
    """The pipeline's parameters, without those that do not change the fit."""
    params = pipeline.get_params(deep=True)
    params.pop("classifier__oob_score", None)  # scored after fitting: the trees are the same
    return repr(sorted((k, _shallow(v)) for k, v in params.items() if "__" in k))


def _shallow(value: Any) -> str:
    """repr of a parameter, with nested estimators by class name only: their
    own parameters are keys of get_params(deep=True) already (and their
    reprs cost most of the key's time)."""
    if hasattr(value, "get_params"):
        return type(value).__name__
    if isinstance(value, list | tuple):
        return "(" + ", ".join(_shallow(v) for v in value) + ")"
    return repr(value)


def rows_key(rows: np.ndarray) -> str:
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    return f"{len(rows)}:{hashlib.blake2b(rows.tobytes(), digest_size=16).hexdigest()}"


# Bytes of preprocessed matrices a FitCache keeps (least recently used first out).
PREPROCESSED_BYTES = 1 << 30


class FitCache:
    """Fitted pipelines by (matrix name, pipeline parameters, rows), and below
    them the fitted preprocessing step with its output, by (matrix name,
    preprocessing parameters, rows): the settings candidates, the feature gate
    and the seed spread fit different forests on one fold's preprocessed rows.
    Fitting a Pipeline is its first step's fit_transform and then the last
    step's fit on that output, so a shared step gives the same fit."""

    def __init__(self, preprocessed_bytes: int = PREPROCESSED_BYTES) -> None:
        self._fits: dict[tuple[str, str, str], Any] = {}
        self._preprocessed: OrderedDict[tuple[str, str, str], tuple[Any, np.ndarray]] = (
            OrderedDict()
        )
        self._budget = preprocessed_bytes
        self._lock = threading.Lock()  # training fits on two threads at once
        self.hits = 0
        self.fits = 0
        self.preprocess_hits = 0

    def fit(
        self,
        matrix: str,
        pipeline: Pipeline,
        key_rows: np.ndarray,
        X: np.ndarray,
        y: np.ndarray,
        rows: np.ndarray,
    ) -> Pipeline:
        """`pipeline` fitted on X[rows], y[rows] (the rows `key_rows` of the
        matrix named `matrix`): fitted the first time, shared afterwards."""
        key = (matrix, pipeline_key(pipeline), rows_key(key_rows))
        with self._lock:
            if key in self._fits:
                self.hits += 1
                return self._fits[key]
        steps = getattr(pipeline, "steps", [])
        if len(steps) == 2:
            (pre_name, pre), (last_name, last) = steps
            pre_key = (matrix, _step_key(pipeline, pre_name), key[2])
            fitted_pre, Z = self._preprocess(pre_key, pre, X, y, rows)
            fitted = Pipeline([(pre_name, fitted_pre), (last_name, clone(last).fit(Z, y[rows]))])
        else:
            fitted = clone(pipeline).fit(X[rows], y[rows])
        with self._lock:
            self._fits[key] = fitted
            self.fits += 1
        return fitted

    def _preprocess(
        self, key: tuple[str, str, str], step: Any, X: np.ndarray, y: np.ndarray, rows: np.ndarray
    ) -> tuple[Any, np.ndarray]:
        with self._lock:
            if key in self._preprocessed:
                self._preprocessed.move_to_end(key)
                self.preprocess_hits += 1
                return self._preprocessed[key]
        fitted = clone(step)
        Z = fitted.fit_transform(X[rows], y[rows])
        with self._lock:
            self._preprocessed[key] = (fitted, Z)
            while sum(z.nbytes for _, z in self._preprocessed.values()) > self._budget:
                self._preprocessed.popitem(last=False)
        return fitted, Z

    def put(self, matrix: str, pipeline: Pipeline, rows: np.ndarray) -> None:
        """Record an already fitted pipeline (e.g. the one scored on the test period)."""
        with self._lock:
            self._fits[(matrix, pipeline_key(pipeline), rows_key(rows))] = pipeline


def _step_key(pipeline: Pipeline, name: str) -> str:
    """The parameters of one named step of the pipeline (pipeline_key's form)."""
    params = pipeline.get_params(deep=True)
    prefix = name + "__"
    return repr(sorted((k, _shallow(v)) for k, v in params.items() if k.startswith(prefix)))


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
    return cache.fit(matrix, pipeline, rows, X, y, rows)
