"""Measure before adding features: the production recipe refitted without each
feature group (config.FEATURE_GROUPS, the rows of dbt_project/README.md's
feature table) on the last walk-forward folds.

A group "can be dropped at no cost" when the mean fold AUC without it is no
more than a margin below the full recipe's on the same folds: ABLATION_NO_COST,
or the seed noise (the full recipe refitted with another random_state) if
that is larger, since a smaller change cannot be told from chance.
Calibration is left out (a monotone map does not move an AUC), so each fold
costs one fit.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from models_py import config
from models_py.evaluate import safe_auc
from models_py.pipelines import build_pipeline

LOG = logging.getLogger(__name__)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from models_py.data import TrainingData
    from models_py.recipe import Recipe
    from models_py.splits import Fold


@dataclass
class Ablation:
    folds: int
    trees: int | None
    baseline_auc: float
    seed_noise: float  # |fold AUC change| of the full recipe under another random_state
    margin: float  # max(ABLATION_NO_COST, seed_noise)
    groups: list[dict]  # group, features, auc_without, auc_change, can_drop


def feature_groups(features: Sequence[str]) -> dict[str, list[str]]:
    """Group name -> the features of `features` in it (every feature in exactly one)."""
    grouped: dict[str, list[str]] = {name: [] for name, _ in config.FEATURE_GROUPS}
    for feature in features:
        owners = [name for name, pattern in config.FEATURE_GROUPS if re.fullmatch(pattern, feature)]
        if len(owners) != 1:
            raise ValueError(
                f"feature {feature!r} matches {len(owners)} feature groups {owners}; "
                "config.FEATURE_GROUPS must give every feature exactly one"
            )
        grouped[owners[0]].append(feature)
    return {name: members for name, members in grouped.items() if members}


def _fold_aucs(
    recipe: Recipe,
    numeric: list[str],
    categorical: list[str],
    data: TrainingData,
    train: np.ndarray,
    folds: Sequence[Fold],
    seed: int = config.RANDOM_STATE,
) -> list[float]:
    features = [*numeric, *categorical]
    X, y = data.matrix(features)[train], data.y[train]
    aucs = []
    for fit_rows, validation in folds:
        model = build_pipeline(
            recipe.model,
            features,
            categorical,
            recipe.rf_params,
            min(recipe.rf_trees, config.ABLATION_TREES),
        )
        if "random_state" in model.named_steps["classifier"].get_params():
            model.set_params(classifier__random_state=seed)
        model.fit(X[fit_rows], y[fit_rows])
        aucs.append(safe_auc(y[validation], model.predict_proba(X[validation])[:, 1]))
    return aucs


def ablate_feature_groups(
    recipe: Recipe, data: TrainingData, train: np.ndarray, folds: Sequence[Fold]
) -> Ablation:
    """Refit without each group on the last config.ABLATION_FOLDS folds."""
    folds = list(folds)[-config.ABLATION_FOLDS :]
    trees = min(recipe.rf_trees, config.ABLATION_TREES) if recipe.model != "logistic" else None
    if recipe.model == "anchor":  # six fixed features: nothing to ablate
        return Ablation(len(folds), trees, float("nan"), float("nan"), float("nan"), [])
    numeric, categorical = list(recipe.numeric), list(recipe.categorical)
    baseline = float(np.nanmean(_fold_aucs(recipe, numeric, categorical, data, train, folds)))
    reseeded = float(
        np.nanmean(
            _fold_aucs(
                recipe, numeric, categorical, data, train, folds, seed=config.RANDOM_STATE + 1
            )
        )
    )
    noise = abs(reseeded - baseline)
    margin = max(config.ABLATION_NO_COST, noise)
    rows = []
    for name, members in feature_groups(recipe.features).items():
        kept_numeric = [f for f in numeric if f not in members]
        kept_categorical = [f for f in categorical if f not in members]
        if not kept_numeric + kept_categorical:
            continue
        if recipe.model == "logistic" and not kept_numeric:
            continue
        auc = float(
            np.nanmean(_fold_aucs(recipe, kept_numeric, kept_categorical, data, train, folds))
        )
        rows.append(
            {
                "group": name,
                "features": len(members),
                "auc_without": auc,
                "auc_change": auc - baseline,
                "can_drop": bool(auc >= baseline - margin),
            }
        )
        LOG.info(f"  without {name}: fold AUC {auc:.4f} ({auc - baseline:+.4f})")
    rows.sort(key=lambda row: row["auc_change"], reverse=True)
    return Ablation(len(folds), trees, baseline, noise, margin, rows)
