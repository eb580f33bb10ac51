"""The run folder: model.joblib + metadata.json, its hash check, the 'latest'
link and the optional S3 upload. The Lambda relies on this layout exactly.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

import joblib

from apy_runway.console import UserError

MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
LATEST = "latest"
REQUIRED_METADATA = (
    "model_id", "model_name", "model_file", "model_sha256", "model_size_bytes",
    "features", "numeric_features", "categorical_features", "label", "eligibility",
    "confidence_cutpoints", "training", "metrics", "library_versions", "created_at",
)
REQUIRED_LABEL = ("column", "horizon_days", "apy_drop_threshold", "apy_future_stat",
                  "min_future_coverage", "dead_pool_is_dropped")


def new_run_id(now: datetime | None = None) -> str:
    return (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def library_versions() -> dict:
    import numpy, pandas, scipy, sklearn
    return {"python": platform.python_version(), "scikit-learn": sklearn.__version__,
            "numpy": numpy.__version__, "scipy": scipy.__version__,
            "joblib": joblib.__version__, "pandas": pandas.__version__}


# Per-training-row arrays a fitted forest keeps for its OOB score: two floats per
# training row (68% of model.joblib at 300k rows, benchmarks/RESULTS.md), never
# used for prediction. The OOB score itself is reported before they are dropped.
TRAINING_ONLY_ATTRIBUTES = ("oob_decision_function_", "oob_prediction_")


def strip_training_only_state(model):
    """Drop the OOB arrays from every nested estimator (in place); return the model."""
    from inference.predict import iter_estimators

    for estimator in iter_estimators(model):
        for attribute in TRAINING_ONLY_ATTRIBUTES:
            if attribute in vars(estimator):
                delattr(estimator, attribute)
    return model


def save_model(model, run_dir: Path) -> dict:
    """Dump the pipeline without training-only state; return its file name, sha256 and size."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / MODEL_FILE
    strip_training_only_state(model)
    joblib.dump(model, path, compress=3)
    return {"model_file": MODEL_FILE, "model_sha256": sha256_file(path),
            "model_size_bytes": path.stat().st_size}


def write_metadata(run_dir: Path, metadata: dict) -> Path:
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise ValueError(f"metadata misses {missing}")
    missing_label = [key for key in REQUIRED_LABEL if key not in metadata["label"]]
    if missing_label:
        raise ValueError(f"metadata label misses {missing_label}")
    path = run_dir / METADATA_FILE
    path.write_text(json.dumps(_finite(metadata), indent=2, default=_json_default,
                               allow_nan=False) + "\n")
    return path


def _finite(value):
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


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def verify_artefact(run_dir: Path | str) -> dict:
    """Re-hash model.joblib against metadata.json; return the metadata if they agree.

    Raises UserError naming the problem (missing file, incomplete metadata,
    size or sha256 mismatch).
    """
    run_dir = Path(run_dir)
    meta_path = run_dir / METADATA_FILE
    if not meta_path.exists():
        raise UserError(f"no {METADATA_FILE} in {run_dir}")
    metadata = json.loads(meta_path.read_text())
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise UserError(f"{meta_path} misses {missing}")
    model_path = run_dir / metadata["model_file"]
    if not model_path.exists():
        raise UserError(f"no {metadata['model_file']} in {run_dir}")
    size = model_path.stat().st_size
    if size != metadata["model_size_bytes"]:
        raise UserError(f"{model_path}: size {size} bytes, metadata says "
                        f"{metadata['model_size_bytes']}: the artefact was changed")
    digest = sha256_file(model_path)
    if digest != metadata["model_sha256"]:
        raise UserError(f"{model_path}: sha256 {digest} does not match metadata "
                        f"{metadata['model_sha256']}: the artefact was changed")
    return metadata


def update_latest(runs_dir: Path, run_id: str) -> Path:
    """Point runs/latest at runs/<run_id> (relative link, replaced atomically)."""
    link = runs_dir / LATEST
    temporary = runs_dir / f".{LATEST}.{os.getpid()}"
    if temporary.is_symlink() or temporary.exists():
        temporary.unlink()
    temporary.symlink_to(run_id, target_is_directory=True)
    os.replace(temporary, link)
    return link


def upload_run(run_dir: Path, bucket: str, prefix: str = "", endpoint_url: str | None = None,
               client=None) -> list[str]:
    """Upload every file of the run folder to s3://bucket/prefix/<run_id>/...

    metadata.json goes last, so a reader that sees it finds the model already there.
    The endpoint comes from the argument, else AWS_ENDPOINT_URL (boto3 reads it).
    """
    import boto3

    verify_artefact(run_dir)
    if client is None:
        endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
        client = boto3.client("s3", endpoint_url=endpoint_url)
    from apy_runway.publish import upload_run as upload_run_files

    base = "/".join(part for part in (prefix.strip("/"), run_dir.name) if part)
    return upload_run_files(client, bucket, base + "/", run_dir)


def parse_s3_url(url: str) -> tuple[str, str]:
    if not url.startswith("s3://") or len(url) <= 5:
        raise UserError(f"--upload wants s3://bucket/prefix, got {url!r}")
    bucket, _, prefix = url[5:].partition("/")
    if not bucket:
        raise UserError(f"--upload wants s3://bucket/prefix, got {url!r}")
    return bucket, prefix.strip("/")
