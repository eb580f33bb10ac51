"""Fit and compare every model on one date split; choose, backtest and refit
the production model.

Settings (forest size, which model ships, its calibration) are chosen on the
walk-forward folds before the test start T only; the test period is looked at
once, for the reported numbers of the *evaluated fit* (the recipe fitted on the
rows labelled before T). The *monthly backtest* refits the same recipe at the
start of every month of the test period, as a service retrained monthly
would. The *shipped fit* is the recipe refitted on every labelled row: the
model users get is fresh, and the evaluated fit and the backtest say what to
expect of it.
"""

from __future__ import annotations

import copy
import io
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import joblib
import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from models_py import config, quality
from models_py.ablation import Ablation, ablate_feature_groups, gate_candidate_groups
from models_py.backtest import Backtest, monthly_backtest
from models_py.calibration import (
    CalibratedClassifier,
    CalibrationChoice,
    choose_method,
    expected_calibration_error,
)
from models_py.confidence import HeldOut, choose_cutpoints
from models_py.data import TrainingData
from models_py.errors import TrainingError
from models_py.evaluate import bootstrap_auc_by_pool, cross_validate, metrics, safe_auc
from models_py.fits import FitCache, matrix_name
from models_py.pipelines import build_pipeline, strip_training_only_state
from models_py.recipe import Recipe, fit_recipe
from models_py.splits import DateSplit, PurgedWalkForward, calibration_split, time_split

LOG = logging.getLogger(__name__)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from models_py.splits import Fold


@dataclass
class Settings:
    models: tuple[str, ...] = config.MODEL_NAMES
    rf_trees: int = config.RF_TREES
    rf_candidates: tuple[dict, ...] = config.RF_CANDIDATES
    max_artefact_mb: float = config.MAX_ARTEFACT_MB
    test_fraction: float = config.TEST_FRACTION
    cv_folds: int = config.CV_FOLDS
    cv_validation_fraction: float = config.CV_VALIDATION_FRACTION
    bootstrap_samples: int = config.BOOTSTRAP_SAMPLES
    calibration: str = config.CALIBRATION_DEFAULT  # "auto": chosen on the folds, or a method
    rf_reference: bool = False  # also score config.RF_REFERENCE on the folds (never chosen)
    backtest: bool = True  # the monthly walk-forward backtest over the test period
    ablation: bool = False  # refit without each feature group on the last folds (a study)
    refit: bool = True  # ship the recipe refitted on every labelled row
    share_fits: bool = True  # fit each (model, rows) once (models_py/fits.py); False: refit
    gate_features: bool = True  # keep config.CANDIDATE_GROUPS only where the folds show a gain

    def __post_init__(self) -> None:
        if self.calibration not in config.CALIBRATION_CHOICES:
            raise ValueError(
                f"calibration {self.calibration!r} is not one of {config.CALIBRATION_CHOICES}"
            )


@dataclass
class ModelResult:
    name: str
    pipeline: Pipeline
    cv: dict
    test: dict
    p_test: np.ndarray
    extra: dict = field(default_factory=dict)


@dataclass
class TrainingResult:
    data: TrainingData
    split: DateSplit
    folds: list[Fold]
    fold_table: list[dict]
    results: dict[str, ModelResult]
    production: str
    production_choice: list[dict]  # per candidate: mean AUC of the last folds, chosen
    recipe: Recipe
    evaluated_model: CalibratedClassifier  # the recipe fitted on the rows before the test
    shipped_model: CalibratedClassifier  # the recipe fitted on every labelled row
    shipped_rows: np.ndarray  # positions the shipped model trained on
    calibration: CalibrationChoice
    backtest: Backtest | None
    ablation: Ablation | None
    rf_selection: list
    rf_params: dict
    size_guard: list
    warnings: list[str]
    confidence: dict  # the shipped cut-points (models_py/confidence.py)
    seconds: float
    quality: dict  # the weak-model verdict (models_py/quality.py)
    # per candidate feature group: kept or dropped on the folds (ablation.gate_candidate_groups)
    feature_gates: list = field(default_factory=list)

    @property
    def production_model(self) -> CalibratedClassifier:
        """The model that ships (metadata.json's model)."""
        return self.shipped_model

    @property
    def train_index(self) -> np.ndarray:
        return self.split.train_index

    @property
    def test_index(self) -> np.ndarray:
        return self.split.test_index


def pickled_size(model: object) -> int:
    """Bytes of the model as saved (joblib, compress=3, without training-only
    state), without touching disk."""
    buffer = io.BytesIO()
    joblib.dump(strip_training_only_state(copy.deepcopy(model)), buffer, compress=3)
    return buffer.tell()


def _oob(pipeline: Pipeline, y: np.ndarray) -> dict:
    """Out-of-bag accuracy and ROC AUC of a fitted forest (empty for other models)."""
    estimator = pipeline.named_steps["classifier"]
    if not hasattr(estimator, "oob_decision_function_"):
        return {}
    p = estimator.oob_decision_function_[:, 1]
    seen = np.isfinite(p)
    return {
        "oob_accuracy": float(estimator.oob_score_),
        "oob_roc_auc": float(roc_auc_score(y[seen], p[seen])),
    }


def select_rf_params(
    X: np.ndarray,
    y: np.ndarray,
    folds: Sequence[Fold],
    features: list[str],
    categorical: list[str],
    settings: Settings,
    cache: FitCache | None = None,
    base: np.ndarray | None = None,
) -> tuple[dict, list, dict]:
    """Leanest candidate within tolerance of the best mean fold AUC (folds only).
    X holds the rows `base` of the data's matrix (for the FitCache's keys)."""
    rows, cvs = [], []
    candidates = list(settings.rf_candidates) + (
        [config.RF_REFERENCE] if settings.rf_reference else []
    )
    for number, params in enumerate(candidates):
        pipeline = build_pipeline("random_forest", features, categorical, params, settings.rf_trees)
        cv = cross_validate(pipeline, X, y, folds, cache, matrix_name(features), base)
        # size of the last (largest) fold model: a lower bound of the final artefact
        size_mb = pickled_size(cv.pop("last_model")) / 1e6
        rows.append(
            {
                "params": params,
                "reference": number >= len(settings.rf_candidates),
                "cv_auc_mean": cv["cv_auc_mean"],
                "cv_auc_std": cv["cv_auc_std"],
                "last_fold_model_mb": size_mb,
                "fit_seconds_mean": cv["fit_seconds_mean"],
            }
        )
        cvs.append(cv)
        LOG.info(
            f"  random_forest {params}: fold AUC {cv['cv_auc_mean']:.4f} "
            f"+- {cv['cv_auc_std']:.4f}, {size_mb:.1f} MB"
        )
    eligible = [row for row in rows if not row["reference"]]
    best = max(row["cv_auc_mean"] for row in eligible)
    fitting = [
        i for i, row in enumerate(eligible) if row["last_fold_model_mb"] <= settings.max_artefact_mb
    ]
    chosen = next(
        (i for i in fitting if eligible[i]["cv_auc_mean"] >= best - config.RF_SELECTION_TOLERANCE),
        0,
    )
    top = max(row["cv_auc_mean"] for row in rows)
    for i, row in enumerate(rows):
        row["chosen"] = i == chosen
        row["auc_cost_vs_best"] = top - row["cv_auc_mean"]
    return dict(settings.rf_candidates[chosen]), rows, cvs[chosen]


def check_test_period(data: TrainingData, split: DateSplit) -> list[str]:
    """Refuse a test period that cannot mean anything; return warnings."""
    test = split.test_index
    pools = data.frame["pool_id"].to_numpy()
    single_pool = len(np.unique(pools)) == 1
    test_pools, test_dates = len(np.unique(pools[test])), len(np.unique(data.dates[test]))
    # one pool overall is a legitimate study (warned below); a handful of
    # pools in the test period is a number that means nothing
    if (test_pools < config.MIN_TEST_POOLS and not single_pool) or (
        test_dates < config.MIN_TEST_DATES
    ):
        raise TrainingError(
            f"the test period from {split.test_start} has {test_pools} pools and "
            f"{test_dates} dates: at least {config.MIN_TEST_POOLS} pools and "
            f"{config.MIN_TEST_DATES} dates are needed for a test AUC that means something"
        )
    y = data.y[test]
    if len(np.unique(y)) < 2:
        raise TrainingError(
            f"the test period from {split.test_start} is single-class "
            f"(every row has is_apy_kept={int(y[0])}): its AUC is undefined"
        )
    warnings = []
    if single_pool:
        warnings.append(
            "a single pool overall: the by-pool bootstrap interval resamples one pool, "
            "so it says nothing about other pools"
        )
    return warnings


def _last_folds_mean(fold_auc: Sequence[float]) -> float:
    return float(np.nanmean(fold_auc[-config.PRODUCTION_CHOICE_FOLDS :]))


def forest_seed_spread(
    data: TrainingData,
    train: np.ndarray,
    folds: Sequence[Fold],
    rf_params: dict,
    rf_trees: int,
    seed0_auc: list,
    cache: FitCache | None = None,
) -> dict:
    """The forest's seed noise: its mean AUC over the last folds with each of
    config.SEED_SPREAD_SEEDS (the seed-0 fold fits are the ones already made)."""
    X, y = data.matrix()[train], data.y[train]
    recent = list(folds)[-config.PRODUCTION_CHOICE_FOLDS :]
    means = {}
    for seed in config.SEED_SPREAD_SEEDS:
        if seed == config.RANDOM_STATE:
            means[seed] = _last_folds_mean(seed0_auc)
            continue
        pipeline = build_pipeline(
            "random_forest",
            data.features,
            data.categorical,
            {**rf_params, "random_state": seed},
            rf_trees,
        )
        cv = cross_validate(pipeline, X, y, recent, cache, matrix_name(data.features), train)
        means[seed] = float(np.nanmean(cv["fold_auc"]))
    values = list(means.values())
    return {"by_seed": means, "spread": float(max(values) - min(values))}


def choose_production(
    results: dict[str, ModelResult], seed_spread: Callable[[], float] | float | None = None
) -> tuple[str, list[dict]]:
    """The forest (config.DEFAULT_PRODUCTION) unless a challenger beats its mean
    AUC over the last PRODUCTION_CHOICE_FOLDS folds by more than
    CHALLENGER_MIN_MARGIN and by more than CHALLENGER_SPREAD_FACTOR x the
    forest's seed spread (`seed_spread`: a number, or a function measuring it,
    called only when some challenger beats the margin). Without a forest among
    the models, the candidate with the best mean over the last folds."""
    rows = []
    for name in config.PRODUCTION_CANDIDATES:
        if name not in results:
            continue
        recent = results[name].cv["fold_auc"][-config.PRODUCTION_CHOICE_FOLDS :]
        rows.append(
            {
                "model": name,
                "last_folds_auc_mean": float(np.nanmean(recent)),
                "all_folds_auc_mean": results[name].cv["cv_auc_mean"],
                "last_fold_auc": float(recent[-1]),
            }
        )
    if not rows:
        raise TrainingError(
            f"no production candidate among the models (need one of {config.PRODUCTION_CANDIDATES})"
        )
    default = next((row for row in rows if row["model"] == config.DEFAULT_PRODUCTION), None)
    if default is None:
        best = max(rows, key=lambda row: row["last_folds_auc_mean"])
    else:
        best = _challenge(default, rows, seed_spread)
    for row in rows:
        row["chosen"] = row is best
    return best["model"], rows


def _challenge(
    default: dict, rows: list[dict], seed_spread: Callable[[], float] | float | None
) -> dict:
    """The default row, or the challenger with the largest margin that clears both bars."""
    spread = None
    for row in rows:
        row["margin_vs_forest"] = row["last_folds_auc_mean"] - default["last_folds_auc_mean"]
    if any(
        row["margin_vs_forest"] > config.CHALLENGER_MIN_MARGIN for row in rows if row is not default
    ):
        spread = float(seed_spread() if callable(seed_spread) else (seed_spread or 0.0))
    best = default
    for row in rows:
        row["forest_seed_spread"] = spread if spread is not None else float("nan")
        clears = (
            row is not default
            and spread is not None
            and row["margin_vs_forest"] > config.CHALLENGER_MIN_MARGIN
            and row["margin_vs_forest"] > config.CHALLENGER_SPREAD_FACTOR * spread
        )
        if clears and row["margin_vs_forest"] > best.get("margin_vs_forest", 0.0):
            best = row
    return best


def calibration_candidates(
    recipe: Recipe,
    X: np.ndarray,
    y: np.ndarray,
    dates: np.ndarray,
    ends: np.ndarray,
    folds: Sequence[Fold],
    cache: FitCache | None = None,
    base: np.ndarray | None = None,
) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """Held-out (y, p_keep) of every calibration method on the last folds,
    each fitted on fold k's training rows exactly as fit_recipe would fit it
    and scored on fold k's later validation block. A calibrated method trains
    its model on the rows before the last calibration_fraction of dates and
    fits the map on those dates; none trains on every row, so a calibration
    pays for the recent rows it cannot learn from."""
    candidates: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {
        method: [] for method in config.CALIBRATION_METHODS
    }
    for k in range(max(0, len(folds) - config.CALIBRATION_CHECK_FOLDS), len(folds)):
        train_k, validation_k = folds[k]
        fit_pos, cal_pos = calibration_split(dates, ends, train_k, recipe.calibration_fraction)
        if len(np.unique(y[train_k][fit_pos])) < 2 or len(np.unique(y[train_k][cal_pos])) < 2:
            continue
        for method in config.CALIBRATION_METHODS:
            model = fit_recipe(
                recipe.with_changes(calibration=method),
                X,
                y,
                dates,
                ends,
                train_k,
                cache,
                matrix_name(recipe.features),
                base,
            )
            candidates[method].append((y[validation_k], model.predict_proba(X[validation_k])[:, 1]))
    return candidates


def _check_models(data: TrainingData, settings: Settings) -> None:
    unknown = [m for m in settings.models if m not in config.MODEL_NAMES]
    if unknown:
        raise TrainingError(f"unknown model(s) {unknown}; choose from {list(config.MODEL_NAMES)}")
    if "anchor" in settings.models:
        missing = [f for f in config.ANCHOR_FEATURES if f not in data.features]
        if missing:
            raise TrainingError(
                f"the anchor model needs feature(s) {missing}, absent from feature_columns.json"
            )


def _split_and_folds(
    data: TrainingData, settings: Settings
) -> tuple[DateSplit, PurgedWalkForward, list[Fold], list[str]]:
    """The date split (refused when it cannot mean anything) and the walk-forward folds."""
    y, dates, ends = data.y, data.dates, data.label_end_dates
    try:
        split = time_split(dates, ends, settings.test_fraction)
    except ValueError as error:
        raise TrainingError(f"date split: {error}") from error
    train, test = split.train_index, split.test_index
    if len(train) == 0 or len(np.unique(y[train])) < 2:
        raise TrainingError(
            f"no usable training rows before the test start {split.test_start} "
            f"once label windows reaching it are purged ({len(train)} rows)"
        )
    warnings = check_test_period(data, split)
    for warning in warnings:
        LOG.info(f"warning: {warning}")
    LOG.info(
        f"split: train {len(train)} rows (label windows end before {split.test_start}), "
        f"test {len(test)} rows from {split.test_start}, {split.purged_rows} rows purged"
    )
    try:
        walk = PurgedWalkForward(
            dates[train], ends[train], settings.cv_folds, settings.cv_validation_fraction
        )
        folds = list(walk.split())
    except ValueError as error:
        raise TrainingError(f"walk-forward folds: {error}") from error
    for k, (tr, _va) in enumerate(folds):
        if len(np.unique(y[train][tr])) < 2:
            raise TrainingError(f"walk-forward fold {k + 1} trains on a single class")
    return split, walk, folds, warnings


def _fit_model(
    name: str,
    data: TrainingData,
    split: DateSplit,
    folds: list[Fold],
    rf_params: dict,
    rf_cv: dict | None,
    settings: Settings,
    cache: FitCache | None = None,
) -> ModelResult:
    """One model: its walk-forward folds, then fitted on the training rows and
    scored once on the test period (that fit is recorded in the FitCache: the
    evaluated fit and the backtest's first month train on the same rows)."""
    X, y = data.matrix(), data.y
    train, test = split.train_index, split.test_index
    pipeline = build_pipeline(name, data.features, data.categorical, rf_params, settings.rf_trees)
    cv = (
        rf_cv
        if (name == "random_forest" and rf_cv is not None)
        else cross_validate(
            pipeline, X[train], y[train], folds, cache, matrix_name(data.features), train
        )
    )
    if name in config.FOREST_MODELS:
        # the OOB score is reported for this fit only (it costs a prediction
        # per tree; the folds, backtest and refit skip it)
        pipeline.set_params(classifier__oob_score=True)
    fit_started = time.perf_counter()
    pipeline.fit(X[train], y[train])
    fit_seconds = time.perf_counter() - fit_started
    if cache is not None:
        cache.put(matrix_name(data.features), pipeline, train)
    p_test = pipeline.predict_proba(X[test])[:, 1]
    result = ModelResult(
        name,
        pipeline,
        cv,
        metrics(y[test], p_test),
        p_test,
        {"fit_seconds": fit_seconds, **_oob(pipeline, y[train])},
    )
    result.test["ece"] = expected_calibration_error(y[test], p_test)
    pools_test = data.frame["pool_id"].to_numpy()[test]
    result.test["ci"] = bootstrap_auc_by_pool(
        y[test], p_test, pools_test, settings.bootstrap_samples
    )
    return result


def _log_model(result: ModelResult) -> None:
    cv, test = result.cv, result.test
    LOG.info(
        f"  {result.name}: fold AUC {cv['cv_auc_mean']:.4f} +- {cv['cv_auc_std']:.4f}, "
        f"test AUC {test['roc_auc']:.4f} [{test['ci']['low']:.3f}, "
        f"{test['ci']['high']:.3f}], fit {result.extra['fit_seconds']:.1f} s"
    )


def _forest_settings(
    data: TrainingData,
    split: DateSplit,
    folds: list[Fold],
    settings: Settings,
    cache: FitCache | None = None,
) -> tuple[dict, list, dict | None]:
    rf_params, rf_selection, rf_cv = dict(settings.rf_candidates[0]), [], None
    if set(config.FOREST_MODELS) & set(settings.models):
        if "random_forest" in settings.models and len(settings.rf_candidates) > 1:
            LOG.info(f"choosing random-forest settings on {len(folds)} walk-forward folds")
            train = split.train_index
            rf_params, rf_selection, rf_cv = select_rf_params(
                data.matrix()[train],
                data.y[train],
                folds,
                data.features,
                data.categorical,
                settings,
                cache,
                train,
            )
        LOG.info(f"random forest: {settings.rf_trees} trees, {rf_params}")
    return rf_params, rf_selection, rf_cv


def _choose_calibration(
    recipe: Recipe,
    data: TrainingData,
    train: np.ndarray,
    folds: list[Fold],
    settings: Settings,
    cache: FitCache | None = None,
) -> CalibrationChoice:
    if settings.calibration == "auto":
        LOG.info(f"choosing calibration on the last {config.CALIBRATION_CHECK_FOLDS} folds")
        calibration = choose_method(
            calibration_candidates(
                recipe,
                data.matrix(recipe.features)[train],
                data.y[train],
                data.dates[train],
                data.label_end_dates[train],
                folds,
                cache,
                train,
            )
        )
    else:
        calibration = CalibrationChoice(settings.calibration, [])
    for row in calibration.table:
        LOG.info(
            f"  calibration {row['method']}: fold log loss {row['log_loss']:.4f}, "
            f"Brier {row['brier']:.4f}, ECE {row['ece']:.4f}"
            + (" (chosen)" if row["chosen"] else "")
        )
    LOG.info(f"calibration: {calibration.method}")
    return calibration


def assess_quality(
    data: TrainingData,
    split: DateSplit,
    results: dict[str, ModelResult],
    evaluated: CalibratedClassifier,
    recipe: Recipe,
    backtest: Backtest | None,
    settings: Settings,
) -> dict:
    """The weak-model verdict (models_py/quality.py) on the backtest's rows,
    else on the evaluated fit's test period; the heuristic baseline (fitted on
    the training rows) is scored on the same rows."""
    y, pools = data.y, data.frame["pool_id"].to_numpy()
    if backtest is not None and backtest.total:
        rows, basis = backtest.rows, "backtest"
        p = backtest.predictions["p_keep"].to_numpy()
    else:
        rows, basis = split.test_index, "evaluated fit's test period"
        p = evaluated.predict_proba(data.matrix(recipe.features)[rows])[:, 1]
    auc = safe_auc(y[rows], p)
    ci = bootstrap_auc_by_pool(y[rows], p, pools[rows], settings.bootstrap_samples)
    heuristic = results.get("heuristic")
    heuristic_auc = (
        safe_auc(y[rows], heuristic.pipeline.predict_proba(data.matrix()[rows])[:, 1])
        if heuristic is not None
        else float("nan")
    )
    assessed = quality.verdict(auc, ci, heuristic_auc, basis)
    if assessed["weak"]:
        LOG.info("WEAK MODEL: " + "; ".join(assessed["reasons"]))
    return assessed


def train_models(data: TrainingData, settings: Settings | None = None) -> TrainingResult:
    settings = settings or Settings()
    started = time.perf_counter()
    _check_models(data, settings)
    y, dates, ends = data.y, data.dates, data.label_end_dates
    split, walk, folds, warnings = _split_and_folds(data, settings)
    train = split.train_index
    feature_gates = []
    cache = FitCache() if settings.share_fits else None
    if settings.gate_features:
        data, feature_gates = gate_candidate_groups(
            data, train, folds, settings.rf_candidates[0], settings.rf_trees, cache
        )
    categorical = data.categorical
    data.matrix()  # built once, before a second thread reads it
    with ThreadPoolExecutor(max_workers=1) as beside:
        # the models that do not take the forest's settings are fitted on a
        # second thread while the settings are chosen (the forest's own threads
        # leave a core idle between fits); results are the same either way
        early = {
            name: beside.submit(_fit_model, name, data, split, folds, {}, None, settings, cache)
            for name in settings.models
            if name not in config.FOREST_MODELS
        }
        rf_params, rf_selection, rf_cv = _forest_settings(data, split, folds, settings, cache)
        results = {}
        for name in settings.models:
            results[name] = (
                early[name].result()
                if name in early
                else _fit_model(name, data, split, folds, rf_params, rf_cv, settings, cache)
            )
            _log_model(results[name])
    production, production_choice = choose_production(
        results,
        lambda: forest_seed_spread(
            data,
            train,
            folds,
            rf_params,
            settings.rf_trees,
            results["random_forest"].cv["fold_auc"],
            cache,
        )["spread"],
    )
    LOG.info(f"production model: {production} ({config.PRODUCTION_RULE})")
    recipe = Recipe(
        model=production,
        numeric=tuple(config.ANCHOR_NUMERIC if production == "anchor" else data.numeric),
        categorical=tuple(config.ANCHOR_CATEGORICAL if production == "anchor" else categorical),
        rf_params=dict(rf_params) if production in config.FOREST_MODELS else {},
        rf_trees=settings.rf_trees,
    )
    calibration = _choose_calibration(recipe, data, train, folds, settings, cache)
    recipe = recipe.with_changes(calibration=calibration.method)
    X_recipe = data.matrix(recipe.features)

    # the size guard measures what ships: the recipe fitted on the shipped rows
    shipped_rows = np.arange(len(y)) if settings.refit else train
    if settings.refit:
        LOG.info(f"refitting {production} on all {len(y)} labelled rows (the shipped fit)")
    shipped = fit_recipe(recipe, X_recipe, y, dates, ends, shipped_rows)
    recipe, shipped, size_guard = guard_size(
        recipe,
        shipped,
        X_recipe,
        y,
        dates,
        ends,
        shipped_rows,
        folds,
        train,
        settings,
        results[production].cv["cv_auc_mean"],
    )
    evaluated = (
        shipped
        if not settings.refit
        else fit_recipe(
            recipe, X_recipe, y, dates, ends, train, cache, matrix_name(recipe.features)
        )
    )
    held_out = _fold_predictions(results[production], recipe, rf_params, train, len(y))
    backtest = None
    if settings.backtest:
        LOG.info(f"monthly walk-forward backtest of {production} from {split.test_start}")
        backtest = monthly_backtest(
            recipe, data, split.test_start, confidence=True, cache=cache, held_out=held_out
        )
        if backtest.total:
            LOG.info(
                f"backtest: AUC {backtest.total['roc_auc']:.4f}, ECE {backtest.total['ece']:.4f} "
                f"over {len(backtest.months)} months"
            )
    cut = choose_cutpoints(*held_out.block(recipe, X_recipe, y, dates, ends, shipped_rows))
    cut["held_out_scored_by"] = held_out.source
    LOG.info(
        f"confidence words {' / '.join(cut['words'])} at levels {cut['levels']} of each hour's "
        f"shown probabilities (block-wide {[round(c, 2) for c in cut['cutpoints']]}) "
        f"on the shipped fit's held-out block ({held_out.source})"
        + (f": {cut['reason']}" if cut["reason"] else "")
    )
    ablation = None
    if settings.ablation:
        LOG.info(f"ablation: {production} without each feature group on the last folds")
        ablation = ablate_feature_groups(recipe, data, train, folds)
    return TrainingResult(
        data=data,
        split=split,
        folds=folds,
        fold_table=walk.describe(),
        results=results,
        production=production,
        production_choice=production_choice,
        recipe=recipe,
        evaluated_model=evaluated,
        shipped_model=shipped,
        shipped_rows=shipped_rows,
        calibration=calibration,
        backtest=backtest,
        ablation=ablation,
        rf_selection=rf_selection,
        rf_params=dict(recipe.rf_params),
        size_guard=size_guard,
        warnings=warnings,
        confidence=cut,
        seconds=time.perf_counter() - started,
        quality=assess_quality(data, split, results, evaluated, recipe, backtest, settings),
        feature_gates=feature_gates,
    )


def _fold_predictions(
    result: ModelResult, recipe: Recipe, rf_params: dict, train: np.ndarray, n_rows: int
) -> HeldOut:
    """The production model's walk-forward fold predictions, as held-out
    predictions of the recipe: only when they are its own (no calibration map,
    the forest settings the size guard kept)."""
    held_out = HeldOut(n_rows)
    own_params = recipe.model == "logistic" or dict(recipe.rf_params) == dict(rf_params)
    if recipe.calibration == "none" and own_params:
        for validation, p in result.cv["predictions"]:
            held_out.add(train[validation], p)
    return held_out


def guard_size(
    recipe: Recipe,
    model: CalibratedClassifier,
    X: np.ndarray,
    y: np.ndarray,
    dates: np.ndarray,
    ends: np.ndarray,
    rows: np.ndarray,
    folds: Sequence[Fold],
    train: np.ndarray,
    settings: Settings,
    cv_auc_mean: float,
) -> tuple[Recipe, CalibratedClassifier, list[dict]]:
    """--max-artefact-mb: grow min_samples_leaf until the model fitted on `rows`
    (what ships) fits; record the fold AUC cost (folds are over `train`)."""
    size_mb = pickled_size(model) / 1e6
    history = [
        {
            "min_samples_leaf": recipe.rf_params.get("min_samples_leaf"),
            "size_mb": size_mb,
            "cv_auc_mean": cv_auc_mean,
        }
    ]
    if size_mb <= settings.max_artefact_mb:
        return recipe, model, history
    if recipe.model not in config.FOREST_MODELS:
        raise TrainingError(
            f"{recipe.model} artefact is {size_mb:.1f} MB > "
            f"--max-artefact-mb {settings.max_artefact_mb}"
        )
    X_train, y_train = X[train], y[train]
    for _ in range(6):
        params = dict(recipe.rf_params)
        params["min_samples_leaf"] = int(params.get("min_samples_leaf", 1)) * 2
        recipe = recipe.with_changes(rf_params=params)
        pipeline = build_pipeline(
            recipe.model, recipe.features, list(recipe.categorical), params, recipe.rf_trees
        )
        cv = cross_validate(pipeline, X_train, y_train, folds)
        model = fit_recipe(recipe, X, y, dates, ends, rows)
        size_mb = pickled_size(model) / 1e6
        history.append(
            {
                "min_samples_leaf": params["min_samples_leaf"],
                "size_mb": size_mb,
                "cv_auc_mean": cv["cv_auc_mean"],
            }
        )
        LOG.info(
            f"  size guard: min_samples_leaf={params['min_samples_leaf']} -> {size_mb:.1f} MB, "
            f"fold AUC {cv['cv_auc_mean']:.4f}"
        )
        if size_mb <= settings.max_artefact_mb:
            return recipe, model, history
    raise TrainingError(
        f"could not bring the {recipe.model} artefact under "
        f"--max-artefact-mb {settings.max_artefact_mb} (last {size_mb:.1f} MB)"
    )
