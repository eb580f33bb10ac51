"""The hourly publication: the binary features file's table in, the hourly
predictions document out (schema in the README, version in contracts). Pure:
no I/O.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np

from inference import contracts, monitoring, reasons
from inference.features import FeatureContractError, FeatureTable
from inference.health import STATUS_DEGRADED, feature_age_hours, health
from inference.model.portable import PortableModel
from inference.scoring import (
    eligibility_codes,
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
    age_hours = feature_age_hours(feature_date, event_time)
    return age_hours is None or age_hours > stale_after_hours


def inactive_days(
    feature_dates: list, event_time: datetime, limit: int = contracts.POOL_INACTIVE_AFTER_DAYS
) -> list[int | None]:
    """Whole days between the end of each pool's last snapshot day and the
    event time, for pools silent longer than `limit` days (else None)."""
    ages: dict = {}
    for day in set(feature_dates):
        if not day:
            ages[day] = None
            continue
        d = date.fromisoformat(str(day)[:10])
        end = datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() + 86400
        days = int((event_time.timestamp() - end) // 86400)
        ages[day] = days if days > limit else None
    return [ages[day] for day in feature_dates]


def unseen_categories(model: PortableModel, codes: dict[str, np.ndarray]) -> np.ndarray:
    """True where a pool's chain or project is not among the encoder's fitted
    categories at all (infrequent-but-seen is not unseen; missing is not)."""
    n = len(next(iter(codes.values()))) if codes else 0
    flags = np.zeros(n, dtype=bool)
    for name in contracts.UNSEEN_CATEGORY_FEATURES:
        column = model.categorical.get(name)
        if column is not None:
            flags |= codes[name] == column.unseen_code
    return flags


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


@dataclass(frozen=True)
class ScoredHour:
    """One hour's outputs: the predictions document, the ledger rows (one per
    served prediction, p_keep unrounded) and the monitoring document (None
    when the model's spec carries no drift reference)."""

    document: dict[str, Any]
    ledger: list[dict[str, Any]]
    monitoring: dict[str, Any] | None


def score_hour_published(
    model: PortableModel, table: FeatureTable, event_time: datetime, stale_after_hours: float
) -> ScoredHour:
    """score_published, with the hour's ledger rows and monitoring document."""
    with _without_cyclic_gc():
        return _score_published(model, table, event_time, stale_after_hours)


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
    return score_hour_published(model, table, event_time, stale_after_hours).document


def _score_published(
    model: PortableModel, table: FeatureTable, event_time: datetime, stale_after_hours: float
) -> ScoredHour:
    spec = model.spec
    unused = check_feature_columns(table, model)
    n_rows = table.row_count
    feature_dates = table.feature_dates
    rules = eligibility_codes(
        table.numeric_column("apy"), table.numeric_column("observed_day_count"), spec
    )
    reason_codes = [code for code, _ in rules]
    reasons_not_scored = [text for _, text in rules]
    # a pool silent for more than POOL_INACTIVE_AFTER_DAYS is not scored,
    # whatever else holds of it: the model has no business answering
    silent_days = inactive_days(feature_dates, event_time)
    for row, days in enumerate(silent_days):
        if days is not None:
            reason_codes[row] = contracts.NOT_SCORED_INACTIVE
            reasons_not_scored[row] = contracts.NOT_SCORED_INACTIVE
    numeric, codes = table_inputs(model, table)
    eligible = np.array([i for i, r in enumerate(reasons_not_scored) if r is None], dtype=np.intp)
    for row, reason in unusable_value_reasons(model, numeric, eligible).items():
        reasons_not_scored[row] = reason
        reason_codes[row] = contracts.NOT_SCORED_UNUSABLE_VALUE
    scored = np.array([i for i, r in enumerate(reasons_not_scored) if r is None], dtype=np.intp)
    unseen = unseen_categories(model, codes)
    unseen[[i for i, r in enumerate(reasons_not_scored) if r is not None]] = False

    scored_at = event_time.strftime("%Y-%m-%dT%H:%M:%SZ")
    stale_by_date = {
        d: feature_is_stale(d, event_time, stale_after_hours) for d in set(feature_dates)
    }
    stale_flags = [stale_by_date[d] for d in feature_dates]

    # per-pool output columns: None / "not scored" unless the pool was scored
    status = np.full(n_rows, STATUS_NOT_SCORED, dtype=object)
    shown = [np.full(n_rows, None, dtype=object) for _ in range(6)]
    raw_keep = np.zeros(0)
    if len(scored):
        scores = score_inputs(
            model,
            numeric.T[:, scored].T,  # rows picked, column-major kept
            {name: rows[scored] for name, rows in codes.items()},
            explain=True,
        )
        proba = scores.proba
        raw_keep = np.asarray(proba[:, 1], dtype=np.float64)
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
    words = [contracts.CONFIDENCE_WORDS.get(c) for c in confidences]

    def text(name: str) -> list:
        return table.text_column(name) if name in table.categorical_columns else [None] * n_rows

    def number(name: str) -> list:
        if name not in table.numeric_columns:
            return [None] * n_rows
        values = table.numeric_column(name)
        return [v if np.isfinite(v) else None for v in values.tolist()]

    model_id = spec.model_id
    predictions = [
        {
            "pool_id": pool_id,
            "symbol": symbol,
            "project": project,
            "chain": chain,
            "status": state,
            "reason": reason,
            "reason_code": code,
            "p_down": down,
            "p_keep": keep,
            "predicted_class": shown_class,
            "predicted_probability": probability,
            "binned_confidence": confidence,
            "confidence_words": word,
            "reasons": because,
            "apy": apy,
            "tvl_usd": tvl,
            "is_stale": stale,
            "is_inactive": days is not None,
            "inactive_days": days,
            "has_unseen_category": new_category,
            "feature_date": feature_date,
        }
        for (
            pool_id,
            symbol,
            project,
            chain,
            state,
            reason,
            code,
            down,
            keep,
            shown_class,
            probability,
            confidence,
            word,
            because,
            apy,
            tvl,
            stale,
            days,
            new_category,
            feature_date,
        ) in zip(
            table.pool_ids,
            text("symbol"),
            text("project"),
            text("chain"),
            status.tolist(),
            reasons_not_scored,
            reason_codes,
            p_down,
            p_keep,
            classes,
            probabilities,
            confidences,
            words,
            why,
            number("apy"),
            number("tvl_usd"),
            stale_flags,
            silent_days,
            unseen.tolist(),
            feature_dates,
            strict=True,
        )
    ]
    by_reason: dict[str, int] = {}
    for code in reason_codes:
        if code is not None:
            by_reason[code] = by_reason.get(code, 0) + 1

    dates = [d for d in feature_dates if d]
    feature_date_max = max(dates) if dates else None
    run_health = health(feature_date_max, event_time, stale_after_hours)
    watched = None
    if model.monitoring is not None:
        watched = _monitor(model, table, numeric, scored, raw_keep, event_time, feature_date_max)
        watched["counts"] = {
            "pools": n_rows,
            "scored": len(scored),
            "not_scored": n_rows - len(scored),
            "inactive": sum(days is not None for days in silent_days),
            "unseen_category": int(unseen.sum()),
            "stale": sum(stale_flags),
        }
        watched["shares"] = {
            key: (watched["counts"][key] / n_rows if n_rows else None)
            for key in ("scored", "not_scored", "inactive", "unseen_category", "stale")
        }
        drift_reasons, details = monitoring.drift_verdict(
            watched["drift"], watched["important_features"]
        )
        run_health = {
            "status": STATUS_DEGRADED if run_health["reasons"] or drift_reasons else "ok",
            "reasons": [*run_health["reasons"], *drift_reasons],
            **details,
        }
        watched["health"] = run_health
    document = {
        "schema_version": contracts.PREDICTIONS_SCHEMA_VERSION,
        "format": contracts.PREDICTIONS_FORMAT,
        "model_id": model_id,
        "event_time": scored_at,
        "feature_date_max": feature_date_max,
        "label": dict(spec.label),
        "stale_after_hours": stale_after_hours,
        "inactive_after_days": contracts.POOL_INACTIVE_AFTER_DAYS,
        "health": run_health,
        "unused_published_features": unused,
        "explanation": model.explanation(),
        "counts": {
            "pools": n_rows,
            "scored": len(scored),
            "not_scored": n_rows - len(scored),
            "not_scored_by_reason": dict(sorted(by_reason.items())),
            "stale": sum(stale_flags),
            "unseen_category": int(unseen.sum()),
        },
        "predictions": predictions,
    }
    ledger = ledger_rows(model, table, scored, raw_keep, predictions, scored_at)
    return ScoredHour(document, ledger, watched)


def ledger_rows(
    model: PortableModel,
    table: FeatureTable,
    scored: np.ndarray,
    p_keep: np.ndarray,
    predictions: list[dict],
    hour: str,
    source: str = "live",
) -> list[dict]:
    """One ledger row per served prediction: p_keep as float64 (not the
    rounded one), the class and bin by the contracts' rules, the cut-points
    and the label settings the prediction answers, the reasons' texts."""
    spec = model.spec
    label = {k: spec.label.get(k) for k in contracts.LABEL_SETTING_COLUMNS}
    low, high = spec.cutpoints
    rows = []
    for row, keep in zip(scored.tolist(), p_keep.tolist(), strict=True):
        record = predictions[row]
        rows.append(
            {
                "source": source,
                "pool_id": record["pool_id"],
                "hour": hour,
                "model_id": spec.model_id,
                "feature_date": record["feature_date"],
                "p_keep": keep,
                "predicted_class": record["predicted_class"],
                "binned_confidence": record["binned_confidence"],
                "cutpoint_low": low,
                "cutpoint_high": high,
                **label,
                "reasons": [r["text"] for r in record["reasons"] or []],
            }
        )
    return rows


def _monitor(
    model: PortableModel,
    table: FeatureTable,
    numeric: np.ndarray,
    scored: np.ndarray,
    p_keep: np.ndarray,
    event_time: datetime,
    feature_date_max: str | None,
) -> dict[str, Any]:
    """The hour's monitoring document (without counts and health)."""
    block = model.monitoring
    reference = block["reference"]
    live_numeric = {name: numeric[scored, j] for j, name in enumerate(model.numeric_features)}
    live_categorical = {}
    for name in model.spec.categorical_features:
        texts = table.text_column(name)
        live_categorical[name] = [texts[i] for i in scored.tolist()]
    entries = monitoring.drift(reference, live_numeric, live_categorical)
    importance = block.get("importance") or {}
    values = importance.get("values") or {}
    for entry in entries:
        entry["importance"] = values.get(entry["feature"])
    mix = reference.get("class_mix") or {}
    return {
        "schema_version": 1,
        "format": contracts.MONITORING_FORMAT,
        "model_id": model.spec.model_id,
        "event_time": event_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "feature_date_max": feature_date_max,
        "features_age_hours": feature_age_hours(feature_date_max, event_time),
        "reference": {k: reference.get(k) for k in ("days", "source", "first_day", "last_day")},
        "thresholds": {
            "drift": contracts.DRIFT_THRESHOLD,
            "important_features": contracts.DRIFT_IMPORTANT_FEATURES,
            "max_drifted_share": contracts.DRIFT_MAX_DRIFTED_SHARE,
        },
        "importance_method": importance.get("method"),
        "important_features": monitoring.important_features(importance),
        "class_mix": {
            "predicted_down_share": (
                float(np.mean(contracts.predicted_class_is_down(p_keep))) if len(p_keep) else None
            ),
            "reference_predicted_down_share": mix.get("predicted_down_share"),
            "reference_label_down_share": mix.get("label_down_share"),
        },
        "drift": entries,
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
        "label": published.get("label"),
        "explanation": published.get("explanation"),
    }
