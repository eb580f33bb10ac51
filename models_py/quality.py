"""Is the run fit to ship? The weak-model rule and its evidence, and the
data provenance in words.

A run is weak when the 95% by-pool interval of its backtest AUC includes 0.5,
or its backtest AUC does not beat the heuristic baseline's on the same rows by
config.WEAK_MIN_LIFT. Without a backtest (--no-backtest) the evaluated fit's
test period stands in. publish, promote and retrain refuse a weak run unless
--allow-weak (apy_runway/operations/runs.py reads the verdict).
May import inference/ and libraries only.
"""

from __future__ import annotations

import math

from models_py import config


def verdict(auc: float, ci: dict, heuristic_auc: float, basis: str) -> dict:
    """metadata.json's `quality`: weak or not, why, and the numbers behind it."""
    reasons = []
    low, high = ci.get("low", float("nan")), ci.get("high", float("nan"))
    if not math.isfinite(auc):
        reasons.append(f"the {basis} AUC is undefined")
    elif not (math.isfinite(low) and math.isfinite(high)):
        reasons.append(f"the {basis} AUC has no 95% interval (one pool)")
    elif low <= 0.5 <= high:
        reasons.append(f"the {basis} AUC's 95% interval {low:.3f}-{high:.3f} includes 0.5")
    lift = auc - heuristic_auc
    # without the heuristic baseline (not among --models) only the interval rule applies
    if math.isfinite(heuristic_auc) and not (math.isfinite(lift) and lift > config.WEAK_MIN_LIFT):
        reasons.append(
            f"the {basis} AUC {auc:.4f} does not beat the heuristic's {heuristic_auc:.4f} "
            f"by more than {config.WEAK_MIN_LIFT}"
        )
    return {
        "weak": bool(reasons),
        "reasons": reasons,
        "basis": basis,
        "roc_auc": auc,
        "ci_low": low,
        "ci_high": high,
        "heuristic_roc_auc": heuristic_auc,
        "lift_over_heuristic": lift,
        "rule": (
            "weak when the 95% by-pool interval of the AUC includes 0.5 or the AUC does "
            f"not beat the heuristic's by more than {config.WEAK_MIN_LIFT}"
        ),
    }


def describe_provenance(provenance: dict | None) -> str:
    """metadata.json's data_provenance in words (the report's headline, the board's banner)."""
    provenance = provenance or {}
    kind = provenance.get("kind", "unknown")
    if kind == "generated":
        return (
            f"GENERATED data (apy-runway generate, seed {provenance.get('seed', 'unknown')}): "
            "a demonstration model, not trained on real pools"
        )
    if kind == "collected":
        return (
            f"collected hours {provenance.get('first_hour')} to {provenance.get('last_hour')} "
            f"({provenance.get('hours', 0)} hours)"
        )
    if kind == "files":
        files = provenance.get("files") or []
        names = ", ".join(
            f"{f.get('name')} (sha256 {str(f.get('sha256'))[:12]}...)" for f in files[:3]
        )
        more = f" and {len(files) - 3} more" if len(files) > 3 else ""
        return f"real files: {names}{more}"
    return "provenance unknown (a training set given directly)"
