"""`apy-runway retrain`: the monthly retraining a scheduler runs
(deploy/apy-runway-retrain.timer).

Trains a challenger exactly as `apy-runway train` does, then backtests the
champion's recipe and the challenger's on the same rows over the last
config.RETRAIN_MONTHS months, each refitted monthly the same way. The
challenger is promoted unless its AUC is lower by more than --max-auc-drop or
its ECE higher by more than --max-ece-rise (--force promotes anyway). The
decision and both scores go to <run>/retrain.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from apy_runway.foundation.console import log
from apy_runway.foundation.paths import ProjectPaths
from apy_runway.operations.promote import champion_metadata
from models_py import config
from models_py.backtest import Backtest, monthly_backtest
from models_py.data import TrainingData, load_training_set
from models_py.recipe import Recipe

DECISION_FILE = "retrain.json"


def champion_recipe(metadata: dict) -> Recipe:
    """The recipe a champion was trained with (older runs: from their model fields)."""
    if metadata.get("recipe"):
        return Recipe.from_dict(metadata["recipe"])
    forest = metadata.get("random_forest") or {}
    return Recipe(
        model=metadata["model_name"],
        numeric=tuple(metadata["numeric_features"]),
        categorical=tuple(metadata["categorical_features"]),
        rf_params=dict(forest.get("params") or {}),
        rf_trees=int(forest.get("n_estimators", config.RF_TREES)),
        calibration="none",
    )


def _summary(backtest: Backtest) -> dict:
    total = backtest.total
    return {
        "months": [m["month"] for m in backtest.months],
        "roc_auc": total.get("roc_auc", float("nan")),
        "ece": total.get("ece", float("nan")),
        "brier": total.get("brier", float("nan")),
        "rows": total.get("rows", 0),
    }


def retrain_decision(
    paths: ProjectPaths,
    run_dir: Path,
    training_set: Path,
    feature_columns: Path,
    bucket: str | None = None,
    endpoint_url: str | None = None,
    months: int = config.RETRAIN_MONTHS,
    max_auc_drop: float = config.MAX_AUC_DROP,
    max_ece_rise: float = config.MAX_ECE_RISE,
    force: bool = False,
    allow_weak: bool = False,
) -> dict:
    """Compare the challenger in run_dir with the champion; write retrain.json.
    A weak challenger is never promoted without `allow_weak` (--allow-weak)."""
    challenger_meta = json.loads((run_dir / "metadata.json").read_text())
    champion_meta, where = champion_metadata(paths, bucket, endpoint_url)
    decision: dict = {
        "challenger": challenger_meta["model_id"],
        "champion": champion_meta.get("model_id") if champion_meta else None,
        "champion_source": where,
        "thresholds": {"max_auc_drop": max_auc_drop, "max_ece_rise": max_ece_rise},
        "forced": force,
    }
    verdict = challenger_meta.get("quality") or {}
    if verdict.get("weak") and not allow_weak:
        decision.update(
            promote=False,
            reason="kept the champion: the challenger is a WEAK model ("
            + "; ".join(verdict.get("reasons", []))
            + "); --allow-weak promotes it anyway",
        )
        return _record(run_dir, decision)
    if champion_meta is None:
        decision.update(promote=True, reason=f"no champion at {where}: the challenger is the first")
        return _record(run_dir, decision)
    if champion_meta.get("model_id") == challenger_meta["model_id"]:
        decision.update(promote=False, reason="the challenger is already the champion")
        return _record(run_dir, decision)
    data = load_training_set(training_set, feature_columns)
    start = _window_start(data, months)
    challenger = Recipe.from_dict(challenger_meta["recipe"])
    try:
        champion = champion_recipe(champion_meta)
    except (KeyError, ValueError) as error:
        decision.update(promote=True, reason=f"the champion's recipe cannot be read ({error})")
        return _record(run_dir, decision)
    missing = champion.missing_features(data)
    if missing:
        decision.update(
            promote=True,
            reason=f"the champion needs features the training set no longer has: {missing}",
        )
        return _record(run_dir, decision)
    log(
        f"backtesting champion {decision['champion']} and challenger over the last {months} "
        f"months from {start}"
    )
    scores = {
        "champion": _summary(monthly_backtest(champion, data, start, last=months)),
        "challenger": _summary(monthly_backtest(challenger, data, start, last=months)),
    }
    decision["scores"] = scores
    auc_drop = scores["champion"]["roc_auc"] - scores["challenger"]["roc_auc"]
    ece_rise = scores["challenger"]["ece"] - scores["champion"]["ece"]
    reasons = []
    if not auc_drop <= max_auc_drop:
        reasons.append(f"AUC lower by {auc_drop:.4f} > {max_auc_drop}")
    if not ece_rise <= max_ece_rise:
        reasons.append(f"ECE higher by {ece_rise:.4f} > {max_ece_rise}")
    if reasons and not force:
        decision.update(promote=False, reason="kept the champion: challenger " + "; ".join(reasons))
    else:
        decision.update(
            promote=True,
            reason=("--force: " + "; ".join(reasons))
            if reasons
            else f"challenger within bounds (AUC {-auc_drop:+.4f}, ECE {ece_rise:+.4f})",
        )
    return _record(run_dir, decision)


def _window_start(data: TrainingData, months: int) -> np.datetime64:
    """First day of the `months` last calendar months of labelled rows."""
    last = data.dates.max().astype("datetime64[M]")
    return np.datetime64(last - np.timedelta64(months - 1, "M"), "D")


def _record(run_dir: Path, decision: dict) -> dict:
    (run_dir / DECISION_FILE).write_text(json.dumps(decision, indent=1, default=str) + "\n")
    log(
        f"retrain: {'promote' if decision['promote'] else 'keep'} ({decision['reason']}); "
        f"recorded in {run_dir / DECISION_FILE}"
    )
    return decision
