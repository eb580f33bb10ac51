"""Scoring: model input matrices in, probabilities and DefiLlama's shown
fields out. Pure: no I/O.

Model contract (runs/<run_id>/metadata.json): the model is one scikit-learn
Pipeline fitted on a 2-D numpy *object* array whose columns are
``metadata["features"]`` in order; numeric features are floats (NaN = missing,
imputed inside the pipeline), categorical features are str or None (imputed
inside the pipeline; unseen categories go through the encoder's unknown path).
``predict_proba(X)[:, 0]`` is p_down, ``[:, 1]`` is p_keep.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from inference import contracts
from inference.artefact import ModelIntegrityError, ModelSpec
from inference.validation import rows_to_matrix


def predict_proba(model: Any, matrix: np.ndarray) -> np.ndarray:
    """(n, 2) array: column 0 = p_down, column 1 = p_keep."""
    proba = np.asarray(model.predict_proba(matrix), dtype=float)
    if proba.ndim != 2 or proba.shape[1] != 2 or proba.shape[0] != matrix.shape[0]:
        raise ModelIntegrityError(
            f"model returned probabilities of shape {proba.shape}, expected ({matrix.shape[0]}, 2)"
        )
    return proba


def shown_fields(p_keep: np.ndarray, cutpoints: Sequence[float]) -> tuple[list, list, list]:
    """DefiLlama's per-row (predicted_class, predicted_probability,
    binned_confidence) as three lists, by the contracts module's rules."""
    p_keep = np.asarray(p_keep, dtype=float)
    probability = contracts.predicted_probability(p_keep)
    classes = np.where(
        contracts.predicted_class_is_down(p_keep), contracts.CLASS_DOWN, contracts.CLASS_KEEP
    ).tolist()
    confidence = np.asarray(contracts.confidence_bin(probability, cutpoints)).tolist()
    return classes, [round(p, 4) for p in probability.tolist()], confidence


def describe(p_keep: np.ndarray, cutpoints: Sequence[float]) -> list[dict[str, Any]]:
    """DefiLlama's per-row fields."""
    return [
        {"predicted_class": c, "predicted_probability": p, "binned_confidence": b}
        for c, p, b in zip(*shown_fields(p_keep, cutpoints), strict=True)
    ]


def score_rows(
    model: Any, spec: ModelSpec, rows: Any, max_rows: int = contracts.MAX_BATCH_ROWS
) -> dict[str, Any]:
    """HTTP feature rows -> response body keeping DefiLlama's `predictions` shape."""
    matrix = rows_to_matrix(rows, spec, max_rows)
    proba = predict_proba(model, matrix)
    return {
        "predictions": proba.tolist(),
        "rows": describe(proba[:, 1], spec.cutpoints),
        "model_id": spec.model_id,
    }


def column_to_numeric(values: list) -> np.ndarray:
    """JSON numbers (None = missing) -> float array; numpy maps None to NaN."""
    return np.asarray(values, dtype=float)


def eligibility_reasons(
    apy: np.ndarray, observed_days: np.ndarray, spec: ModelSpec
) -> list[str | None]:
    """DefiLlama's skip rule: apy <= 0 or fewer than 7 observed days -> not scored."""
    reasons = np.full(apy.shape, None, dtype=object)
    with np.errstate(invalid="ignore"):
        too_young = np.isnan(observed_days) | (observed_days < spec.min_observed_days)
        too_low = apy <= spec.min_apy_exclusive
    # assigned from the weakest reason to the strongest, so the first rule that
    # fails wins: missing apy, then apy <= 0, then too few observed days
    reasons[too_young] = f"observed_day_count < {spec.min_observed_days}"
    reasons[too_low] = f"apy <= {spec.min_apy_exclusive:g}"
    reasons[np.isnan(apy)] = "apy is missing"
    return reasons.tolist()


def _categorical_column(values: list, rows: np.ndarray) -> list:
    return [None if values[i] is None else str(values[i]) for i in rows.tolist()]


def published_matrix(columns: dict, spec: ModelSpec, rows: np.ndarray) -> np.ndarray:
    """The model's object matrix for the given row indices of column-wise features."""
    matrix = np.empty((len(rows), len(spec.features)), dtype=object)
    for j, name in enumerate(spec.features):
        if name in spec.numeric_features:
            matrix[:, j] = column_to_numeric(columns[name])[rows]
        else:
            matrix[:, j] = _categorical_column(columns[name], rows)
    return matrix


def _dense_column_transformer(model: Any) -> Any:
    """The fitted ColumnTransformer of Pipeline[ColumnTransformer, estimator]
    when its transformers can be fed typed blocks directly; else None."""
    steps = getattr(model, "steps", None)
    if not steps or len(steps) != 2:
        return None
    transformer = steps[0][1]
    fitted = getattr(transformer, "transformers_", None)
    if fitted is None or getattr(transformer, "sparse_output_", True):
        return None
    for _, step, _columns in fitted:
        if isinstance(step, str) and step != "drop":  # 'passthrough' needs the object path
            return None
    return transformer


def predict_proba_columns(
    model: Any, spec: ModelSpec, columns: dict, rows: np.ndarray
) -> np.ndarray:
    """predict_proba on column-wise features, without the object matrix.

    The pipeline is fitted on an object array (numerics and categoricals in one
    ordered matrix). Building that matrix and letting each transformer convert
    its object slice back to floats costs more than the forest itself at 20k
    pools, so each fitted transformer of the ColumnTransformer gets its columns
    as a typed block (floats for numeric slices, objects for categorical ones)
    and the final estimator gets their concatenation: the same numbers as
    `model.predict_proba(published_matrix(...))` (a test checks equality). Any
    other model shape takes the generic path.
    """
    transformer = _dense_column_transformer(model)
    if transformer is None:
        return predict_proba(model, published_matrix(columns, spec, rows))
    blocks = []
    for _, step, indices in transformer.transformers_:
        if isinstance(step, str):  # 'drop'
            continue
        names = [spec.features[i] for i in np.asarray(indices).tolist()]
        if all(name in spec.numeric_features for name in names):
            block = np.column_stack([column_to_numeric(columns[n])[rows] for n in names])
        else:
            block = np.empty((len(rows), len(names)), dtype=object)
            for j, name in enumerate(names):
                if name in spec.numeric_features:
                    block[:, j] = column_to_numeric(columns[name])[rows]
                else:
                    block[:, j] = _categorical_column(columns[name], rows)
        part = step.transform(block)
        # the ColumnTransformer densifies sparse parts when its output is dense
        blocks.append(part.toarray() if hasattr(part, "toarray") else part)
    proba = np.asarray(model.steps[-1][1].predict_proba(np.hstack(blocks)), dtype=float)
    if proba.ndim != 2 or proba.shape != (len(rows), 2):
        raise ModelIntegrityError(
            f"model returned probabilities of shape {proba.shape}, expected ({len(rows)}, 2)"
        )
    return proba
