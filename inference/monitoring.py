"""Drift: the reference training stores with the model (`reference`, the spec's
`monitoring.reference`) and the hourly comparison the Lambda makes against it
(`drift`, `drift_verdict`): W1/std to the nearest reference day net of sampling
error, Jensen-Shannon and PSI, and the health rule.

Imports: numpy, the standard library and inference/ (floor 1). No scipy: the
Lambda ships numpy alone, and training (models_py/export.py) and serving must
compute with the same code.

What is compared and why (one day's cross-section against each reference day,
not the pooled window): docs/monitoring.md#drift. The thresholds and limits are
the DRIFT_* facts of inference/contracts.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from inference import contracts
from inference.model.artefact import json_scalar

IMPORTANT_FEATURE_DRIFT = "important_feature_drift"
WIDESPREAD_DRIFT = "widespread_drift"
# PSI's shares are floored at this so an empty bin gives a finite value
PSI_FLOOR = 1e-4


def _levels() -> np.ndarray:
    """The midpoints of DRIFT_QUANTILE_LEVELS equal slices of 0..1 (0.005 ..
    0.995 for 100): the minimum and maximum, which a heavy tail (TVL) makes
    swing from sample to sample, are never compared."""
    n = contracts.DRIFT_QUANTILE_LEVELS
    return (np.arange(n) + 0.5) / n


LEVELS = _levels()
LEVELS.setflags(write=False)


def _finite(values: Any) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return values[np.isfinite(values)]


def _category_keys(values: Sequence[Any]) -> list[str]:
    return [contracts.DRIFT_MISSING_CATEGORY if v is None else str(v) for v in values]


def _shares(keys: list[str], categories: list[str]) -> np.ndarray:
    """Share of each of `categories` (values outside them count as 'other')."""
    counts = _counts(keys, categories)
    return counts / counts.sum() if counts.sum() else counts


def _day_codes(days: Any) -> tuple[np.ndarray, np.ndarray]:
    """(the sorted distinct day labels, each row's index among them)."""
    names, codes = np.unique(np.asarray(days).astype(str), return_inverse=True)
    return names, codes.reshape(-1)


def _daily(x: np.ndarray, names: np.ndarray, codes: np.ndarray) -> dict:
    """Per day of the window (sorted): its finite values' count and quantiles
    (`quantiles`: one row of DRIFT_QUANTILE_LEVELS per day); days with fewer
    than contracts.DRIFT_MIN_DAY_ROWS values are left out (their quantiles
    are noise). The portable spec moves `quantiles` into its arrays file
    (models_py/export.py; inference/portable.py puts it back on load)."""
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    days, rows, quantiles = [], [], []
    for i, name in enumerate(names.tolist()):
        values = x[order[bounds[i] : bounds[i + 1]]]
        if len(values) >= contracts.DRIFT_MIN_DAY_ROWS:
            days.append(name)
            rows.append(len(values))
            quantiles.append(np.quantile(values, _levels()).tolist())
    return {"days": days, "rows": rows, "quantiles": quantiles}


def numeric_reference(values: Any, days: Any = None, _codes: tuple | None = None) -> dict:
    """The reference of one numeric feature (see the module's docstring);
    `days` (one label per value, e.g. the snapshot date) adds the per-day
    quantiles the comparison uses (`_codes`: reference()'s _day_codes of
    them, computed once for all features)."""
    raw = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(raw)
    x = raw[finite]
    missing = float(1 - len(x) / len(raw)) if len(raw) else 0.0
    if not len(x):
        return {"kind": "numeric", "rows": 0, "missing_share": missing}
    quantiles = np.quantile(x, _levels())
    edges = np.unique(np.quantile(x, np.linspace(0, 1, contracts.DRIFT_PSI_BINS + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1)
    out = {
        "kind": "numeric",
        "rows": len(x),
        "missing_share": missing,
        "std": float(np.std(x)),
        "quantiles": quantiles.tolist(),
        "psi_edges": edges.tolist(),
        "psi_shares": (counts / len(x)).tolist(),
    }
    if days is not None or _codes is not None:
        names, codes = _codes if _codes is not None else _day_codes(days)
        if len(codes) != len(raw):
            raise ValueError(f"{len(codes)} day labels for {len(raw)} values")
        out["daily"] = _daily(x, names, codes[finite])
    return out


def categorical_reference(values: Sequence[Any]) -> dict:
    keys = _category_keys(values)
    found: dict[str, int] = {}
    for key in keys:
        found[key] = found.get(key, 0) + 1
    top = sorted(found, key=lambda k: (-found[k], k))[: contracts.DRIFT_MAX_CATEGORIES]
    categories = [*sorted(top), contracts.DRIFT_OTHER_CATEGORY]
    return {
        "kind": "categorical",
        "rows": len(keys),
        "categories": categories,
        "shares": _shares(keys, categories).tolist(),
    }


def reference(
    numeric: dict[str, Any],
    categorical: dict[str, Sequence[Any]],
    label_down_share: float | None,
    predicted_down_share: float | None,
    first_day: str,
    last_day: str,
    source: str = contracts.DRIFT_SOURCE_FEATURES,
    days: Any = None,
) -> dict:
    """The drift reference of a model: per feature, and the class mix;
    `source` names the rows it describes (contracts.DRIFT_SOURCE_*), `days`
    each row's day (the numeric features' per-day quantiles)."""
    codes = None if days is None else _day_codes(days)
    features = {name: numeric_reference(v, _codes=codes) for name, v in numeric.items()}
    features |= {name: categorical_reference(v) for name, v in categorical.items()}
    return {
        "days": contracts.DRIFT_REFERENCE_DAYS,
        "source": source,
        "first_day": first_day,
        "last_day": last_day,
        "quantile_levels": contracts.DRIFT_QUANTILE_LEVELS,
        "features": features,
        "class_mix": {
            "label_down_share": label_down_share,
            "predicted_down_share": predicted_down_share,
        },
    }


# --------------------------------------------------------------------------- comparison


def _w1(q_live: np.ndarray, q_ref: Any) -> float:
    """Wasserstein-1 of two quantile functions on the same levels."""
    return float(np.abs(q_live - np.asarray(q_ref, dtype=np.float64)).mean())


def sampling_scale(ref: dict) -> float:
    """J = the integral of sqrt(F(1 - F)) dx over the reference's quantile
    grid (between the 0.5% and 99.5% levels, where W is measured). The
    expected W1 between an n-row sample and its distribution is at most
    J / sqrt(n), as E|F_n(x) - F(x)| <= sqrt(F(x)(1 - F(x)) / n); between two
    independent samples of n and m rows drawn alike, J * sqrt(1/n + 1/m).
    Taken from the reference, never from the live rows: a live sample spread
    wide on purpose must not widen its own allowance."""
    q = np.asarray(ref["quantiles"], dtype=np.float64)
    levels = _levels()
    between = (levels[1:] + levels[:-1]) / 2
    return float(np.sum(np.sqrt(between * (1 - between)) * np.diff(q)))


def sorted_quantiles(x: np.ndarray) -> np.ndarray:
    """np.quantile(x, levels) (its default, linear method) of a SORTED array,
    to the bit, without partitioning it again: the same indices, weights and
    interpolation as numpy's `_quantile`/`_lerp` (tests/test_monitoring.py
    holds them equal)."""
    n = len(x)
    virtual = (n - 1) * LEVELS
    previous = np.floor(virtual)
    following = previous + 1
    above = virtual >= n - 1
    previous[above] = -1
    following[above] = -1
    previous_at, following_at = previous.astype(np.intp), following.astype(np.intp)
    gamma = virtual - previous_at
    low, high = x[previous_at], x[following_at]
    step = high - low
    out = low + step * gamma
    np.subtract(high, step * (1 - gamma), out=out, where=gamma >= 0.5)
    return out


def numeric_drift(live: Any, ref: dict) -> dict | None:
    """The numeric comparison (see the module's docstring) of live values."""
    return _numeric_scores(np.sort(_finite(live)), ref)


def _numeric_scores(x: np.ndarray, ref: dict) -> dict | None:
    """`score` (W/std to the nearest reference day, net of the sampling
    error, floored at 0), `pooled_score` (W/std to the pooled window, as
    measured), `sampling_error` (W/std the two samples' sizes alone account
    for, at the nearest day) and `nearest_day`, of the SORTED finite live
    values `x`; None when either side has no values. A constant reference: 0
    when live equals it, else infinity (any change of a constant is drift)."""
    if not len(x) or not ref.get("rows"):
        return None
    q_live = sorted_quantiles(x)
    pooled = _w1(q_live, ref["quantiles"])
    std = float(ref["std"])
    if std <= 0:
        score = 0.0 if pooled == 0 else math.inf
        return {"score": score, "pooled_score": score, "sampling_error": 0.0, "nearest_day": None}
    j = sampling_scale(ref)
    daily = ref.get("daily") or {}
    if daily.get("days"):
        quantiles = np.asarray(daily["quantiles"], dtype=np.float64)
        rows = np.asarray(daily["rows"], dtype=np.float64)
        names = list(daily["days"])
    else:
        quantiles = np.asarray([ref["quantiles"]], dtype=np.float64)
        rows = np.asarray([ref["rows"]], dtype=np.float64)
        names = [None]
    errors = j * np.sqrt(1 / len(x) + 1 / rows)
    nets = np.abs(quantiles - q_live).mean(axis=1) - errors
    k = int(np.argmin(nets))
    net, error, nearest = float(nets[k]), float(errors[k]), names[k]
    return {
        "score": max(0.0, net) / std,
        "pooled_score": pooled / std,
        "sampling_error": error / std,
        "nearest_day": nearest,
    }


def psi(actual: np.ndarray, expected: np.ndarray) -> float:
    """Population stability index of two share vectors (floored at PSI_FLOOR)."""
    a = np.maximum(np.asarray(actual, dtype=np.float64), PSI_FLOOR)
    e = np.maximum(np.asarray(expected, dtype=np.float64), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def numeric_psi(live: Any, ref: dict) -> float | None:
    return _sorted_psi(np.sort(_finite(live)), ref)


def _sorted_psi(x: np.ndarray, ref: dict) -> float | None:
    """PSI over the reference's bins of SORTED finite values: a bin holds
    edges[i-1] <= x < edges[i], so its count is a difference of positions."""
    if not len(x) or not ref.get("rows"):
        return None
    edges = np.asarray(ref["psi_edges"], dtype=np.float64)
    below = np.searchsorted(x, edges, side="left")
    counts = np.diff(np.concatenate(([0], below, [len(x)])))
    return psi(counts / len(x), np.asarray(ref["psi_shares"]))


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance, base 2 (0 = same shares, 1 = disjoint)."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / m[mask])))

    return math.sqrt(max(0.0, (kl(p) + kl(q)) / 2))


def feature_drift(name: str, live: Any, ref: dict) -> dict:
    """One feature's drift entry of the monitoring document: numeric values
    (NaN missing) or text (None missing), by the reference's kind."""
    if ref["kind"] == "numeric":
        values = np.asarray(live, dtype=np.float64)
        return _numeric_entry(name, np.sort(_finite(values)), len(values), ref)
    return _categorical_entry(name, _counts(_category_keys(live), ref["categories"]), ref)


def _numeric_entry(name: str, x: np.ndarray, total: int, ref: dict) -> dict:
    """The entry of a numeric feature from its SORTED finite live values `x`
    of `total` rows."""
    found = _numeric_scores(x, ref) or {}
    entry = {
        "feature": name,
        "kind": "numeric",
        "metric": "wasserstein_over_std",
        "score": found.get("score"),
        "pooled_score": found.get("pooled_score"),
        "sampling_error": found.get("sampling_error"),
        "nearest_day": found.get("nearest_day"),
        "psi": _sorted_psi(x, ref),
        "missing_share": float(1 - len(x) / total) if total else None,
        "reference_missing_share": ref.get("missing_share"),
    }
    return _judged(name, entry)


def _categorical_entry(name: str, counts: np.ndarray, ref: dict) -> dict:
    """The entry of a categorical feature from its live counts over the
    reference's categories."""
    total = counts.sum()
    shares = counts / total if total else counts
    expected = np.asarray(ref["shares"], dtype=np.float64)
    entry = {
        "feature": name,
        "kind": "categorical",
        "metric": "jensen_shannon",
        "score": jensen_shannon(shares, expected) if total else None,
        "psi": psi(shares, expected) if total else None,
    }
    return _judged(name, entry)


def _judged(name: str, entry: dict) -> dict:
    score = entry["score"]
    entry["drifted"] = score is not None and score > contracts.DRIFT_THRESHOLD
    entry["counted"] = name not in contracts.DRIFT_CALENDAR_FEATURES
    for key in ("score", "pooled_score"):
        if entry.get(key) is not None and not math.isfinite(entry[key]):
            entry[key] = None  # JSON has no infinity; `drifted` says it
    return entry


def drift(
    reference_block: dict, numeric: dict[str, np.ndarray], categorical: dict[str, Sequence]
) -> list[dict]:
    """Per-feature drift of the live values against the reference, in the
    reference's feature order; features the reference lacks are skipped."""
    out = []
    for name, ref in reference_block["features"].items():
        if ref["kind"] == "numeric" and name in numeric:
            out.append(feature_drift(name, numeric[name], ref))
        elif ref["kind"] == "categorical" and name in categorical:
            out.append(feature_drift(name, categorical[name], ref))
    return out


def drift_columns(
    reference_block: dict,
    names: Sequence[str],
    columns: np.ndarray,
    categorical: dict[str, tuple[Sequence[str], np.ndarray]],
) -> list[dict]:
    """drift() of the hourly run, the same entries for less work: numeric
    features as the rows of `columns` (feature-major, one row per name in
    `names`), all sorted in one call; categorical ones as (vocabulary, codes
    with -1 = missing), counted by code rather than by string."""
    rows = {name: j for j, name in enumerate(names)}
    ordered = np.sort(columns, axis=1)  # NaN last, -inf first, +inf before NaN
    total = columns.shape[1]
    out = []
    for name, ref in reference_block["features"].items():
        if ref["kind"] == "numeric" and name in rows:
            row = ordered[rows[name]]
            low = np.searchsorted(row, -np.inf, side="right")
            high = np.searchsorted(row, np.inf, side="left")
            out.append(_numeric_entry(name, row[low:high], total, ref))
        elif ref["kind"] == "categorical" and name in categorical:
            vocabulary, codes = categorical[name]
            out.append(_categorical_entry(name, _code_counts(vocabulary, codes, ref), ref))
    return out


def _counts(keys: list[str], categories: list[str]) -> np.ndarray:
    """Count of each of `categories` (values outside them count as 'other')."""
    index = {c: i for i, c in enumerate(categories)}
    other = index[contracts.DRIFT_OTHER_CATEGORY]
    counts = np.zeros(len(categories))
    for key in keys:
        counts[index.get(key, other)] += 1
    return counts


def _code_counts(vocabulary: Sequence[str], codes: np.ndarray, ref: dict) -> np.ndarray:
    """_counts of the values codes name (-1 = missing), one lookup per
    vocabulary entry instead of one per row."""
    categories = ref["categories"]
    index = {c: i for i, c in enumerate(categories)}
    other = index[contracts.DRIFT_OTHER_CATEGORY]
    keys = [*(str(v) for v in vocabulary), contracts.DRIFT_MISSING_CATEGORY]  # -1: the last
    mapping = np.array([index.get(key, other) for key in keys], dtype=np.intp)
    return np.bincount(mapping[codes], minlength=len(categories)).astype(np.float64)


def reference_problem(block: dict) -> str | None:
    """What makes a spec's monitoring block unusable by the hourly comparison
    (named by its path), or None. Checked when the model is loaded, so a bad
    block is refused then rather than failing every hourly run."""
    reference = block.get("reference")
    if not isinstance(reference, dict) or not isinstance(reference.get("features"), dict):
        return "reference: expected an object with a features object"
    for name, ref in reference["features"].items():
        where = f"reference.features[{name!r}]"
        if not isinstance(ref, dict):
            return f"{where}: expected an object"
        kind = ref.get("kind")
        if kind == "numeric":
            problem = _numeric_problem(ref)
        elif kind == "categorical":
            problem = _categorical_problem(ref)
        else:
            problem = f"kind {kind!r} is neither 'numeric' nor 'categorical'"
        if problem:
            return f"{where}: {problem}"
    described = [reference.get(k) for k in ("days", "source", "first_day", "last_day")]
    if not all(json_scalar(v) for v in described):
        return "reference: days, source, first_day and last_day must be JSON scalars"
    mix = reference.get("class_mix")
    if mix is not None and (
        not isinstance(mix, dict) or not all(_number_or_none(v) for v in mix.values())
    ):
        return "reference.class_mix: expected an object of numbers"
    importance = block.get("importance")
    if importance is None:
        return None
    values = importance.get("values") if isinstance(importance, dict) else None
    if not isinstance(importance, dict) or not (
        values is None
        or (isinstance(values, dict) and all(_number_or_none(v, False) for v in values.values()))
    ):
        return "importance: expected an object whose values are finite numbers by feature"
    return None


def _number_or_none(value: Any, none: bool = True) -> bool:
    if value is None:
        return none
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _finite_array(values: Any, length: int | None = None, ndim: int = 1) -> np.ndarray | None:
    """`values` as finite float64 of that shape, else None."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if array.ndim != ndim or (length is not None and array.shape[-1] != length):
        return None
    return array if np.all(np.isfinite(array)) else None


def _numeric_problem(ref: dict) -> str | None:
    rows = ref.get("rows")
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
        return f"rows must be a whole number >= 0, got {rows!r}"
    if not _number_or_none(ref.get("missing_share")):
        return "missing_share must be a finite number"
    if not rows:
        return None
    levels = contracts.DRIFT_QUANTILE_LEVELS
    if not _number_or_none(ref.get("std"), False) or ref["std"] < 0:
        return "std must be a finite number >= 0"
    if _finite_array(ref.get("quantiles"), levels) is None:
        return f"quantiles must be {levels} finite numbers"
    edges = _finite_array(ref.get("psi_edges"))
    if edges is None or np.any(np.diff(edges) <= 0):
        return "psi_edges must be finite and increasing"
    shares = _finite_array(ref.get("psi_shares"), len(edges) + 1)
    if shares is None or np.any(shares < 0):
        return f"psi_shares must be {len(edges) + 1} finite shares"
    daily = ref.get("daily")
    if daily is None:
        return None
    days = daily.get("days") if isinstance(daily, dict) else None
    counts = daily.get("rows") if isinstance(daily, dict) else None
    if (
        not isinstance(days, list)
        or not all(isinstance(d, str) for d in days)
        or not isinstance(counts, list)
        or len(counts) != len(days)
        or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in counts)
    ):
        return "daily: expected days (text) with a positive row count each"
    matrix = _finite_array(daily.get("quantiles"), levels, ndim=2) if days else None
    if days and (matrix is None or len(matrix) != len(days)):
        return f"daily.quantiles must hold {levels} finite numbers per day"
    return None


def _categorical_problem(ref: dict) -> str | None:
    categories = ref.get("categories")
    if (
        not isinstance(categories, list)
        or not all(isinstance(c, str) for c in categories)
        or len(set(categories)) != len(categories)
        or contracts.DRIFT_OTHER_CATEGORY not in categories
    ):
        return f"categories must be distinct texts including {contracts.DRIFT_OTHER_CATEGORY!r}"
    shares = _finite_array(ref.get("shares"), len(categories))
    if shares is None or np.any(shares < 0):
        return f"shares must be {len(categories)} finite shares"
    return None


def important_features(importance: dict | None, top: int = contracts.DRIFT_IMPORTANT_FEATURES):
    """The `top` most important features by the stored importance (ties by
    name), of those the health rule counts (not the calendar features)."""
    values = (importance or {}).get("values") or {}
    counted = [f for f in values if f not in contracts.DRIFT_CALENDAR_FEATURES]
    return sorted(counted, key=lambda f: (-values[f], f))[:top]


def drift_verdict(entries: list[dict], important: Sequence[str]) -> tuple[list[str], dict]:
    """(reasons, details) of the health rule over the per-feature entries;
    the calendar features (contracts.DRIFT_CALENDAR_FEATURES) are left out
    of both the drifted features and the share's denominator."""
    entries = [e for e in entries if e["feature"] not in contracts.DRIFT_CALENDAR_FEATURES]
    drifted = [e["feature"] for e in entries if e["drifted"]]
    important_drifted = [f for f in important if f in drifted]
    share = len(drifted) / len(entries) if entries else 0.0
    reasons = []
    if important_drifted:
        reasons.append(IMPORTANT_FEATURE_DRIFT)
    if share > contracts.DRIFT_MAX_DRIFTED_SHARE:
        reasons.append(WIDESPREAD_DRIFT)
    return reasons, {
        "drifted_features": drifted,
        "important_drifted_features": important_drifted,
        "drifted_share": share,
    }
