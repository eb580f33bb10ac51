"""`apy-runway publish`: upload the latest features (column-wise JSON) and,
optionally, a training run folder to S3 for the inference Lambda.

Column-wise JSON (``{"columns": {"pool_id": [...], "apy": [...], ...}}``) is read
by the Lambda with the standard library: its layer holds scikit-learn and has no
room for pandas/pyarrow, and column-wise parses about twice as fast as row-wise
for 20k pools. Missing values are JSON null; dates are ISO strings.

The features key the scorer reads (contracts.FEATURES_KEY) is written last:
its S3 ObjectCreated event starts the scoring Lambda, which must find the new
model already there. The document's header carries `row_count` and
`allow_shrink`: a features file with fewer than half the pools of the one it
replaces is refused unless --allow-shrink, which then sets `allow_shrink: true`
so the Lambda accepts it too (the shrink rule, contracts.SHRINK_MIN_RATIO).
"""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import json
import math
import os
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from apy_runway.foundation.console import UserError, log
from apy_runway.foundation.paths import ProjectPaths
from apy_runway.foundation.s3 import ensure_bucket, s3_client, upload_run
from inference import contracts

# S3 object metadata of the features file: its pool count, read back by the
# next publish for the shrink rule without downloading the document.
ROW_COUNT_METADATA = "row-count"

COMMAND = "publish"
HELP = "upload latest_features (column-wise JSON) and optionally a run folder to S3"

RUN_FILES_REQUIRED = (contracts.MODEL_METADATA_FILE,)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bucket",
        default=os.environ.get("APY_RUNWAY_BUCKET"),
        help="S3 bucket (default: $APY_RUNWAY_BUCKET)",
    )
    parser.add_argument(
        "--endpoint-url",
        default=os.environ.get("AWS_ENDPOINT_URL"),
        help="S3 endpoint, e.g. a local server (default: $AWS_ENDPOINT_URL)",
    )
    parser.add_argument(
        "--features-key",
        default=contracts.FEATURES_KEY,
        help=f"key of the features JSON (default: {contracts.FEATURES_KEY})",
    )
    parser.add_argument(
        "--run",
        default=None,
        metavar="RUN",
        help="also upload this training run (folder, run id or 'latest')",
    )
    parser.add_argument(
        "--model-prefix",
        default=contracts.MODEL_PREFIX,
        help=f"key prefix for the run's files (default: {contracts.MODEL_PREFIX})",
    )
    parser.add_argument(
        "--create-bucket",
        action="store_true",
        help="create the bucket if missing (local S3 servers)",
    )
    add_allow_shrink(parser)


def add_allow_shrink(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-shrink",
        action="store_true",
        help=f"publish features with fewer than {contracts.SHRINK_MIN_RATIO:.0%} of the pools "
        "of the published ones (and tell the Lambda to accept them: allow_shrink: true)",
    )


def run(args: argparse.Namespace, paths: ProjectPaths) -> int:
    if not args.bucket:
        raise UserError("no bucket: pass --bucket or set APY_RUNWAY_BUCKET")
    payload = load_features_payload(paths, allow_shrink=args.allow_shrink)
    run_dir = resolve_run(paths, args.run) if args.run else None
    client = s3_client(args.endpoint_url)
    if args.create_bucket:
        ensure_bucket(client, args.bucket)
    publish(client, args.bucket, payload, run_dir, args.features_key, args.model_prefix)
    return 0


def publish(
    client,
    bucket: str,
    payload: dict,
    run_dir: Path | None = None,
    features_key: str = contracts.FEATURES_KEY,
    model_prefix: str = contracts.MODEL_PREFIX,
) -> int:
    """Check the shrink rule, upload the run (if any), then the features key
    last. Returns the features document's size in bytes."""
    check_shrink(client, bucket, features_key, payload)
    if run_dir is not None:
        keys = upload_run(client, bucket, model_prefix, run_dir)
        log(f"published run {run_dir.name} to s3://{bucket}/{model_prefix} ({len(keys)} files)")
    size = upload_features(client, bucket, features_key, payload)
    log(
        f"published {payload['row_count']} pools (features of {payload['snapshot_date_max']}) "
        f"to s3://{bucket}/{features_key} ({size / 1e6:.2f} MB)"
    )
    return size


def published_row_count(client, bucket: str, key: str) -> int | None:
    """The pool count of the features file now at `key` (None: none there, or
    published before the count was recorded)."""
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    value = head.get("Metadata", {}).get(ROW_COUNT_METADATA)
    return int(value) if value and value.isdigit() else None


def check_shrink(client, bucket: str, key: str, payload: dict) -> None:
    """Refuse features with fewer than half the published file's pools unless
    the payload says allow_shrink."""
    previous = published_row_count(client, bucket, key)
    count = payload[contracts.FEATURES_ROW_COUNT_FIELD]
    if contracts.is_shrunk(count, previous) and not payload.get(
        contracts.FEATURES_ALLOW_SHRINK_FIELD
    ):
        raise UserError(
            f"the features have {count:,} pools, below "
            f"{contracts.SHRINK_MIN_RATIO:.0%} of the {previous:,} published at "
            f"s3://{bucket}/{key}; nothing was published. Pass --allow-shrink if the "
            "pool count really fell"
        )


def resolve_run(paths: ProjectPaths, run: str | Path) -> Path:
    """A run folder from a path, a run id under runs/, or 'latest'."""
    candidate = Path(run)
    if not candidate.is_dir():
        candidate = paths.runs / str(run)
    if not candidate.is_dir():
        raise UserError(f"no training run at {candidate}: run `apy-runway train` first")
    candidate = candidate.resolve()
    missing = [name for name in RUN_FILES_REQUIRED if not (candidate / name).is_file()]
    if missing:
        raise UserError(f"run folder {candidate} lacks {missing}")
    metadata = json.loads((candidate / contracts.MODEL_METADATA_FILE).read_text())
    model_file = metadata.get("model_file") or contracts.MODEL_FILE
    if not (candidate / model_file).is_file():
        raise UserError(f"run folder {candidate} lacks its model file {model_file}")
    return candidate


def _json_value(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (bool, int, str)):
        return value
    return str(value)


def columnar_payload(
    columns: dict[str, list], feature_columns: dict, source: str = "", allow_shrink: bool = False
) -> dict[str, Any]:
    """Column-wise features document read by the scheduled Lambda."""
    missing = [
        name
        for name in feature_columns["features"] + ["pool_id", "snapshot_date"]
        if name not in columns
    ]
    if missing:
        raise UserError(f"latest features lack columns {missing} named by feature_columns.json")
    clean = {name: [_json_value(v) for v in values] for name, values in columns.items()}
    dates = [d for d in clean["snapshot_date"] if d]
    return {
        "format": contracts.FEATURES_FORMAT,
        "source": source,
        "published_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        contracts.FEATURES_ROW_COUNT_FIELD: len(clean["pool_id"]),
        contracts.FEATURES_ALLOW_SHRINK_FIELD: bool(allow_shrink),
        "snapshot_date_max": max(dates)[:10] if dates else None,
        "features": list(feature_columns["features"]),
        "numeric": list(feature_columns.get("numeric", [])),
        "categorical": list(feature_columns.get("categorical", [])),
        "columns": clean,
    }


def load_features_payload(paths: ProjectPaths, allow_shrink: bool = False) -> dict[str, Any]:
    """Read data/exports/latest_features.parquet + feature_columns.json."""
    import pyarrow.parquet as pq

    if not paths.latest_features.exists():
        raise UserError(f"no {paths.latest_features}: run `apy-runway build` first")
    if not paths.feature_columns.exists():
        raise UserError(f"no {paths.feature_columns}: run `apy-runway build` first")
    feature_columns = json.loads(paths.feature_columns.read_text())
    table = pq.read_table(paths.latest_features)
    return columnar_payload(
        table.to_pydict(),
        feature_columns,
        source=paths.latest_features.name,
        allow_shrink=allow_shrink,
    )


def upload_features(client, bucket: str, key: str, payload: dict) -> int:
    body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    client.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        ContentType="application/json",
        Metadata={ROW_COUNT_METADATA: str(payload[contracts.FEATURES_ROW_COUNT_FIELD])},
    )
    return len(body)
