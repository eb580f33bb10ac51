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

import os
from pathlib import Path
from typing import Any

from apy_runway.foundation import s3
from apy_runway.foundation.console import UserError, log
from apy_runway.foundation.paths import DRIFT_REFERENCE_FEATURES_FILE, ProjectPaths
from apy_runway.foundation.s3 import parse_s3_url
from apy_runway.operations.provenance import data_provenance
from inference import contracts
from models_py import config, run_folder
from models_py.data import load_reference_features, load_training_set
from models_py.quality import describe_provenance
from models_py.training import Settings, train_models

SIGNING_KEY_ENV = contracts.ENVIRONMENT["signing_key"]


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
    provenance = data_provenance(paths, Path(training_set))
    log(f"data provenance: {describe_provenance(provenance)}")
    result = train_models(data, settings)
    metadata = run_folder.write_run(
        result,
        run_dir,
        run_id,
        settings,
        with_report=with_report,
        signing_key=signing_key,
        reference_features=reference_features,
        provenance=provenance,
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
        client = s3.s3_client(endpoint_url or os.environ.get(contracts.ENV_S3_ENDPOINT) or None)
    base = "/".join(part for part in (prefix.strip("/"), run_dir.name) if part)
    return s3.upload_run(client, bucket, base + "/", run_dir)
