"""The hourly publication: the binary features file's table in, the hourly
predictions document out (schema in the README, version in contracts). Pure:
no I/O.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import numpy as np

from inference import contracts, reasons
from inference.features import FeatureContractError, FeatureTable
from inference.portable import PortableModel
from inference.scoring import (
    eligibility_reasons,
    score_inputs,
    shown_fields,
    table_inputs,
    unusable_value_reasons,
)
from inference.validation import lookup_pool_ids

STATUS_SCORED = "scored"
STATUS_NOT_SCORED = "not scored"
# columns every published features file carries besides the model's features
REQUIRED_NUMERIC_COLUMNS = ("apy", "observed_day_count")


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


def check_feature_columns(table: FeatureTable, model: PortableModel) -> list[str]:
    """Raise unless every model feature is published with the model's kind.

    Returns the published feature names the model does not use (logged by the
    handler, not fatal: the pipeline may add a feature before the next retrain).
    """
    spec = model.spec
    numeric, categorical = set(table.numeric_columns), set(table.categorical_columns)
    missing = sorted(
        name
        for name in [*spec.features, *REQUIRED_NUMERIC_COLUMNS]
        if name not in numeric | categorical
    )
    if missing:
        raise FeatureContractError(f"published features lack columns the model needs: {missing}")
    for kind, published, other in (
        ("numeric", numeric, spec.categorical_features),
        ("categorical", categorical, spec.numeric_features),
    ):
        retyped = sorted(published & other)
        declared = sorted(set(table.header.get(kind) or []) & other)
        if retyped or declared:
            raise FeatureContractError(
                f"published features call {retyped or declared} {kind}, the model does not"
            )
    wrongly_text = [c for c in REQUIRED_NUMERIC_COLUMNS if c not in numeric]
    if wrongly_text:
        raise FeatureContractError(f"published features hold {wrongly_text} as text, not numbers")
    return sorted(set(table.header.get("features") or []) - set(spec.features))


def feature_is_stale(
    feature_date: str | None, event_time: datetime, stale_after_hours: float
) -> bool:
    """A feature day counts until its end (next midnight UTC); None is stale."""
    if not feature_date:
        return True
    day = date.fromisoformat(str(feature_date)[:10])
    day_end = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() + 86400
    age_hours = (event_time.timestamp() - day_end) / 3600.0
    return age_hours > stale_after_hours


@contextlib.contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    """Building 20k records with their reasons allocates ~100k containers and
    no reference cycles; the cyclic collector's passes over them cost about a
    fifth of the build (benchmarks/RESULTS.md). Reference counting still frees
    everything; the collector is switched back on at the end."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def score_published(
    model: PortableModel, table: FeatureTable, event_time: datetime, stale_after_hours: float
) -> dict[str, Any]:
    """Score every eligible pool of the published features, with its reasons.

    Not scored, with the reason: pools outside the eligibility rule, and pools
    holding a value the model cannot use (beyond float32's range, infinite),
    named by feature; every other pool is scored. Stale features (older than
    `stale_after_hours` at the event time, counting a feature date as the end
    of its day) are scored but flagged.
    """
    with _without_cyclic_gc():
        return _score_published(model, table, event_time, stale_after_hours)


def _score_published(
    model: PortableModel, table: FeatureTable, event_time: datetime, stale_after_hours: float
) -> dict[str, Any]:
    spec = model.spec
    unused = check_feature_columns(table, model)
    n_rows = table.row_count
    reasons_not_scored = eligibility_reasons(
        table.numeric_column("apy"), table.numeric_column("observed_day_count"), spec
    )
    numeric, codes = table_inputs(model, table)
    eligible = np.array([i for i, r in enumerate(reasons_not_scored) if r is None], dtype=np.intp)
    for row, reason in unusable_value_reasons(model, numeric, eligible).items():
        reasons_not_scored[row] = reason
    scored = np.array([i for i, r in enumerate(reasons_not_scored) if r is None], dtype=np.intp)

    scored_at = event_time.strftime("%Y-%m-%dT%H:%M:%SZ")
    feature_dates = table.feature_dates
    stale_by_date = {
        d: feature_is_stale(d, event_time, stale_after_hours) for d in set(feature_dates)
    }
    stale_flags = [stale_by_date[d] for d in feature_dates]

    # per-pool output columns: None / "not scored" unless the pool was scored
    status = np.full(n_rows, STATUS_NOT_SCORED, dtype=object)
    shown = [np.full(n_rows, None, dtype=object) for _ in range(6)]
    if len(scored):
        scores = score_inputs(
            model,
            numeric.T[:, scored].T,  # rows picked, column-major kept
            {name: rows[scored] for name, rows in codes.items()},
            explain=True,
        )
        proba = scores.proba
        status[scored] = STATUS_SCORED
        rounded = np.round(proba, 6)

        def value_of(name: str) -> Any:
            if name in spec.numeric_features:
                return numeric[scored, model.numeric_features.index(name)]
            texts = table.text_column(name)
            return [texts[i] for i in scored.tolist()]

        explained = reasons.explain(spec.features, scores.contributions, value_of)
        for column, values in zip(
            shown,
            (
                rounded[:, 0].tolist(),
                rounded[:, 1].tolist(),
                *shown_fields(proba[:, 1], spec.cutpoints),
                explained,
            ),
            strict=True,
        ):
            column[scored] = values
    p_down, p_keep, classes, probabilities, confidences, why = (c.tolist() for c in shown)
    symbols = (
        table.text_column("symbol") if "symbol" in table.categorical_columns else [None] * n_rows
    )
    model_id = spec.model_id
    predictions = [
        {
            "pool_id": pool_id,
            "symbol": symbol,
            "status": state,
            "reason": reason,
            "p_down": down,
            "p_keep": keep,
            "predicted_class": shown_class,
            "predicted_probability": probability,
            "binned_confidence": confidence,
            "reasons": because,
            "is_stale": stale,
            "feature_date": feature_date,
            "model_id": model_id,
            "scored_at": scored_at,
        }
        for (
            pool_id,
            symbol,
            state,
            reason,
            down,
            keep,
            shown_class,
            probability,
            confidence,
            because,
            stale,
            feature_date,
        ) in zip(
            table.pool_ids,
            symbols,
            status.tolist(),
            reasons_not_scored,
            p_down,
            p_keep,
            classes,
            probabilities,
            confidences,
            why,
            stale_flags,
            feature_dates,
            strict=True,
        )
    ]

    dates = [d for d in feature_dates if d]
    return {
        "schema_version": contracts.PREDICTIONS_SCHEMA_VERSION,
        "format": contracts.PREDICTIONS_FORMAT,
        "model_id": model_id,
        "event_time": scored_at,
        "feature_date_max": max(dates) if dates else None,
        "stale_after_hours": stale_after_hours,
        "unused_published_features": unused,
        "explanation": model.explanation(),
        "counts": {
            "pools": n_rows,
            "scored": len(scored),
            "not_scored": n_rows - len(scored),
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
        "explanation": published.get("explanation"),
    }
