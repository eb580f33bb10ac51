"""Drift: the reference training stores with the model, and the hourly
comparison the Lambda makes against it. Pure, numpy only (no scipy: the
Lambda ships numpy alone), so training (models_py/export.py writes the
reference into the portable spec) and serving compute with the same code.

Reference (`reference(...)`, the spec's `monitoring.reference`), from the
model's inputs over the newest contracts.DRIFT_REFERENCE_DAYS feature days at
training (the dbt mart drift_reference_features; `source` names the rows):
- numeric features: quantiles at 100 levels (0.005, 0.015, .., 0.995), the std, the
  missing share, and PSI bins (the interior deciles, de-duplicated) with the
  reference's share in each;
- categorical features: the shares of the most common values (the rest as
  contracts.DRIFT_OTHER_CATEGORY, missing as DRIFT_MISSING_CATEGORY);
- the class mix: the label's Down share and the model's predicted Down share
  on those rows.

Comparison (`drift(...)`), per feature, on the hour's scored rows:
- numeric: Wasserstein-1 between the two distributions, from their quantile
  functions (the mean |Q_live(q) - Q_ref(q)| over the 100 midpoint levels:
  the integral by the midpoint rule, without the extreme 0.5% at each end),
  divided by the reference std; PSI over the reference bins;
- categorical: the Jensen-Shannon distance (base 2, 0..1) of the shares; PSI
  over the same categories.
A feature drifts when its score (W/std, or JS) exceeds
contracts.DRIFT_THRESHOLD. `drift_verdict` applies the health rule: degraded
when one of the DRIFT_IMPORTANT_FEATURES most important features drifts, or
more than DRIFT_MAX_DRIFTED_SHARE of all features do; the features that grow
with the calendar by construction (contracts.DRIFT_CALENDAR_FEATURES) are
reported with `counted: false` and left out of the rule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from inference import contracts

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


def _finite(values: Any) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return values[np.isfinite(values)]


def _category_keys(values: Sequence[Any]) -> list[str]:
    return [contracts.DRIFT_MISSING_CATEGORY if v is None else str(v) for v in values]


def _shares(keys: list[str], categories: list[str]) -> np.ndarray:
    """Share of each of `categories` (values outside them count as 'other')."""
    index = {c: i for i, c in enumerate(categories)}
    other = index[contracts.DRIFT_OTHER_CATEGORY]
    counts = np.zeros(len(categories))
    for key in keys:
        counts[index.get(key, other)] += 1
    return counts / counts.sum() if counts.sum() else counts


def numeric_reference(values: Any) -> dict:
    """The reference of one numeric feature (see the module's docstring)."""
    raw = np.asarray(values, dtype=np.float64)
    x = _finite(raw)
    missing = float(1 - len(x) / len(raw)) if len(raw) else 0.0
    if not len(x):
        return {"kind": "numeric", "rows": 0, "missing_share": missing}
    quantiles = np.quantile(x, _levels())
    edges = np.unique(np.quantile(x, np.linspace(0, 1, contracts.DRIFT_PSI_BINS + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1)
    return {
        "kind": "numeric",
        "rows": len(x),
        "missing_share": missing,
        "std": float(np.std(x)),
        "quantiles": quantiles.tolist(),
        "psi_edges": edges.tolist(),
        "psi_shares": (counts / len(x)).tolist(),
    }


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
) -> dict:
    """The drift reference of a model: per feature, and the class mix;
    `source` names the rows it describes (contracts.DRIFT_SOURCE_*)."""
    features = {name: numeric_reference(v) for name, v in numeric.items()}
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


def wasserstein_over_std(live: Any, ref: dict) -> float | None:
    """W1(live, reference) / reference std from the quantile functions; None
    when either side has no values. A constant reference: 0 when live equals
    it, else infinity (any change of a constant is drift)."""
    x = _finite(live)
    if not len(x) or not ref.get("rows"):
        return None
    gap = np.abs(np.quantile(x, _levels()) - np.asarray(ref["quantiles"], dtype=np.float64))
    w = float(gap.mean())
    std = float(ref["std"])
    if std > 0:
        return w / std
    return 0.0 if w == 0 else math.inf


def psi(actual: np.ndarray, expected: np.ndarray) -> float:
    """Population stability index of two share vectors (floored at PSI_FLOOR)."""
    a = np.maximum(np.asarray(actual, dtype=np.float64), PSI_FLOOR)
    e = np.maximum(np.asarray(expected, dtype=np.float64), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def numeric_psi(live: Any, ref: dict) -> float | None:
    x = _finite(live)
    if not len(x) or not ref.get("rows"):
        return None
    edges = np.asarray(ref["psi_edges"], dtype=np.float64)
    counts = np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1)
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
    """One feature's drift entry of the monitoring document."""
    if ref["kind"] == "numeric":
        values = np.asarray(live, dtype=np.float64)
        score = wasserstein_over_std(values, ref)
        entry = {
            "feature": name,
            "kind": "numeric",
            "metric": "wasserstein_over_std",
            "score": score,
            "psi": numeric_psi(values, ref),
            "missing_share": float(1 - len(_finite(values)) / len(values)) if len(values) else None,
            "reference_missing_share": ref.get("missing_share"),
        }
    else:
        keys = _category_keys(live)
        shares = _shares(keys, ref["categories"])
        expected = np.asarray(ref["shares"], dtype=np.float64)
        score = jensen_shannon(shares, expected) if len(keys) else None
        entry = {
            "feature": name,
            "kind": "categorical",
            "metric": "jensen_shannon",
            "score": score,
            "psi": psi(shares, expected) if len(keys) else None,
        }
    entry["drifted"] = score is not None and score > contracts.DRIFT_THRESHOLD
    entry["counted"] = name not in contracts.DRIFT_CALENDAR_FEATURES
    if entry["score"] is not None and not math.isfinite(entry["score"]):
        entry["score"] = None  # JSON has no infinity; `drifted` says it
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
