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
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from models_py import config
from models_py.evaluate import safe_auc
from models_py.fits import matrix_name
from models_py.pipelines import build_pipeline
from models_py.recipe import Recipe

LOG = logging.getLogger(__name__)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from models_py.data import TrainingData
    from models_py.fits import FitCache
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
    cache: FitCache | None = None,
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
        if cache is None:
            model.fit(X[fit_rows], y[fit_rows])
        else:  # the settings choice fits the same forest on the same fold rows
            model = cache.fit(matrix_name(features), model, train[fit_rows], X, y, fit_rows)
        aucs.append(safe_auc(y[validation], model.predict_proba(X[validation])[:, 1]))
    return aucs


def gate_candidate_groups(
    data: TrainingData,
    train: np.ndarray,
    folds: Sequence[Fold],
    rf_params: dict,
    trees: int,
    cache: FitCache | None = None,
) -> tuple[TrainingData, list[dict]]:
    """The training data without each of config.CANDIDATE_GROUPS that the
    forest's last folds do not keep, and one decision row per group present."""
    patterns = dict(config.FEATURE_GROUPS)
    grouped = {
        name: [f for f in data.features if re.fullmatch(patterns[name], f)]
        for name in config.CANDIDATE_GROUPS
    }
    candidates = [name for name, members in grouped.items() if members]
    if not candidates:
        return data, []
    folds = list(folds)[-config.ABLATION_FOLDS :]
    recipe = Recipe(
        model="random_forest",
        numeric=tuple(data.numeric),
        categorical=tuple(data.categorical),
        rf_params=dict(rf_params),
        rf_trees=trees,
    )
    numeric, categorical = list(data.numeric), list(data.categorical)
    with_all = float(
        np.nanmean(_fold_aucs(recipe, numeric, categorical, data, train, folds, cache=cache))
    )
    noise, decisions, dropped = None, [], []
    for name in candidates:
        members = grouped[name]
        without = float(
            np.nanmean(
                _fold_aucs(
                    recipe,
                    [f for f in numeric if f not in members],
                    [f for f in categorical if f not in members],
                    data,
                    train,
                    folds,
                    cache=cache,
                )
            )
        )
        gain = with_all - without
        if gain > config.ABLATION_NO_COST and noise is None:  # measured only when it matters
            reseeded = _fold_aucs(
                recipe, numeric, categorical, data, train, folds, config.RANDOM_STATE + 1, cache
            )
            noise = abs(float(np.nanmean(reseeded)) - with_all)
        margin = max(config.ABLATION_NO_COST, noise or 0.0)
        kept = bool(gain > margin)
        decisions.append(
            {
                "group": name,
                "features": members,
                "auc_with": with_all,
                "auc_without": without,
                "gain": gain,
                "margin": margin,
                "kept": kept,
            }
        )
        LOG.info(
            f"feature group {name!r}: fold AUC {with_all:.4f} with it, {without:.4f} without "
            f"({gain:+.4f}, margin {margin:.4f}): {'kept' if kept else 'dropped'}"
        )
        dropped += [] if kept else members
    if dropped:
        data = replace(
            data,
            numeric=[f for f in data.numeric if f not in dropped],
            categorical=[f for f in data.categorical if f not in dropped],
        )
    return data, decisions


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
