"""The hourly publication: column-wise published features in, the hourly
predictions document out (schema in the README, version in contracts). Pure:
no I/O.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from inference import contracts
from inference.artefact import ModelSpec
from inference.health import feature_age_hours, health
from inference.scoring import (
    column_to_numeric,
    eligibility_reasons,
    predict_proba_columns,
    shown_fields,
)
from inference.validation import lookup_pool_ids

STATUS_SCORED = "scored"
STATUS_NOT_SCORED = "not scored"
# columns every published features document carries besides the model's features
REQUIRED_COLUMNS = ("pool_id", "snapshot_date", "apy", "observed_day_count")


class FeatureContractError(RuntimeError):
    """Published features do not match the model's feature list."""


def parse_event_time(value: Any) -> datetime:
    """EventBridge `time` ("2025-06-06T00:00:00Z") -> aware UTC datetime."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"scheduled event has no `time`: {value!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise ValueError(f"scheduled event `time` is not ISO 8601: {value!r}") from error
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def check_feature_columns(payload: dict, spec: ModelSpec) -> tuple[int, list[str]]:
    """Row count of column-wise features; raise unless every model feature is there.

    Returns the published feature names the model does not use (logged by the
    handler, not fatal: the pipeline may add a feature before the next retrain).
    """
    if payload.get("format") != contracts.FEATURES_FORMAT:
        raise FeatureContractError(
            f"published features have format {payload.get('format')!r}, "
            f"expected {contracts.FEATURES_FORMAT!r}"
        )
    columns = payload.get("columns")
    if not isinstance(columns, dict):
        raise FeatureContractError("published features have no `columns` object")
    missing = [name for name in list(spec.features) + list(REQUIRED_COLUMNS) if name not in columns]
    if missing:
        raise FeatureContractError(
            f"published features lack columns the model needs: {sorted(set(missing))}"
        )
    for kind, other in (
        ("numeric", spec.categorical_features),
        ("categorical", spec.numeric_features),
    ):
        published_kind = set(payload.get(kind) or [])
        retyped = sorted(published_kind & other)
        if retyped:
            raise FeatureContractError(
                f"published features call {retyped} {kind}, the model does not"
            )
    published_features = payload.get("features") or []
    unused = sorted(set(published_features) - set(spec.features))
    lengths = {len(values) for values in columns.values()}
    if len(lengths) > 1:
        raise FeatureContractError(f"published columns have different lengths: {sorted(lengths)}")
    return (lengths.pop() if lengths else 0), unused


def feature_is_stale(
    feature_date: str | None, event_time: datetime, stale_after_hours: float
) -> bool:
    """A feature day counts until its end (next midnight UTC); None is stale."""
    age_hours = feature_age_hours(feature_date, event_time)
    return age_hours is None or age_hours > stale_after_hours


def score_published(
    model: Any, spec: ModelSpec, payload: dict, event_time: datetime, stale_after_hours: float
) -> dict[str, Any]:
    """Score every eligible pool of the column-wise published features.

    Stale features (older than `stale_after_hours` at the event time, counting a
    feature date as the end of its day) are scored but flagged.
    """
    n_rows, unused = check_feature_columns(payload, spec)
    columns = payload["columns"]
    apy = column_to_numeric(columns["apy"])
    observed = column_to_numeric(columns["observed_day_count"])
    reasons = eligibility_reasons(apy, observed, spec)
    eligible = [i for i, reason in enumerate(reasons) if reason is None]

    scored_at = event_time.strftime("%Y-%m-%dT%H:%M:%SZ")
    feature_dates = columns["snapshot_date"]
    stale_by_date = {
        d: feature_is_stale(d, event_time, stale_after_hours) for d in set(feature_dates)
    }
    stale_flags = [stale_by_date[d] for d in feature_dates]

    # per-pool output columns: None / "not scored" unless the pool was scored
    status = np.full(n_rows, STATUS_NOT_SCORED, dtype=object)
    shown = [np.full(n_rows, None, dtype=object) for _ in range(5)]
    if eligible:
        rows = np.asarray(eligible)
        proba = predict_proba_columns(model, spec, columns, rows)
        status[rows] = STATUS_SCORED
        rounded = np.round(proba, 6).tolist()
        for column, values in zip(
            shown,
            (
                [p for p, _ in rounded],
                [p for _, p in rounded],
                *shown_fields(proba[:, 1], spec.cutpoints),
            ),
            strict=True,
        ):
            column[rows] = values
    p_down, p_keep, classes, probabilities, confidences = (c.tolist() for c in shown)
    symbols = columns.get("symbol") or [None] * n_rows
    predictions = [
        {
            "pool_id": pool_id,
            "symbol": symbol,
            "apy": pool_apy,
            "status": state,
            "reason": reason,
            "p_down": down,
            "p_keep": keep,
            "predicted_class": shown_class,
            "predicted_probability": probability,
            "binned_confidence": confidence,
            "is_stale": stale,
            "feature_date": feature_date,
            "model_id": spec.model_id,
            "scored_at": scored_at,
        }
        for (
            pool_id,
            symbol,
            pool_apy,
            state,
            reason,
            down,
            keep,
            shown_class,
            probability,
            confidence,
            stale,
            feature_date,
        ) in zip(
            columns["pool_id"],
            symbols,
            columns["apy"],
            status.tolist(),
            reasons,
            p_down,
            p_keep,
            classes,
            probabilities,
            confidences,
            stale_flags,
            feature_dates,
            strict=True,
        )
    ]

    dates = [d for d in feature_dates if d]
    feature_date_max = max(dates) if dates else None
    return {
        "schema_version": contracts.PREDICTIONS_SCHEMA_VERSION,
        "format": contracts.PREDICTIONS_FORMAT,
        "model_id": spec.model_id,
        "event_time": scored_at,
        "feature_date_max": feature_date_max,
        "stale_after_hours": stale_after_hours,
        "health": health(feature_date_max, event_time, stale_after_hours),
        "unused_published_features": unused,
        "counts": {
            "pools": n_rows,
            "scored": len(eligible),
            "not_scored": n_rows - len(eligible),
            "stale": sum(stale_flags),
        },
        "predictions": predictions,
    }


def lookup(
    published: dict, pool_ids: Any, max_pools: int = contracts.MAX_LOOKUP_POOLS
) -> dict[str, Any]:
    """Answer {"pools": [...]} from the latest published predictions."""
    pool_ids = lookup_pool_ids(pool_ids, max_pools)
    index = {record["pool_id"]: record for record in published.get("predictions", [])}
    return {
        "pools": [index[p] for p in pool_ids if p in index],
        "not_found": [p for p in pool_ids if p not in index],
        "model_id": published.get("model_id"),
        "event_time": published.get("event_time"),
        "feature_date_max": published.get("feature_date_max"),
    }
