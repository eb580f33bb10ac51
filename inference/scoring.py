"""Scoring: model inputs in, probabilities and DefiLlama's shown fields out.
Pure: no I/O.

The model is the portable model (inference/portable.py), evaluated with numpy
alone. Its inputs are a numeric matrix (the model's numeric features in spec
order, NaN = missing, imputed by the model) and, per categorical feature, the
rows of its encoding table (a missing value takes the imputed category, an
unseen one the unseen row). Column 0 of the probabilities is p_down, column
1 p_keep.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np

from inference import contracts
from inference.features import FeatureTable
from inference.model.artefact import ModelSpec
from inference.model.portable import FLOAT32_MAX, PortableModel, Scores
from inference.validation import rows_to_inputs


def shown_fields(
    p_keep: np.ndarray, spec: ModelSpec
) -> tuple[list, list, list, tuple[float, float]]:
    """DefiLlama's per-row (predicted_class, predicted_probability,
    binned_confidence) as three lists, by the contracts module's rules, and
    the cut-points of these rows taken as one hour (ModelSpec.hour_cutpoints)."""
    p_keep = np.asarray(p_keep, dtype=float)
    probability = contracts.predicted_probability(p_keep)
    cutpoints = spec.hour_cutpoints(probability)
    classes = np.where(
        contracts.predicted_class_is_down(p_keep), contracts.CLASS_DOWN, contracts.CLASS_KEEP
    ).tolist()
    confidence = np.asarray(contracts.confidence_bin(probability, cutpoints)).tolist()
    return classes, [round(p, 4) for p in probability.tolist()], confidence, cutpoints


def binned_by_hour(
    p_keep: Any, hours: Any, levels: Sequence[float] | None, stored: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the binned confidence and its hour's (low, high) cut-points,
    rows grouped by `hours` (an hour, or a snapshot date): the serving rule
    (contracts.hour_cutpoints, then contracts.confidence_bin) over many hours at
    once, for backtests, held-out blocks and the board's track record."""
    shown = contracts.predicted_probability(np.asarray(p_keep, dtype=float))
    low, high = np.empty(len(shown)), np.empty(len(shown))
    for rows in hour_groups(hours):
        low[rows], high[rows] = contracts.hour_cutpoints(shown[rows], levels, stored)
    bins = np.asarray(contracts.confidence_bin(shown, (low, high)), dtype=int)
    return bins, low, high


def hour_groups(hours: Any) -> list[np.ndarray]:
    """Row positions per distinct value of `hours`, in the values' sorted order."""
    _, inverse = np.unique(np.asarray(hours), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(inverse.max(initial=-1) + 2))
    return [order[a:b] for a, b in pairwise(bounds)]


def describe(classes: list, probabilities: list, confidences: list) -> list[dict[str, Any]]:
    """DefiLlama's per-row fields (shown_fields), plus the confidence in words (ours)."""
    return [
        {
            "predicted_class": c,
            "predicted_probability": p,
            "binned_confidence": b,
            "confidence_words": contracts.CONFIDENCE_WORDS[b],
        }
        for c, p, b in zip(classes, probabilities, confidences, strict=True)
    ]


def score_inputs(
    model: PortableModel, numeric: np.ndarray, codes: dict[str, np.ndarray], explain: bool = False
) -> Scores:
    return model.score(model.encode(numeric, codes), explain=explain)


def score_rows(
    model: PortableModel, rows: Any, max_rows: int = contracts.MAX_BATCH_ROWS
) -> dict[str, Any]:
    """HTTP feature rows -> response body keeping DefiLlama's `predictions` shape."""
    numeric, text = rows_to_inputs(rows, model.spec, max_rows)
    codes = {name: column.codes(text[name]) for name, column in model.categorical.items()}
    proba = score_inputs(model, numeric, codes).proba
    # the request's rows are its cross-section, as DefiLlama's hourly caller sent
    # every pool of the hour in one request (fewer: the stored cut-points)
    *shown, cutpoints = shown_fields(proba[:, 1], model.spec)
    return {
        "model_id": model.spec.model_id,
        "label": dict(model.spec.label),
        "confidence_cutpoints": list(cutpoints),
        "predictions": proba.tolist(),
        "rows": describe(*shown),
    }


def eligibility_codes(
    apy: np.ndarray, observed_days: np.ndarray, spec: ModelSpec
) -> list[tuple[str | None, str | None]]:
    """(code, reason in words) per row; (None, None) for an eligible row."""
    codes, words = eligibility(apy, observed_days, spec)
    return [(code, words[code]) for code in codes.tolist()]


def eligibility(
    apy: np.ndarray, observed_days: np.ndarray, spec: ModelSpec
) -> tuple[np.ndarray, dict[str | None, str | None]]:
    """(the code per row as an object array, None = eligible; the reason in
    words of each code)."""
    codes = np.full(apy.shape, None, dtype=object)
    with np.errstate(invalid="ignore"):
        too_young = np.isnan(observed_days) | (observed_days < spec.min_observed_days)
        too_low = apy <= spec.min_apy_exclusive
    # assigned from the weakest reason to the strongest, so the first rule that
    # fails wins: missing apy, then apy <= 0, then too few observed days
    codes[too_young] = contracts.NOT_SCORED_TOO_FEW_DAYS
    codes[too_low] = contracts.NOT_SCORED_APY_NOT_POSITIVE
    codes[np.isnan(apy)] = contracts.NOT_SCORED_APY_MISSING
    words = {
        None: None,
        contracts.NOT_SCORED_TOO_FEW_DAYS: f"observed_day_count < {spec.min_observed_days}",
        contracts.NOT_SCORED_APY_NOT_POSITIVE: f"apy <= {spec.min_apy_exclusive:g}",
        contracts.NOT_SCORED_APY_MISSING: "apy is missing",
    }
    return codes, words


def unusable_value_reasons(
    model: PortableModel, numeric: np.ndarray, rows: np.ndarray
) -> dict[int, str]:
    """{row: reason} for the given rows holding a value the model cannot use:
    beyond float32's range or infinite (NaN is a missing value, imputed). The
    reason names the feature (the first such, and how many more)."""
    with np.errstate(invalid="ignore"):
        flagged = (np.abs(numeric) > FLOAT32_MAX).any(axis=1)  # NaN compares False
    candidates = np.zeros(len(numeric), dtype=bool)
    candidates[rows] = True
    found: dict[int, str] = {}
    for row in np.flatnonzero(flagged & candidates).tolist():
        bad = model.out_of_range(numeric[row : row + 1])[0]
        columns = np.flatnonzero(bad).tolist()
        name = model.numeric_features[columns[0]]
        value = float(numeric[row, columns[0]])
        what = "is not finite" if np.isinf(value) else "is beyond float32's range"
        more = f" (and {len(columns) - 1} more feature(s))" if len(columns) > 1 else ""
        found[row] = f"{name} = {value:.6g} {what}{more}"
    return found


def table_inputs(model: PortableModel, table: FeatureTable) -> tuple[np.ndarray, dict]:
    """The model's inputs for every row of a features file."""
    positions = [table.numeric_columns.index(name) for name in model.numeric_features]
    numeric = table.numeric.T[positions].T  # column gathers of the column-major matrix
    codes = {}
    for name, column in model.categorical.items():
        vocabulary, file_codes = table.categorical_column(name)
        codes[name] = column.recode(list(vocabulary), file_codes)
    return numeric, codes
