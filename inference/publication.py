"""The hourly publication: the binary features file's table in, the hourly
predictions document out (schema in the README, version in contracts). Pure:
no I/O.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import numpy as np

from inference import contracts, monitoring, reasons
from inference.features import FeatureContractError, FeatureTable
from inference.health import STATUS_DEGRADED, feature_age_hours, health
from inference.model.portable import PortableModel
from inference.scoring import (
    eligibility,
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
def without_cyclic_gc() -> Iterator[None]:
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


class Stopwatch:
    """Seconds per named phase of one hourly run: the summary's breakdown
    (`ms`), logged with every run and read by benchmarks/inference_bench.py."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        """Charge the time since the last lap to `phase`."""
        now = time.perf_counter()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - self._last
        self._last = now

    def ms(self) -> dict[str, float]:
        return {phase: round(1000 * s, 1) for phase, s in self.seconds.items()}


@dataclass(frozen=True)
class ScoredHour:
    """One hour's outputs: the predictions document, the monitoring document
    (None when the model's spec carries no drift reference) and the ledger
    rows (one per served prediction, p_keep unrounded), built on first use:
    the hourly run builds them on its worker thread while latest.json goes up."""

    document: dict[str, Any]
    monitoring: dict[str, Any] | None
    ledger_inputs: tuple = field(repr=False)

    @functools.cached_property
    def ledger(self) -> list[dict[str, Any]]:
        return ledger_rows(*self.ledger_inputs)


@dataclass(frozen=True)
class PoolStates:
    """What the hour says of each pool before scoring: why it is not scored
    (code and words; None = scored), days silent beyond the inactivity limit,
    stale features, a category never seen in training, and the scored rows."""

    reason_codes: list[str | None]
    reasons: list[str | None]
    silent_days: list[int | None]
    stale: list[bool]
    unseen: list[bool]
    scored: np.ndarray


@dataclass(frozen=True)
class Shown:
    """What is shown of the scored rows (in `scored` order): the model's
    probabilities, DefiLlama's fields, the reasons (and their texts for the
    ledger), and p_keep unrounded."""

    p_down: list
    p_keep: list
    classes: list
    probabilities: list
    confidences: list
    words: list
    reasons: list
    reason_texts: list
    raw_keep: np.ndarray
    cutpoints: tuple[float, float]  # the hour's (ModelSpec.hour_cutpoints)


def score_hour_published(
    model: PortableModel,
    table: FeatureTable,
    event_time: datetime,
    stale_after_hours: float,
    clock: Stopwatch | None = None,
) -> ScoredHour:
    """score_published, with the hour's ledger rows and monitoring document;
    `clock` is charged with each phase."""
    with without_cyclic_gc():
        return _score_published(model, table, event_time, stale_after_hours, clock or Stopwatch())


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
    model: PortableModel,
    table: FeatureTable,
    event_time: datetime,
    stale_after_hours: float,
    clock: Stopwatch,
) -> ScoredHour:
    unused = check_feature_columns(table, model)
    numeric, codes = table_inputs(model, table)
    states = pool_states(model, table, numeric, codes, event_time, stale_after_hours)
    clock.lap("inputs")
    shown = show_scored(model, table, numeric, codes, states.scored, clock)
    predictions = records(table, states, shown)
    clock.lap("records")
    scored_at = event_time.strftime("%Y-%m-%dT%H:%M:%SZ")
    dates = [d for d in table.feature_dates if d]
    feature_date_max = max(dates) if dates else None
    run_health = health(feature_date_max, event_time, stale_after_hours, table.header)
    counts = hour_counts(table.row_count, states)
    watched = None
    if model.monitoring is not None:
        watched = _monitor(
            model, table, numeric, states, shown.raw_keep, event_time, feature_date_max
        )
        watched["counts"] = {key: counts[key] for key in MONITORED_COUNTS}
        n_rows = table.row_count
        watched["shares"] = {
            key: (counts[key] / n_rows if n_rows else None) for key in MONITORED_SHARES
        }
        drift_reasons, details = monitoring.drift_verdict(
            watched["drift"], watched["important_features"]
        )
        run_health = {
            **run_health,
            "status": STATUS_DEGRADED if run_health["reasons"] or drift_reasons else "ok",
            "reasons": [*run_health["reasons"], *drift_reasons],
            **details,
        }
        watched["health"] = run_health
        clock.lap("drift")
    document = {
        "schema_version": contracts.PREDICTIONS_SCHEMA_VERSION,
        "format": contracts.PREDICTIONS_FORMAT,
        "model_id": model.spec.model_id,
        "event_time": scored_at,
        "feature_date_max": feature_date_max,
        "label": dict(model.spec.label),
        "data_provenance": model.spec.data_provenance,
        "confidence_cutpoints": list(shown.cutpoints),  # the hour's
        "confidence": model.spec.confidence,
        "stale_after_hours": stale_after_hours,
        "inactive_after_days": contracts.POOL_INACTIVE_AFTER_DAYS,
        "health": run_health,
        "unused_published_features": unused,
        "explanation": model.explanation(),
        "counts": {key: counts[key] for key in DOCUMENT_COUNTS},
        "predictions": predictions,
    }
    return ScoredHour(document, watched, (model, table, states.scored, shown, scored_at))


# the counts of the hourly document and of the monitoring document, in order
DOCUMENT_COUNTS = (
    "pools",
    "scored",
    "not_scored",
    "not_scored_by_reason",
    "stale",
    "unseen_category",
)
MONITORED_COUNTS = ("pools", "scored", "not_scored", "inactive", "unseen_category", "stale")
MONITORED_SHARES = ("scored", "not_scored", "inactive", "unseen_category", "stale")


def hour_counts(n_rows: int, states: PoolStates) -> dict[str, Any]:
    by_reason: dict[str, int] = {}
    for code in states.reason_codes:
        if code is not None:
            by_reason[code] = by_reason.get(code, 0) + 1
    scored = len(states.scored)
    return {
        "pools": n_rows,
        "scored": scored,
        "not_scored": n_rows - scored,
        "not_scored_by_reason": dict(sorted(by_reason.items())),
        "stale": sum(states.stale),
        "unseen_category": sum(states.unseen),
        "inactive": sum(days is not None for days in states.silent_days),
    }


def pool_states(
    model: PortableModel,
    table: FeatureTable,
    numeric: np.ndarray,
    codes: dict[str, np.ndarray],
    event_time: datetime,
    stale_after_hours: float,
) -> PoolStates:
    """Who is scored: the eligibility rule, then inactivity (a pool silent for
    more than POOL_INACTIVE_AFTER_DAYS is not scored whatever else holds of
    it: the model has no business answering), then values the model cannot
    use; and each pool's flags."""
    codes_of, words = eligibility(
        table.numeric_column("apy"), table.numeric_column("observed_day_count"), model.spec
    )
    feature_dates = table.feature_dates
    silent_days = inactive_days(feature_dates, event_time)
    inactive = np.array([days is not None for days in silent_days], dtype=bool)
    codes_of[inactive] = contracts.NOT_SCORED_INACTIVE
    words[contracts.NOT_SCORED_INACTIVE] = contracts.NOT_SCORED_INACTIVE
    unusable = unusable_value_reasons(model, numeric, np.flatnonzero(np.equal(codes_of, None)))
    codes_of[list(unusable)] = contracts.NOT_SCORED_UNUSABLE_VALUE
    reason_codes = codes_of.tolist()
    words[contracts.NOT_SCORED_UNUSABLE_VALUE] = None  # each row's own, below
    reasons = [words[code] for code in reason_codes]
    for row, reason in unusable.items():
        reasons[row] = reason
    scored = np.flatnonzero(np.equal(codes_of, None))
    unseen = np.zeros(table.row_count, dtype=bool)
    unseen[scored] = unseen_categories(model, codes)[scored]
    stale_by_date = {
        d: feature_is_stale(d, event_time, stale_after_hours) for d in set(feature_dates)
    }
    return PoolStates(
        reason_codes,
        reasons,
        silent_days,
        [stale_by_date[d] for d in feature_dates],
        unseen.tolist(),
        scored,
    )


def show_scored(
    model: PortableModel,
    table: FeatureTable,
    numeric: np.ndarray,
    codes: dict[str, np.ndarray],
    scored: np.ndarray,
    clock: Stopwatch,
) -> Shown:
    """Score the scored rows, with their reasons."""
    if not len(scored):
        return Shown([], [], [], [], [], [], [], [], np.zeros(0), model.spec.cutpoints)
    spec = model.spec
    scores = score_inputs(
        model,
        numeric.T[:, scored].T,  # rows picked, column-major kept
        {name: rows[scored] for name, rows in codes.items()},
        explain=True,
    )
    proba = scores.proba
    rounded = np.round(proba, 6)
    classes, probabilities, confidences, cutpoints = shown_fields(proba[:, 1], spec)
    clock.lap("scoring")

    def value_of(name: str) -> Any:
        if name in spec.numeric_features:
            return numeric[scored, model.numeric_features.index(name)]
        vocabulary, file_codes = table.categorical_column(name)
        return np.array([*vocabulary, None], dtype=object)[file_codes[scored]]

    why, texts = reasons.explain(spec.features, scores.contributions, value_of)
    clock.lap("reasons")
    return Shown(
        rounded[:, 0].tolist(),
        rounded[:, 1].tolist(),
        classes,
        probabilities,
        confidences,
        [contracts.CONFIDENCE_WORDS[c] for c in confidences],
        why,
        texts,
        np.asarray(proba[:, 1], dtype=np.float64),
        cutpoints,
    )


def records(table: FeatureTable, states: PoolStates, shown: Shown) -> list[dict[str, Any]]:
    """One record per pool, in the file's order: its fields by name (a pool
    not scored has None for what only scoring gives)."""
    n_rows = table.row_count
    rows = states.scored.tolist()

    def spread(values: list, fill: Any = None) -> list:
        if len(rows) == n_rows:
            return values
        out = [fill] * n_rows
        for row, value in zip(rows, values, strict=True):
            out[row] = value
        return out

    def text(name: str) -> list:
        return table.text_column(name) if name in table.categorical_columns else [None] * n_rows

    def number(name: str) -> list:
        if name not in table.numeric_columns:
            return [None] * n_rows
        values = table.numeric_column(name)
        return np.where(np.isfinite(values), values, None).tolist()

    fields = {
        "pool_id": table.pool_ids,
        "symbol": text("symbol"),
        "project": text("project"),
        "chain": text("chain"),
        "status": spread([STATUS_SCORED] * len(rows), STATUS_NOT_SCORED),
        "reason": states.reasons,
        "reason_code": states.reason_codes,
        "p_down": spread(shown.p_down),
        "p_keep": spread(shown.p_keep),
        "predicted_class": spread(shown.classes),
        "predicted_probability": spread(shown.probabilities),
        "binned_confidence": spread(shown.confidences),
        "confidence_words": spread(shown.words),
        "reasons": spread(shown.reasons),
        "apy": number("apy"),
        "tvl_usd": number("tvl_usd"),
        "is_stale": states.stale,
        "is_inactive": [days is not None for days in states.silent_days],
        "inactive_days": states.silent_days,
        "has_unseen_category": states.unseen,
        "feature_date": table.feature_dates,
    }
    # field by field into the records (as fast as one dict literal per pool,
    # a third faster than dict(zip(...)) per pool); the fields keep this order
    predictions: list[dict[str, Any]] = [{} for _ in range(n_rows)]
    for name, values in fields.items():
        for record, value in zip(predictions, values, strict=True):
            record[name] = value
    return predictions


def ledger_rows(
    model: PortableModel,
    table: FeatureTable,
    scored: np.ndarray,
    shown: Shown,
    hour: str,
    source: str = "live",
) -> list[dict]:
    """One ledger row per served prediction: p_keep as float64 (not the
    rounded one), the class and bin by the contracts' rules, the cut-points
    and the label settings the prediction answers, the reasons' texts."""
    spec = model.spec
    label = {k: spec.label.get(k) for k in contracts.LABEL_SETTING_COLUMNS}
    low, high = shown.cutpoints
    pool_ids, dates = table.pool_ids, table.feature_dates
    return [
        {
            "source": source,
            "pool_id": pool_ids[row],
            "hour": hour,
            "model_id": spec.model_id,
            "feature_date": dates[row],
            "p_keep": keep,
            "predicted_class": shown_class,
            "binned_confidence": confidence,
            "cutpoint_low": low,
            "cutpoint_high": high,
            **label,
            "reasons": texts,
        }
        for row, keep, shown_class, confidence, texts in zip(
            scored.tolist(),
            shown.raw_keep.tolist(),
            shown.classes,
            shown.confidences,
            shown.reason_texts,
            strict=True,
        )
    ]


def _monitor(
    model: PortableModel,
    table: FeatureTable,
    numeric: np.ndarray,
    states: PoolStates,
    p_keep: np.ndarray,
    event_time: datetime,
    feature_date_max: str | None,
) -> dict[str, Any]:
    """The hour's monitoring document (without counts and health): the
    scored rows' drift against the reference."""
    block = model.monitoring
    reference = block["reference"]
    scored = states.scored
    live_categorical = {}
    for name in model.spec.categorical_features:
        vocabulary, file_codes = table.categorical_column(name)
        live_categorical[name] = (vocabulary, file_codes[scored])
    entries = monitoring.drift_columns(
        reference, model.numeric_features, numeric.T[:, scored], live_categorical
    )
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
