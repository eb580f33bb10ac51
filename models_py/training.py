"""Fit and compare every model on one date split; choose the production model.

Settings (forest size, calibration, which model ships) are chosen on the
walk-forward folds before the test start T only; the test period is looked at
once, for the reported numbers.
"""

from __future__ import annotations

import copy
import io
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import joblib
import numpy as np
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from apy_runway.foundation.console import UserError, log
from models_py import config
from models_py.data import TrainingData
from models_py.evaluate import bootstrap_auc_by_pool, cross_validate, metrics
from models_py.pipelines import build_pipeline, strip_training_only_state
from models_py.splits import DateSplit, PurgedWalkForward, calibration_split, time_split

if TYPE_CHECKING:
    from collections.abc import Sequence

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
    calibration: str = config.CALIBRATION_DEFAULT  # "auto": decided on the folds; "off": never
    rf_reference: bool = False  # also score config.RF_REFERENCE on the folds (never chosen)


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
    production_model: Pipeline
    rf_selection: list
    rf_params: dict
    calibration: dict
    size_guard: list
    seconds: float

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
) -> tuple[dict, list, dict]:
    """Leanest candidate within tolerance of the best mean fold AUC (folds only)."""
    rows, cvs = [], []
    candidates = list(settings.rf_candidates) + (
        [config.RF_REFERENCE] if settings.rf_reference else []
    )
    for number, params in enumerate(candidates):
        pipeline = build_pipeline("random_forest", features, categorical, params, settings.rf_trees)
        cv = cross_validate(pipeline, X, y, folds)
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
        log(
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


def calibrated(pipeline: Pipeline, split: tuple[np.ndarray, np.ndarray]) -> Pipeline:
    """Same preprocessing; the estimator fitted on the split's first part and
    isotonic-calibrated on its second (one split: the artefact stays one forest)."""
    return Pipeline(
        [
            ("preprocess", clone(pipeline.named_steps["preprocess"])),
            (
                "classifier",
                CalibratedClassifierCV(
                    clone(pipeline.named_steps["classifier"]), method="isotonic", cv=[split]
                ),
            ),
        ]
    )


def calibration_check(
    pipeline: Pipeline,
    X: np.ndarray,
    y: np.ndarray,
    dates: np.ndarray,
    ends: np.ndarray,
    folds: Sequence[Fold],
    fold_predictions: Sequence[tuple[np.ndarray, np.ndarray]],
    n_check: int,
) -> dict:
    """Does isotonic calibration improve Brier (without worse log loss) on the last folds?

    For fold k the calibrated variant trains on fold k's training rows minus its
    last CALIBRATION_FRACTION of dates (purged), is calibrated on those dates,
    and is scored on fold k beside the raw fold-k model, so it pays for the
    recent rows it cannot train on.
    """
    raw, isotonic = [], []
    for k in range(max(0, len(folds) - n_check), len(folds)):
        train_k, validation_k = folds[k]
        fit_pos, cal_pos = calibration_split(dates, ends, train_k, config.CALIBRATION_FRACTION)
        if len(np.unique(y[train_k][cal_pos])) < 2 or len(np.unique(y[train_k][fit_pos])) < 2:
            continue
        model = calibrated(pipeline, (fit_pos, cal_pos)).fit(X[train_k], y[train_k])
        p_iso = model.predict_proba(X[validation_k])[:, 1]
        index, p_raw = fold_predictions[k]
        raw.append(metrics(y[index], p_raw))
        isotonic.append(metrics(y[validation_k], p_iso))
    if not raw:
        return {"raw_brier": None, "isotonic_brier": None, "improves": False, "folds_checked": 0}
    summary = {"folds_checked": len(raw)}
    for key in ("brier", "log_loss"):
        summary[f"raw_{key}"] = float(np.mean([m[key] for m in raw]))
        summary[f"isotonic_{key}"] = float(np.mean([m[key] for m in isotonic]))
    # Brier must improve and log loss must not get worse: isotonic steps can
    # output exactly 0 or 1 ("100 %" shown to users), which log loss punishes.
    summary["improves"] = (
        summary["isotonic_brier"] < summary["raw_brier"]
        and summary["isotonic_log_loss"] <= summary["raw_log_loss"]
    )
    return summary


def train_models(data: TrainingData, settings: Settings | None = None) -> TrainingResult:
    settings = settings or Settings()
    started = time.perf_counter()
    unknown = [m for m in settings.models if m not in config.MODEL_NAMES]
    if unknown:
        raise UserError(f"unknown model(s) {unknown}; choose from {list(config.MODEL_NAMES)}")
    if "anchor" in settings.models:
        missing = [f for f in config.ANCHOR_FEATURES if f not in data.features]
        if missing:
            raise UserError(
                f"the anchor model needs feature(s) {missing}, absent from feature_columns.json"
            )
    features, categorical = data.features, data.categorical
    X, y = data.matrix(), data.y
    split = time_split(data.dates, data.label_end_dates, settings.test_fraction)
    train, test = split.train_index, split.test_index
    if len(train) == 0 or len(np.unique(y[train])) < 2:
        raise UserError(
            f"no usable training rows before the test start {split.test_start} "
            f"once label windows reaching it are purged ({len(train)} rows)"
        )
    if len(np.unique(y[test])) < 2:
        raise UserError(f"the test period from {split.test_start} is single-class")
    log(
        f"split: train {len(train)} rows (label windows end before {split.test_start}), "
        f"test {len(test)} rows from {split.test_start}, {split.purged_rows} rows purged"
    )
    try:
        walk = PurgedWalkForward(
            data.dates[train],
            data.label_end_dates[train],
            settings.cv_folds,
            settings.cv_validation_fraction,
        )
        folds = list(walk.split())
    except ValueError as error:
        raise UserError(f"walk-forward folds: {error}") from error
    X_train, y_train = X[train], y[train]
    for k, (tr, _va) in enumerate(folds):
        if len(np.unique(y_train[tr])) < 2:
            raise UserError(f"walk-forward fold {k + 1} trains on a single class")

    rf_params, rf_selection, rf_cv = dict(settings.rf_candidates[0]), [], None
    if {"random_forest", "anchor"} & set(settings.models):
        if "random_forest" in settings.models and len(settings.rf_candidates) > 1:
            log(f"choosing random-forest settings on {len(folds)} walk-forward folds")
            rf_params, rf_selection, rf_cv = select_rf_params(
                X_train, y_train, folds, features, categorical, settings
            )
        log(f"random forest: {settings.rf_trees} trees, {rf_params}")

    results: dict[str, ModelResult] = {}
    for name in settings.models:
        pipeline = build_pipeline(name, features, categorical, rf_params, settings.rf_trees)
        cv = (
            rf_cv
            if (name == "random_forest" and rf_cv is not None)
            else cross_validate(pipeline, X_train, y_train, folds)
        )
        fit_started = time.perf_counter()
        pipeline.fit(X_train, y_train)
        fit_seconds = time.perf_counter() - fit_started
        p_test = pipeline.predict_proba(X[test])[:, 1]
        result = ModelResult(
            name,
            pipeline,
            cv,
            metrics(y[test], p_test),
            p_test,
            {"fit_seconds": fit_seconds, **_oob(pipeline, y_train)},
        )
        result.test["ci"] = bootstrap_auc_by_pool(
            y[test], p_test, data.frame["pool_id"].to_numpy()[test], settings.bootstrap_samples
        )
        results[name] = result
        log(
            f"  {name}: fold AUC {cv['cv_auc_mean']:.4f} +- {cv['cv_auc_std']:.4f}, "
            f"test AUC {result.test['roc_auc']:.4f} [{result.test['ci']['low']:.3f}, "
            f"{result.test['ci']['high']:.3f}], fit {fit_seconds:.1f} s"
        )

    production = choose_production(results)
    log(f"production model: {production}")
    production_model = results[production].pipeline
    train_dates, train_ends = data.dates[train], data.label_end_dates[train]
    if settings.calibration == "off":
        log("isotonic calibration: off")
        calibration = {
            "raw_brier": None,
            "isotonic_brier": None,
            "improves": False,
            "folds_checked": 0,
            "disabled": True,
        }
    else:
        log("checking isotonic calibration on the last folds")
        calibration = calibration_check(
            results[production].pipeline,
            X_train,
            y_train,
            train_dates,
            train_ends,
            folds,
            results[production].cv["predictions"],
            config.CALIBRATION_CHECK_FOLDS,
        )
    calibration["applied"] = False
    final_calibration_split = calibration_split(
        train_dates, train_ends, np.arange(len(train)), config.CALIBRATION_FRACTION
    )
    if calibration["improves"]:
        model = calibrated(results[production].pipeline, final_calibration_split)
        model.fit(X_train, y_train)
        p_test = model.predict_proba(X[test])[:, 1]
        calibration.update(applied=True, test=metrics(y[test], p_test))
        production_model = model
        results[production].extra["calibrated_test"] = calibration["test"]
    if calibration["raw_brier"] is not None:
        log(
            f"isotonic calibration: fold Brier {calibration['raw_brier']:.4f} -> "
            f"{calibration['isotonic_brier']:.4f}, log loss {calibration['raw_log_loss']:.4f} -> "
            f"{calibration['isotonic_log_loss']:.4f} "
            f"({'applied' if calibration['applied'] else 'not applied'})"
        )
    size_guard = guard_size(
        production,
        production_model,
        X_train,
        y_train,
        folds,
        features,
        categorical,
        rf_params,
        settings,
        calibration,
        final_calibration_split,
        results[production].cv["cv_auc_mean"],
    )
    if size_guard and size_guard[-1].get("model") is not None:
        production_model = size_guard[-1].pop("model")
    for row in size_guard:
        row.pop("model", None)
    return TrainingResult(
        data,
        split,
        folds,
        walk.describe(),
        results,
        production,
        production_model,
        rf_selection,
        rf_params,
        calibration,
        size_guard,
        time.perf_counter() - started,
    )


def choose_production(results: dict[str, ModelResult]) -> str:
    candidates = [n for n in config.PRODUCTION_CANDIDATES if n in results]
    if not candidates:
        raise UserError(
            f"no production candidate among the models (need one of {config.PRODUCTION_CANDIDATES})"
        )
    best = max(candidates, key=lambda n: results[n].cv["cv_auc_mean"])
    preferred = config.PREFERRED_PRODUCTION_MODEL
    if (
        preferred in results
        and results[best].cv["cv_auc_mean"]
        <= results[preferred].cv["cv_auc_mean"] + config.PRODUCTION_SWITCH_MARGIN
    ):
        return preferred
    return best


def guard_size(
    production: str,
    model: Pipeline,
    X: np.ndarray,
    y: np.ndarray,
    folds: Sequence[Fold],
    features: list[str],
    categorical: list[str],
    rf_params: dict,
    settings: Settings,
    calibration: dict,
    calibration_split_: tuple[np.ndarray, np.ndarray],
    cv_auc_mean: float,
) -> list[dict]:
    """--max-artefact-mb: grow min_samples_leaf until the artefact fits; record the cost."""
    size_mb = pickled_size(model) / 1e6
    history = [
        {
            "min_samples_leaf": rf_params.get("min_samples_leaf"),
            "size_mb": size_mb,
            "cv_auc_mean": cv_auc_mean,
        }
    ]
    if size_mb <= settings.max_artefact_mb or production not in ("random_forest", "anchor"):
        if size_mb > settings.max_artefact_mb:
            raise UserError(
                f"{production} artefact is {size_mb:.1f} MB > "
                f"--max-artefact-mb {settings.max_artefact_mb}"
            )
        return history
    params = dict(rf_params)
    for _ in range(6):
        params["min_samples_leaf"] = int(params.get("min_samples_leaf", 1)) * 2
        pipeline = build_pipeline(production, features, categorical, params, settings.rf_trees)
        cv = cross_validate(pipeline, X, y, folds)
        model = calibrated(pipeline, calibration_split_) if calibration.get("applied") else pipeline
        model.fit(X, y)
        size_mb = pickled_size(model) / 1e6
        history.append(
            {
                "min_samples_leaf": params["min_samples_leaf"],
                "size_mb": size_mb,
                "cv_auc_mean": cv["cv_auc_mean"],
                "model": model,
            }
        )
        log(
            f"  size guard: min_samples_leaf={params['min_samples_leaf']} -> {size_mb:.1f} MB, "
            f"fold AUC {cv['cv_auc_mean']:.4f}"
        )
        if size_mb <= settings.max_artefact_mb:
            rf_params.update(params)
            return history
    raise UserError(
        f"could not bring the {production} artefact under "
        f"--max-artefact-mb {settings.max_artefact_mb} (last {size_mb:.1f} MB)"
    )
