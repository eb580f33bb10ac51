"""`apy-runway train`: train, compare and save the model; write the run folder.

Reads data/exports/training_set.parquet and feature_columns.json (from
`apy-runway build`), splits on dates with the label-window purge, compares the
baselines, logistic regression, the random forest and the prototype anchor on
walk-forward folds and on the test period, and writes runs/<run_id>/
(model.joblib, the portable model_spec.json + model_arrays.npz the Lambda
serves, metadata.json, report.md + plots), then points runs/latest at it.
$APY_RUNWAY_SIGNING_KEY, when set, signs the portable spec (HMAC-SHA256).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from apy_runway.foundation import s3
from apy_runway.foundation.console import UserError, log
from apy_runway.foundation.paths import DRIFT_REFERENCE_FEATURES_FILE, ProjectPaths
from apy_runway.foundation.s3 import parse_s3_url
from inference import contracts
from inference.settings import ENVIRONMENT
from models_py import config, run_folder
from models_py.data import load_reference_features, load_training_set
from models_py.training import Settings, train_models

SIGNING_KEY_ENV = ENVIRONMENT["signing_key"]

COMMAND = "train"
HELP = "train and evaluate the models on the exported training set; write runs/<run_id>/"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_training_arguments(parser)
    parser.add_argument(
        "--upload",
        default=None,
        metavar="s3://BUCKET/PREFIX",
        help="upload the run folder to s3://BUCKET/PREFIX/<run_id>/",
    )
    parser.add_argument(
        "--endpoint-url",
        default=None,
        help="S3 endpoint for --upload (default: $AWS_ENDPOINT_URL or AWS)",
    )
    parser.add_argument(
        "--explore-labels",
        action="store_true",
        help="also retrain under each label variant (rebuilds the labels with "
        "dbt, then restores the default build); writes label_variants.md",
    )
    parser.add_argument(
        "--labels-model",
        default=config.LABELS_MODEL,
        help=f"dbt labels model rebuilt per variant (default {config.LABELS_MODEL})",
    )


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags `train` and `retrain` share."""
    parser.add_argument(
        "--training-set",
        type=Path,
        default=None,
        help="training set parquet (default: data/exports/training_set.parquet); the drift "
        "reference is read from drift_reference_features.parquet beside it (without it: the "
        "newest labelled days)",
    )
    parser.add_argument(
        "--feature-columns",
        type=Path,
        default=None,
        help="feature contract (default: data/exports/feature_columns.json)",
    )
    parser.add_argument(
        "--run-id", default=None, help="run folder name (default: UTC time, e.g. 20261125T123456Z)"
    )
    parser.add_argument(
        "--models",
        default=",".join(config.MODEL_NAMES),
        help=f"comma-separated models (default: all of {','.join(config.MODEL_NAMES)})",
    )
    parser.add_argument(
        "--rf-trees",
        type=int,
        default=config.RF_TREES,
        help=f"trees per random forest (default {config.RF_TREES})",
    )
    parser.add_argument(
        "--rf-reference",
        action="store_true",
        help="also score a prototype-sized forest (100 trees, min_samples_leaf=1) "
        "on the folds, to state the lean forest's AUC cost (slow; never chosen)",
    )
    parser.add_argument(
        "--max-artefact-mb",
        type=float,
        default=config.MAX_ARTEFACT_MB,
        help="grow min_samples_leaf until model.joblib fits "
        f"(default {config.MAX_ARTEFACT_MB:g} MB)",
    )
    parser.add_argument(
        "--calibration",
        choices=[*config.CALIBRATION_CHOICES, "off"],
        default=config.CALIBRATION_DEFAULT,
        help="auto: none, sigmoid or isotonic, whichever has the lowest held-out log loss "
        "on the last walk-forward folds; or force one method (off = none) "
        f"(default {config.CALIBRATION_DEFAULT})",
    )
    parser.add_argument(
        "--no-backtest",
        dest="backtest",
        action="store_false",
        help="skip the monthly walk-forward backtest (the report's headline)",
    )
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="also refit the production recipe without each feature group on the last "
        f"{config.ABLATION_FOLDS} folds and report which groups can be dropped at no cost "
        "(a study: about 2 minutes on the default data)",
    )
    parser.add_argument(
        "--no-refit",
        dest="refit",
        action="store_false",
        help="ship the evaluated fit instead of the recipe refitted on every labelled row",
    )
    parser.add_argument(
        "--no-report", action="store_true", help="skip report.md, plots and permutation importance"
    )


def parse_models(text: str) -> tuple[str, ...]:
    models = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in models if m not in config.MODEL_NAMES]
    if unknown or not models:
        raise UserError(
            f"--models: unknown {unknown or text!r}; choose from {','.join(config.MODEL_NAMES)}"
        )
    return models


def settings_from_args(args: argparse.Namespace) -> Settings:
    if args.rf_trees < 1:
        raise UserError(f"--rf-trees must be >= 1, got {args.rf_trees}")
    return Settings(
        models=parse_models(args.models),
        rf_trees=args.rf_trees,
        max_artefact_mb=args.max_artefact_mb,
        calibration=args.calibration,
        rf_reference=args.rf_reference,
        backtest=args.backtest,
        ablation=args.ablation,
        refit=args.refit,
    )


def run(args: argparse.Namespace, paths: ProjectPaths) -> int:
    settings = settings_from_args(args)
    train(
        paths,
        settings,
        training_set=args.training_set,
        feature_columns=args.feature_columns,
        run_id=args.run_id,
        with_report=not args.no_report,
        explore_labels=args.explore_labels,
        labels_model=args.labels_model,
        upload=args.upload,
        endpoint_url=args.endpoint_url,
    )
    return 0


def train(
    paths: ProjectPaths,
    settings: Settings | None = None,
    training_set: Path | None = None,
    feature_columns: Path | None = None,
    run_id: str | None = None,
    with_report: bool = True,
    explore_labels: bool = False,
    labels_model: str = config.LABELS_MODEL,
    upload: str | None = None,
    endpoint_url: str | None = None,
    signing_key: str | None = None,
) -> Path:
    """Train on the exported training set, write runs/<run_id>/ and point
    runs/latest at it; return the run folder. The portable spec is signed with
    `signing_key`, by default $APY_RUNWAY_SIGNING_KEY (unsigned when unset)."""
    settings = settings or Settings()
    if signing_key is None:
        signing_key = os.environ.get(SIGNING_KEY_ENV) or None
    upload_target = parse_s3_url(upload) if upload else None
    training_set = training_set or paths.training_set
    feature_columns = feature_columns or paths.feature_columns
    run_id = run_id or run_folder.new_run_id()
    run_dir = paths.runs / run_id
    if run_id == run_folder.LATEST or "/" in run_id:
        raise UserError(f"--run-id {run_id!r} is not a valid folder name")
    if run_dir.exists():
        raise UserError(f"run folder {run_dir} already exists: choose another --run-id")
    if explore_labels and Path(training_set).resolve() != paths.training_set.resolve():
        raise UserError(
            "--explore-labels rebuilds the project's own export; "
            f"it cannot be combined with --training-set {training_set}"
        )
    data = load_training_set(training_set, feature_columns)
    log(
        f"training set: {len(data.frame)} eligible labelled rows, "
        f"{data.frame['pool_id'].nunique()} pools, {len(data.features)} features "
        f"(dropped {data.dropped}); label {data.label}"
    )
    reference_features = None
    reference_file = Path(training_set).parent / DRIFT_REFERENCE_FEATURES_FILE
    if reference_file.exists():
        reference_features = load_reference_features(reference_file, data)
        log(
            f"drift reference: {len(reference_features)} eligible featurized rows of "
            f"{reference_features['snapshot_date'].min():%Y-%m-%d}.."
            f"{reference_features['snapshot_date'].max():%Y-%m-%d} ({reference_file})"
        )
    else:
        log(
            f"drift reference: no {reference_file}; using the shipped fit's newest "
            f"{contracts.DRIFT_REFERENCE_DAYS} labelled training days instead (a label "
            "horizon older than the newest features: expect calendar-driven drift)"
        )
    result = train_models(data, settings)
    metadata = run_folder.write_run(
        result,
        run_dir,
        run_id,
        settings,
        with_report=with_report,
        signing_key=signing_key,
        reference_features=reference_features,
    )
    run_folder.verify_artefact(run_dir)
    link = run_folder.update_latest(paths.runs, run_id)
    log(
        f"wrote {run_dir} ({metadata['model_name']}, test AUC "
        f"{metadata['metrics'][metadata['model_name']]['production_test']['roc_auc']:.4f}, "
        f"{metadata['model_size_bytes'] / 1e6:.1f} MB); {link} -> {run_id}"
    )
    if explore_labels:
        from apy_runway.operations.explore_labels import explore_label_variants

        explore_label_variants(
            paths,
            run_dir,
            settings,
            result.rf_params,
            labels_model=labels_model,
            training_set=training_set,
            feature_columns=feature_columns,
        )
    if upload_target:
        bucket, prefix = upload_target
        keys = upload_run_folder(run_dir, bucket, prefix, endpoint_url=endpoint_url)
        log(
            f"uploaded {len(keys)} files to s3://{bucket}/{prefix + '/' if prefix else ''}{run_id}/"
        )
    return run_dir


def upload_run_folder(
    run_dir: Path,
    bucket: str,
    prefix: str = "",
    endpoint_url: str | None = None,
    client: Any = None,
) -> list[str]:
    """Upload every file of the run folder to s3://bucket/prefix/<run_id>/...

    metadata.json goes last, so a reader that sees it finds the model already there.
    The endpoint comes from the argument, else AWS_ENDPOINT_URL (boto3 reads it).
    """
    run_folder.verify_artefact(run_dir)
    if client is None:
        client = s3.s3_client(endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None)
    base = "/".join(part for part in (prefix.strip("/"), run_dir.name) if part)
    return s3.upload_run(client, bucket, base + "/", run_dir)
