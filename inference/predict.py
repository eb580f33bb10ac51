"""Pure scoring core of the inference Lambda: no I/O, no boto3, no pandas.

The handler (handler.py) fetches bytes from S3 and shapes HTTP responses; this
module turns already-parsed inputs into model input matrices and predictions.

Model contract (runs/<run_id>/metadata.json): the model is one scikit-learn
Pipeline fitted on a 2-D numpy *object* array whose columns are
``metadata["features"]`` in order; numeric features are floats (NaN = missing,
imputed inside the pipeline), categorical features are str or None (imputed
inside the pipeline; unseen categories go through the encoder's unknown path).
``predict_proba(X)[:, 0]`` is p_down, ``[:, 1]`` is p_keep.

JSON input rules (HTTP rows):
- keys are feature names in any order; extra keys are ignored;
- a numeric feature takes a JSON number, or ``null`` for a missing value (the
  pipeline imputes it); ``NaN`` / ``Infinity`` literals and numbers that
  overflow a float are refused (use null for missing);
- a categorical feature takes a JSON string, or ``null`` (imputed 'unknown').
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Sequence

import numpy as np

# API Gateway caps a request body at 6 MB: about 3,500 rows of DefiLlama's six
# features. A batch over this many rows gets HTTP 413; the handler reads an
# override from APY_RUNWAY_MAX_BATCH_ROWS (serverless.yml sets 2,000 for the
# 66-feature model, whose rows are ~2.5 kB of JSON each).
MAX_BATCH_ROWS = 3500
# Lookups of published predictions: pool ids per request (~330 bytes per answer:
# 5,000 pools stay well under Lambda's 6 MB response limit).
MAX_LOOKUP_POOLS = 5000

CLASS_DOWN = "Down"
CLASS_KEEP = "Stable/Up"
STATUS_SCORED = "scored"
STATUS_NOT_SCORED = "not scored"

FEATURES_FORMAT = "apy-runway/latest-features/columns/v1"
PREDICTIONS_FORMAT = "apy-runway/predictions/v1"


class InputError(ValueError):
    """A caller's input problem: HTTP 400 (or 413) naming the row and field."""

    def __init__(self, message: str, *, status: int = 400, row: int | None = None,
                 field: str | None = None, code: str = "bad_request") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.row = row
        self.field = field
        self.code = code

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.row is not None:
            body["row"] = self.row
        if self.field is not None:
            body["field"] = self.field
        return body


class ModelIntegrityError(RuntimeError):
    """The model artefact does not match its metadata (sha256, library versions)."""


class FeatureContractError(RuntimeError):
    """Published features do not match the model's feature list."""


# --------------------------------------------------------------------------- model

@dataclass(frozen=True)
class ModelSpec:
    """What the core needs from metadata.json, validated once."""

    model_id: str
    features: tuple[str, ...]
    numeric_features: frozenset[str]
    categorical_features: frozenset[str]
    cutpoints: tuple[float, float]
    min_apy_exclusive: float
    min_observed_days: int

    @classmethod
    def from_metadata(cls, metadata: dict) -> "ModelSpec":
        try:
            features = tuple(metadata["features"])
            numeric = frozenset(metadata["numeric_features"])
            categorical = frozenset(metadata["categorical_features"])
            cutpoints = tuple(float(x) for x in metadata["confidence_cutpoints"])
            eligibility = metadata.get("eligibility") or {}
            model_id = str(metadata["model_id"])
        except (KeyError, TypeError, ValueError) as error:
            raise ModelIntegrityError(f"metadata.json is missing or malformed: {error!r}") from error
        if not features:
            raise ModelIntegrityError("metadata.json lists no features")
        if set(features) != numeric | categorical or numeric & categorical:
            raise ModelIntegrityError(
                "metadata.json: features must be exactly numeric_features + categorical_features")
        if len(cutpoints) != 2 or not (50.0 <= cutpoints[0] <= cutpoints[1] <= 100.0):
            raise ModelIntegrityError(
                f"metadata.json: confidence_cutpoints must be [q1, q2] within 50..100, "
                f"got {metadata.get('confidence_cutpoints')!r}")
        return cls(
            model_id=model_id,
            features=features,
            numeric_features=numeric,
            categorical_features=categorical,
            cutpoints=(cutpoints[0], cutpoints[1]),
            min_apy_exclusive=float(eligibility.get("min_apy_exclusive", 0)),
            min_observed_days=int(eligibility.get("min_observed_days", 7)),
        )


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_artefact(data: bytes, metadata: dict) -> None:
    """Refuse an artefact whose bytes do not match metadata.json (before unpickling)."""
    expected = metadata.get("model_sha256")
    if not expected:
        raise ModelIntegrityError("metadata.json has no model_sha256: refusing to load the model")
    actual = sha256_hex(data)
    if actual != expected:
        raise ModelIntegrityError(
            f"model artefact sha256 mismatch: metadata says {expected}, "
            f"the artefact is {actual}; refusing to load it")
    size = metadata.get("model_size_bytes")
    if size is not None and int(size) != len(data):
        raise ModelIntegrityError(
            f"model artefact size mismatch: metadata says {size} bytes, got {len(data)}")


def check_library_versions(metadata: dict, installed: dict[str, str | None]) -> list[str]:
    """Refuse a scikit-learn mismatch; return warnings for other libraries."""
    trained = metadata.get("library_versions") or {}
    want = trained.get("scikit-learn")
    have = installed.get("scikit-learn")
    if not want:
        raise ModelIntegrityError("metadata.json has no library_versions['scikit-learn']")
    if want != have:
        raise ModelIntegrityError(
            f"scikit-learn version mismatch: the model was trained with {want}, "
            f"this runtime has {have}; rebuild the layer with the training versions "
            f"(./createlayer.sh <python> --metadata runs/<run_id>/metadata.json)")
    warnings = []
    for name in ("numpy", "scipy", "joblib"):
        if trained.get(name) and installed.get(name) and trained[name] != installed[name]:
            warnings.append(f"{name} {installed[name]} differs from training's {trained[name]}")
    return warnings


# --------------------------------------------------------------------------- JSON

class _RefusedConstant:
    """Placeholder for NaN/Infinity literals so the error can name row and field."""

    __slots__ = ("literal",)

    def __init__(self, literal: str) -> None:
        self.literal = literal


def parse_json_body(body: str | bytes | None) -> Any:
    """json.loads that keeps NaN/Infinity literals out of the numbers."""
    if body is None or (isinstance(body, (str, bytes)) and not body.strip()):
        raise InputError("request body is empty; send a JSON array of feature rows "
                         "or {\"pools\": [...]}", code="empty_body")
    try:
        return json.loads(body, parse_constant=_RefusedConstant)
    except (ValueError, UnicodeDecodeError) as error:
        raise InputError(f"request body is not valid JSON: {error}", code="invalid_json") from error


def _numeric_value(value: Any, row: int, field: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, _RefusedConstant):
        raise InputError(f"row {row}, field {field!r}: {value.literal} is not accepted; "
                         f"use null for a missing value", row=row, field=field,
                         code="non_finite_value")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "string" if isinstance(value, str) else type(value).__name__
        raise InputError(f"row {row}, field {field!r}: expected a number or null, got {kind}",
                         row=row, field=field, code="non_numeric_value")
    number = float(value)
    if not math.isfinite(number):
        raise InputError(f"row {row}, field {field!r}: {value!r} does not fit a finite float",
                         row=row, field=field, code="non_finite_value")
    return number


def _categorical_value(value: Any, row: int, field: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    kind = type(value).__name__
    if isinstance(value, _RefusedConstant):
        kind = value.literal
    raise InputError(f"row {row}, field {field!r}: expected a string or null, got {kind}",
                     row=row, field=field, code="unknown_type")


def rows_to_matrix(rows: Any, spec: ModelSpec, max_rows: int = MAX_BATCH_ROWS) -> np.ndarray:
    """Validate HTTP feature rows (list of objects) into the model's object matrix."""
    if not isinstance(rows, list):
        raise InputError(f"body must be a JSON array of feature rows, got {type(rows).__name__}",
                         code="not_a_list")
    if not rows:
        raise InputError("body is an empty list; send at least one feature row",
                         code="empty_list")
    if len(rows) > max_rows:
        raise InputError(f"batch of {len(rows)} rows is over the limit of {max_rows} rows "
                         f"per request; split it", status=413, code="batch_too_large")
    matrix = np.empty((len(rows), len(spec.features)), dtype=object)
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InputError(f"row {i}: expected an object keyed by feature name, "
                             f"got {type(row).__name__}", row=i, code="unknown_type")
        for j, name in enumerate(spec.features):
            if name not in row:
                raise InputError(f"row {i}: missing feature {name!r}", row=i, field=name,
                                 code="missing_feature")
            if name in spec.numeric_features:
                matrix[i, j] = _numeric_value(row[name], i, name)
            else:
                matrix[i, j] = _categorical_value(row[name], i, name)
    return matrix


# --------------------------------------------------------------------------- scoring

def iter_estimators(model: Any):
    """The model and every estimator nested in it (pipeline steps, column
    transformers, calibrated classifiers and their base estimators)."""
    stack = [model]
    while stack:
        estimator = stack.pop()
        yield estimator
        stack.extend(step for _, step in getattr(estimator, "steps", []) or [])
        stack.extend(step for _, step, _ in getattr(estimator, "transformers_", []) or []
                     if not isinstance(step, str))
        stack.extend(getattr(estimator, "calibrated_classifiers_", []) or [])
        inner = getattr(estimator, "estimator", None)
        if inner is not None and hasattr(inner, "get_params"):
            stack.append(inner)


def single_threaded(model: Any) -> Any:
    """Set n_jobs = 1 on every nested estimator: on 20k rows a forest's threads
    save nothing (22.5 ms vs 24.1 ms idle) and make latency erratic under load
    (benchmarks/RESULTS.md)."""
    for estimator in iter_estimators(model):
        if getattr(estimator, "n_jobs", None) not in (None, 1):
            estimator.n_jobs = 1
    return model


def predict_proba(model: Any, matrix: np.ndarray) -> np.ndarray:
    """(n, 2) array: column 0 = p_down, column 1 = p_keep."""
    proba = np.asarray(model.predict_proba(matrix), dtype=float)
    if proba.ndim != 2 or proba.shape[1] != 2 or proba.shape[0] != matrix.shape[0]:
        raise ModelIntegrityError(f"model returned probabilities of shape {proba.shape}, "
                                  f"expected ({matrix.shape[0]}, 2)")
    return proba


def binned_confidence(probability: float, cutpoints: Sequence[float]) -> int:
    """1 / 2 / 3 by the metadata cut-points on the 50..100 probability scale."""
    if probability <= cutpoints[0]:
        return 1
    if probability <= cutpoints[1]:
        return 2
    return 3


def shown_fields(proba: np.ndarray, cutpoints: Sequence[float]) -> tuple[list, list, list]:
    """DefiLlama's per-row (predicted_class, predicted_probability, binned_confidence)
    as three lists, vectorised: class "Down" when p_down >= p_keep, probability
    100 x max(p_down, p_keep), confidence 1/2/3 by the cut-points (see binned_confidence)."""
    probability = 100.0 * proba.max(axis=1) if len(proba) else np.empty(0)
    classes = np.where(proba[:, 0] >= proba[:, 1], CLASS_DOWN, CLASS_KEEP).tolist()
    confidence = (1 + (probability > cutpoints[0]) + (probability > cutpoints[1])).tolist()
    return classes, [round(p, 4) for p in probability.tolist()], confidence


def describe(proba: np.ndarray, cutpoints: Sequence[float]) -> list[dict[str, Any]]:
    """DefiLlama's per-row fields from (p_down, p_keep)."""
    return [{"predicted_class": c, "predicted_probability": p, "binned_confidence": b}
            for c, p, b in zip(*shown_fields(proba, cutpoints))]


def score_rows(model: Any, spec: ModelSpec, rows: Any,
               max_rows: int = MAX_BATCH_ROWS) -> dict[str, Any]:
    """HTTP feature rows -> response body keeping DefiLlama's `predictions` shape."""
    matrix = rows_to_matrix(rows, spec, max_rows)
    proba = predict_proba(model, matrix)
    return {
        "predictions": proba.tolist(),
        "rows": describe(proba, spec.cutpoints),
        "model_id": spec.model_id,
    }


# --------------------------------------------------------------------------- scheduled

def parse_event_time(value: Any) -> datetime:
    """EventBridge `time` ("2025-06-06T00:00:00Z") -> aware UTC datetime."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"scheduled event has no `time`: {value!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise ValueError(f"scheduled event `time` is not ISO 8601: {value!r}") from error
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def hour_key(prefix: str, event_time: datetime) -> str:
    """One key per event hour: a retried event overwrites the same object."""
    return f"{prefix}hourly/{event_time:%Y-%m-%dT%H}Z.json"


def latest_key(prefix: str) -> str:
    return f"{prefix}latest.json"


def check_feature_columns(payload: dict, spec: ModelSpec) -> tuple[int, list[str]]:
    """Row count of column-wise features; raise unless every model feature is there.

    Returns the published feature names the model does not use (logged by the
    handler, not fatal: the pipeline may add a feature before the next retrain).
    """
    if payload.get("format") != FEATURES_FORMAT:
        raise FeatureContractError(f"published features have format {payload.get('format')!r}, "
                                   f"expected {FEATURES_FORMAT!r}")
    columns = payload.get("columns")
    if not isinstance(columns, dict):
        raise FeatureContractError("published features have no `columns` object")
    required = ["pool_id", "snapshot_date", "apy", "observed_day_count"]
    missing = [name for name in list(spec.features) + required if name not in columns]
    if missing:
        raise FeatureContractError(
            f"published features lack columns the model needs: {sorted(set(missing))}")
    for kind, other in (("numeric", spec.categorical_features),
                        ("categorical", spec.numeric_features)):
        published_kind = set(payload.get(kind) or [])
        retyped = sorted(published_kind & other)
        if retyped:
            raise FeatureContractError(
                f"published features call {retyped} {kind}, the model does not")
    published_features = payload.get("features") or []
    unused = sorted(set(published_features) - set(spec.features))
    lengths = {len(values) for values in columns.values()}
    if len(lengths) > 1:
        raise FeatureContractError(f"published columns have different lengths: {sorted(lengths)}")
    return (lengths.pop() if lengths else 0), unused


def _column_to_numeric(values: list) -> np.ndarray:
    """JSON numbers (None = missing) -> float array; numpy maps None to NaN."""
    return np.asarray(values, dtype=float)


def eligibility_reasons(apy: np.ndarray, observed_days: np.ndarray,
                        spec: ModelSpec) -> list[str | None]:
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
            matrix[:, j] = _column_to_numeric(columns[name])[rows]
        else:
            matrix[:, j] = _categorical_column(columns[name], rows)
    return matrix


def _dense_column_transformer(model: Any):
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
        if isinstance(step, str) and step != "drop":   # 'passthrough' needs the object path
            return None
    return transformer


def predict_proba_columns(model: Any, spec: ModelSpec, columns: dict,
                          rows: np.ndarray) -> np.ndarray:
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
        if isinstance(step, str):          # 'drop'
            continue
        names = [spec.features[i] for i in np.asarray(indices).tolist()]
        if all(name in spec.numeric_features for name in names):
            block = np.column_stack([_column_to_numeric(columns[n])[rows] for n in names])
        else:
            block = np.empty((len(rows), len(names)), dtype=object)
            for j, name in enumerate(names):
                if name in spec.numeric_features:
                    block[:, j] = _column_to_numeric(columns[name])[rows]
                else:
                    block[:, j] = _categorical_column(columns[name], rows)
        part = step.transform(block)
        # the ColumnTransformer densifies sparse parts when its output is dense
        blocks.append(part.toarray() if hasattr(part, "toarray") else part)
    proba = np.asarray(model.steps[-1][1].predict_proba(np.hstack(blocks)), dtype=float)
    if proba.ndim != 2 or proba.shape != (len(rows), 2):
        raise ModelIntegrityError(f"model returned probabilities of shape {proba.shape}, "
                                  f"expected ({len(rows)}, 2)")
    return proba


def score_published(model: Any, spec: ModelSpec, payload: dict, event_time: datetime,
                    stale_after_hours: float) -> dict[str, Any]:
    """Score every eligible pool of the column-wise published features.

    Stale features (older than `stale_after_hours` at the event time, counting a
    feature date as the end of its day) are scored but flagged.
    """
    n_rows, unused = check_feature_columns(payload, spec)
    columns = payload["columns"]
    apy = _column_to_numeric(columns["apy"])
    observed = _column_to_numeric(columns["observed_day_count"])
    reasons = eligibility_reasons(apy, observed, spec)
    eligible = [i for i, reason in enumerate(reasons) if reason is None]

    scored_at = event_time.strftime("%Y-%m-%dT%H:%M:%SZ")
    feature_dates = columns["snapshot_date"]
    stale_by_date = {d: feature_is_stale(d, event_time, stale_after_hours)
                     for d in set(feature_dates)}
    stale_flags = [stale_by_date[d] for d in feature_dates]

    # per-pool output columns: None / "not scored" unless the pool was scored
    status = np.full(n_rows, STATUS_NOT_SCORED, dtype=object)
    shown = [np.full(n_rows, None, dtype=object) for _ in range(5)]
    if eligible:
        rows = np.asarray(eligible)
        proba = predict_proba_columns(model, spec, columns, rows)
        status[rows] = STATUS_SCORED
        rounded = np.round(proba, 6).tolist()
        for column, values in zip(shown, ([p for p, _ in rounded], [p for _, p in rounded],
                                          *shown_fields(proba, spec.cutpoints))):
            column[rows] = values
    p_down, p_keep, classes, probabilities, confidences = (c.tolist() for c in shown)
    symbols = columns.get("symbol") or [None] * n_rows
    predictions = [
        {"pool_id": pool_id, "symbol": symbol, "status": state, "reason": reason,
         "p_down": down, "p_keep": keep, "predicted_class": shown_class,
         "predicted_probability": probability, "binned_confidence": confidence,
         "is_stale": stale, "feature_date": feature_date, "model_id": spec.model_id,
         "scored_at": scored_at}
        for pool_id, symbol, state, reason, down, keep, shown_class, probability, confidence,
        stale, feature_date in zip(columns["pool_id"], symbols, status.tolist(), reasons, p_down,
                                   p_keep, classes, probabilities, confidences, stale_flags,
                                   feature_dates)
    ]

    dates = [d for d in feature_dates if d]
    return {
        "format": PREDICTIONS_FORMAT,
        "model_id": spec.model_id,
        "event_time": scored_at,
        "feature_date_max": max(dates) if dates else None,
        "stale_after_hours": stale_after_hours,
        "unused_published_features": unused,
        "counts": {
            "pools": n_rows,
            "scored": len(eligible),
            "not_scored": n_rows - len(eligible),
            "stale": sum(stale_flags),
        },
        "predictions": predictions,
    }


def feature_is_stale(feature_date: str | None, event_time: datetime,
                     stale_after_hours: float) -> bool:
    """A feature day counts until its end (next midnight UTC); None is stale."""
    if not feature_date:
        return True
    day = date.fromisoformat(str(feature_date)[:10])
    day_end = datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp() + 86400
    age_hours = (event_time.timestamp() - day_end) / 3600.0
    return age_hours > stale_after_hours


def lookup(published: dict, pool_ids: Any, max_pools: int = MAX_LOOKUP_POOLS) -> dict[str, Any]:
    """Answer {"pools": [...]} from the latest published predictions."""
    if not isinstance(pool_ids, list) or not pool_ids:
        raise InputError("`pools` must be a non-empty JSON array of pool ids",
                         field="pools", code="bad_lookup")
    if len(pool_ids) > max_pools:
        raise InputError(f"lookup of {len(pool_ids)} pools is over the limit of {max_pools}",
                         status=413, field="pools", code="batch_too_large")
    for i, pool_id in enumerate(pool_ids):
        if not isinstance(pool_id, str):
            raise InputError(f"pools[{i}] must be a string pool id, got {type(pool_id).__name__}",
                             row=i, field="pools", code="unknown_type")
    index = {record["pool_id"]: record for record in published.get("predictions", [])}
    found = [index[p] for p in pool_ids if p in index]
    return {
        "pools": found,
        "not_found": [p for p in pool_ids if p not in index],
        "model_id": published.get("model_id"),
        "event_time": published.get("event_time"),
        "feature_date_max": published.get("feature_date_max"),
    }

