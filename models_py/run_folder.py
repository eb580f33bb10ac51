"""The run folder runs/<run_id>/: the writer (model.joblib, the portable
model the Lambda serves - model_spec.json + model_arrays.npz - and
metadata.json), its hash check, the 'latest' link and the optional S3 upload.
The Lambda relies on this layout exactly (file names from inference.contracts).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib
import numpy as np

from inference import contracts, monitoring
from inference.model import artefact
from inference.scoring import binned_by_hour
from models_py import confidence, config, evaluate, export, report
from models_py.calibration import expected_calibration_error
from models_py.data import to_matrix
from models_py.errors import TrainingError
from models_py.pipelines import strip_training_only_state

LOG = logging.getLogger(__name__)

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from models_py.training import Settings, TrainingResult

MODEL_FILE = contracts.MODEL_FILE
METADATA_FILE = contracts.MODEL_METADATA_FILE
LATEST = "latest"
# the monthly backtest's scored rows (pool, day, label, p_keep, month)
BACKTEST_FILE = "backtest_predictions.parquet"
REQUIRED_METADATA = (
    "model_id",
    "model_name",
    "model_file",
    "model_sha256",
    "model_size_bytes",
    "portable",
    "features",
    "numeric_features",
    "categorical_features",
    "label",
    "eligibility",
    "confidence_cutpoints",
    "training",
    "metrics",
    "library_versions",
    "created_at",
)
REQUIRED_LABEL = ("column", *contracts.LABEL_SETTING_COLUMNS)


def new_run_id(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


def next_model_version(runs: Path, now: datetime | None = None) -> int:
    """The spec's model_version: the UTC time as YYYYMMDDHHMMSS, or one more
    than any run's in `runs` if that is higher, so it only increases (the
    Lambda refuses a version below the highest it has served)."""
    versions = [int((now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S"))]
    for path in runs.glob(f"*/{METADATA_FILE}"):
        try:
            version = json.loads(path.read_text()).get("model_version")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(version, int) and not isinstance(version, bool):
            versions.append(version + 1)
    return max(versions)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def library_versions() -> dict:
    import numpy
    import pandas
    import scipy
    import sklearn

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "joblib": joblib.__version__,
        "pandas": pandas.__version__,
    }


def save_model(model: Pipeline, run_dir: Path) -> dict:
    """Dump the pipeline without training-only state; return its file name, sha256 and size."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / MODEL_FILE
    strip_training_only_state(model)
    joblib.dump(model, path, compress=3)
    return {
        "model_file": MODEL_FILE,
        "model_sha256": sha256_file(path),
        "model_size_bytes": path.stat().st_size,
    }


def save_portable(
    model: Pipeline,
    run_dir: Path,
    facts: dict,
    check_rows: np.ndarray,
    signing_key: str | None,
    drift_reference: dict | None = None,
) -> dict:
    """Write model_spec.json + model_arrays.npz (checked against the pipeline's
    own predict_proba on `check_rows`); return metadata.json's `portable` block
    (the spec's file, size, sha256 and, with a signing key, HMAC-SHA256)."""
    try:
        spec, arrays, difference = export.export(
            model, facts, check_rows, drift_reference=drift_reference
        )
    except export.ExportError as error:
        raise TrainingError(
            f"cannot export {facts['model_name']} to the portable format: {error}"
        ) from error
    (run_dir / contracts.PORTABLE_ARRAYS_FILE).write_bytes(arrays)
    (run_dir / contracts.PORTABLE_SPEC_FILE).write_bytes(spec)
    signature = None
    if signing_key:
        try:
            key = artefact.check_signing_key(
                signing_key.encode(), contracts.ENVIRONMENT["signing_key"]
            )
        except artefact.ModelIntegrityError as error:
            raise TrainingError(str(error)) from error
        signature = artefact.hmac_hex(key, spec)
    LOG.info(
        f"portable model: {contracts.PORTABLE_SPEC_FILE} + {contracts.PORTABLE_ARRAYS_FILE} "
        f"({len(arrays) / 1e6:.2f} MB), max |difference| with predict_proba on "
        f"{len(check_rows)} test rows {difference:.1e}, "
        f"{'signed (HMAC-SHA256)' if signature else 'unsigned (no signing key)'}"
    )
    return {
        "format": contracts.PORTABLE_SPEC_FORMAT,
        "spec_file": contracts.PORTABLE_SPEC_FILE,
        "spec_sha256": artefact.sha256_hex(spec),
        "spec_size_bytes": len(spec),
        "spec_hmac_sha256": signature,
        "arrays_file": contracts.PORTABLE_ARRAYS_FILE,
        "arrays_sha256": artefact.sha256_hex(arrays),
        "arrays_size_bytes": len(arrays),
        "max_abs_difference_vs_predict_proba": difference,
        "check_rows": len(check_rows),
    }


def write_metadata(run_dir: Path, metadata: dict) -> Path:
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise ValueError(f"metadata misses {missing}")
    missing_label = [key for key in REQUIRED_LABEL if key not in metadata["label"]]
    if missing_label:
        raise ValueError(f"metadata label misses {missing_label}")
    path = run_dir / METADATA_FILE
    path.write_text(
        json.dumps(_finite(metadata), indent=2, default=_json_default, allow_nan=False) + "\n"
    )
    return path


def _finite(value: Any) -> object:
    """NaN/inf -> null, so metadata.json is strict JSON (e.g. a single-class month's AUC)."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _json_default(value: Any) -> object:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def verify_artefact(run_dir: Path | str) -> dict:
    """Re-hash model.joblib against metadata.json; return the metadata if they agree.

    Raises TrainingError naming the problem (missing file, incomplete metadata,
    size or sha256 mismatch).
    """
    run_dir = Path(run_dir)
    meta_path = run_dir / METADATA_FILE
    if not meta_path.exists():
        raise TrainingError(f"no {METADATA_FILE} in {run_dir}")
    metadata = json.loads(meta_path.read_text())
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise TrainingError(f"{meta_path} misses {missing}")
    portable = metadata["portable"] or {}
    for name, size_key, sha_key in (
        (metadata["model_file"], "model_size_bytes", "model_sha256"),
        (portable.get("spec_file"), "spec_size_bytes", "spec_sha256"),
        (portable.get("arrays_file"), "arrays_size_bytes", "arrays_sha256"),
    ):
        source = metadata if size_key.startswith("model") else portable
        path = run_dir / str(name)
        if not name or not path.exists():
            raise TrainingError(f"no {name} in {run_dir}")
        size = path.stat().st_size
        if size != source[size_key]:
            raise TrainingError(
                f"{path}: size {size} bytes, metadata says "
                f"{source[size_key]}: the artefact was changed"
            )
        digest = sha256_file(path)
        if digest != source[sha_key]:
            raise TrainingError(
                f"{path}: sha256 {digest} does not match metadata "
                f"{source[sha_key]}: the artefact was changed"
            )
    return metadata


def point_link(runs_dir: Path, name: str, run_id: str) -> Path:
    """Point runs/<name> at runs/<run_id> (relative link, replaced atomically)."""
    link = runs_dir / name
    temporary = runs_dir / f".{name}.{os.getpid()}"
    if temporary.is_symlink() or temporary.exists():
        temporary.unlink()
    temporary.symlink_to(run_id, target_is_directory=True)
    os.replace(temporary, link)
    return link


def update_latest(runs_dir: Path, run_id: str) -> Path:
    """Point runs/latest at runs/<run_id> (relative link, replaced atomically)."""
    return point_link(runs_dir, LATEST, run_id)


# --------------------------------------------------------------------------- writer


def _clean_cv(cv: dict) -> dict:
    return {k: v for k, v in cv.items() if k not in ("predictions", "last_model")}


def _dates(values: np.ndarray) -> tuple[str, str]:
    values = np.asarray(values).astype("datetime64[D]")
    return str(values.min()), str(values.max())


def drift_reference(
    data: Any,
    rows: np.ndarray,
    recipe: Any,
    model: Any,
    X: np.ndarray,
    reference_features: pd.DataFrame | None = None,
) -> dict:
    """The drift reference of the shipped model (inference.monitoring).

    Its features come from `reference_features` (models_py.data.
    load_reference_features: the eligible featurized rows of the newest
    contracts.DRIFT_REFERENCE_DAYS feature days, no labels needed), with the
    model's predicted Down share on them. Without it (a training set given
    alone, as the synthetic tests do) they come from the shipped fit's
    training rows of its newest DRIFT_REFERENCE_DAYS days, a label horizon
    older than the newest features: `source` says which. The label's Down
    share is always that of the newest labelled training days (labels exist
    only there)."""
    dates = data.dates[rows]
    last = dates.max()
    labelled = rows[dates > last - np.timedelta64(contracts.DRIFT_REFERENCE_DAYS, "D")]
    if reference_features is not None:
        frame = reference_features
        matrix = to_matrix(frame, recipe.features, list(recipe.categorical))
        days = frame["snapshot_date"].to_numpy(dtype="datetime64[D]")
        source = contracts.DRIFT_SOURCE_FEATURES
    else:
        frame = data.frame.iloc[labelled]
        matrix = X[labelled]
        days = data.dates[labelled]
        source = contracts.DRIFT_SOURCE_TRAINING_SET
    numeric = {
        name: frame[name].to_numpy(dtype=np.float64, na_value=np.nan) for name in recipe.numeric
    }
    categorical = {
        name: [None if v is None or v != v else str(v) for v in frame[name].tolist()]
        for name in recipe.categorical
    }
    p_keep = model.predict_proba(matrix)[:, 1]
    return monitoring.reference(
        numeric,
        categorical,
        label_down_share=float(1 - data.y[labelled].mean()),
        predicted_down_share=float(np.mean(contracts.predicted_class_is_down(p_keep))),
        first_day=str(days.min()),
        last_day=str(days.max()),
        source=source,
        days=np.asarray(days).astype("datetime64[D]").astype(str),
    )


def confidence_table(
    result: TrainingResult, p_test: np.ndarray, cutpoints: list[float]
) -> tuple[pd.DataFrame, str]:
    """The hit rate per confidence word: from the monthly backtest (each month
    binned by its own refit's levels) when it ran, else the evaluated fit's
    test period binned by the shipped levels; with the base rate."""
    backtest = result.backtest
    if backtest is not None and "binned_confidence" in backtest.predictions:
        frame = backtest.predictions
        return (
            confidence.hit_rate_table(
                frame["is_apy_kept"], frame["p_keep"], frame["binned_confidence"]
            ),
            "the monthly backtest",
        )
    y = result.data.y[result.test_index]
    dates = result.data.dates[result.test_index]
    bins, _, _ = binned_by_hour(p_test, dates, result.confidence["levels"], cutpoints)
    return confidence.hit_rate_table(y, p_test, bins), "the evaluated fit's test period"


def write_run(
    result: TrainingResult,
    run_dir: Path,
    run_id: str,
    settings: Settings,
    with_report: bool = True,
    signing_key: str | None = None,
    reference_features: pd.DataFrame | None = None,
    provenance: dict | None = None,
) -> dict:
    """Save the shipped model (model.joblib and the portable model, signed with
    `signing_key` when given) + metadata (+ report): the evaluated fit's test
    metrics, the shipped fit's training range, the monthly backtest, the
    weak-model verdict and where the data came from (`provenance`: see
    data_provenance in docs/model.md; unknown when not given)."""
    provenance = provenance or {"kind": "unknown"}
    data, train, test = result.data, result.train_index, result.test_index
    recipe = result.recipe
    X, y = data.matrix(recipe.features), data.y
    frame = data.frame
    evaluated, shipped = result.evaluated_model, result.shipped_model
    p_test = evaluated.predict_proba(X[test])[:, 1]
    production_test = evaluate.metrics(y[test], p_test)
    production_test["ece"] = expected_calibration_error(y[test], p_test)
    pools_test = frame["pool_id"].to_numpy()[test]
    production_test["ci"] = evaluate.bootstrap_auc_by_pool(
        y[test], p_test, pools_test, settings.bootstrap_samples
    )
    raw_test = result.results[result.production].test
    cutpoints = [float(c) for c in result.confidence["cutpoints"]]
    hit_rate, hit_rate_source = confidence_table(result, p_test, cutpoints)
    latency = evaluate.time_predict(shipped, X[test], config.LATENCY_ROWS)

    anchor = result.results.get("anchor")
    model_metrics = {}
    for name, res in result.results.items():
        entry = {"test": res.test, "cv": _clean_cv(res.cv), **res.extra}
        if anchor is not None:
            entry["lift_over_anchor"] = {
                "test_roc_auc": res.test["roc_auc"] - anchor.test["roc_auc"],
                "cv_auc_mean": res.cv["cv_auc_mean"] - anchor.cv["cv_auc_mean"],
            }
        model_metrics[name] = entry
    model_metrics[result.production]["production_test"] = production_test

    run_dir.mkdir(parents=True)
    saved = save_model(shipped, run_dir)
    train_dates, test_dates = _dates(data.dates[train]), _dates(data.dates[test])
    shipped_rows = result.shipped_rows
    shipped_dates = _dates(data.dates[shipped_rows])
    backtest = result.backtest
    versions = library_versions()
    facts = {
        "model_id": run_id,
        "model_name": result.production,
        "features": recipe.features,
        "numeric_features": list(recipe.numeric),
        "categorical_features": list(recipe.categorical),
        "label": data.label,
        "eligibility": dict(contracts.ELIGIBILITY),
        "confidence_cutpoints": [float(c) for c in cutpoints],
        "library_versions": versions,
        "model_version": next_model_version(run_dir.parent),
        "data_provenance": provenance,
        "confidence": {key: result.confidence[key] for key in ("words", "reason", "levels")},
    }
    reference = drift_reference(data, shipped_rows, recipe, shipped, X, reference_features)
    portable = save_portable(shipped, run_dir, facts, X[test], signing_key, reference)
    metadata = {
        "model_id": run_id,
        "model_version": facts["model_version"],
        "model_name": result.production,
        **saved,
        "portable": portable,
        "features": recipe.features,
        "numeric_features": list(recipe.numeric),
        "categorical_features": list(recipe.categorical),
        "label": data.label,
        "eligibility": dict(contracts.ELIGIBILITY),
        "confidence_cutpoints": cutpoints,
        "confidence": {
            **result.confidence,
            "chosen_on": "the shipped fit's held-out block (the last "
            f"{config.CONFIDENCE_HOLDOUT_FRACTION:.0%} of its training dates, scored out of "
            "sample: held_out_scored_by)",
            "hit_rates": hit_rate.to_dict(orient="records"),
            "hit_rates_from": hit_rate_source,
        },
        "classes": {str(label): name for label, name in contracts.CLASS_NAMES.items()},
        "recipe": recipe.to_dict(),
        "quality": result.quality,
        "data_provenance": provenance,
        "production_choice": {
            "rule": config.PRODUCTION_RULE,
            "candidates": result.production_choice,
        },
        "evaluated_fit": {
            "train_start": train_dates[0],
            "train_end": train_dates[1],
            "train_rows": len(train),
            "test_start": str(result.split.test_start),
            "test_end": test_dates[1],
            "test": production_test,
            "uncalibrated_test": raw_test,
        },
        "shipped_fit": {
            "train_start": shipped_dates[0],
            "train_end": shipped_dates[1],
            "train_rows": len(shipped_rows),
            "train_pools": int(frame["pool_id"].iloc[shipped_rows].nunique()),
            "label_window_end_max": str(data.label_end_dates[shipped_rows].max()),
            "refit": bool(settings.refit),
        },
        "backtest": (
            {"months": backtest.months, "total": backtest.total} if backtest is not None else None
        ),
        "feature_gates": result.feature_gates,
        "ablation": (
            {
                "folds": result.ablation.folds,
                "trees": result.ablation.trees,
                "baseline_auc": result.ablation.baseline_auc,
                "seed_noise": result.ablation.seed_noise,
                "no_cost_margin": result.ablation.margin,
                "groups": result.ablation.groups,
            }
            if result.ablation is not None
            else None
        ),
        "training": {
            "train_start": train_dates[0],
            "train_end": train_dates[1],
            "test_start": str(result.split.test_start),
            "test_end": test_dates[1],
            "train_rows": len(train),
            "test_rows": len(test),
            "purged_rows": int(result.split.purged_rows),
            "train_pools": int(frame["pool_id"].iloc[train].nunique()),
            "test_pools": int(frame["pool_id"].iloc[test].nunique()),
            "dropped_rows": data.dropped,
            "walk_forward_folds": result.fold_table,
            "warnings": result.warnings,
            "seconds": round(result.seconds, 1),
        },
        "metrics": model_metrics,
        "random_forest": {
            "n_estimators": settings.rf_trees,
            "params": result.rf_params,
            "candidates_on_folds": result.rf_selection,
            "size_guard": result.size_guard,
            "max_artefact_mb": settings.max_artefact_mb,
        },
        "calibration": {
            "method": recipe.calibration,
            "chosen_on": (
                f"the last {config.CALIBRATION_CHECK_FOLDS} walk-forward folds"
                if result.calibration.table
                else "--calibration"
            ),
            "candidates": result.calibration.table,
            "isotonic_min_bin": config.CALIBRATION_MIN_BIN,
            "clip": {
                "low": shipped.low,
                "high": shipped.high,
                "rule": "Laplace: 1/(n+2) with n the calibration rows of the extreme bin",
            },
        },
        "predict_proba_latency": latency,
        "library_versions": versions,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if backtest is not None and len(backtest.predictions):
        backtest.predictions.to_parquet(run_dir / BACKTEST_FILE, index=False)
        metadata["backtest"]["predictions_file"] = BACKTEST_FILE
    if with_report:
        metadata["report"] = "report.md"
        report.write_full_report(result, run_dir, metadata, X, y, p_test, hit_rate)
    write_metadata(run_dir, metadata)
    return metadata
