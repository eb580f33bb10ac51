"""`apy-runway publish`: upload the latest features and, optionally, a training
run folder to S3 for the inference Lambda. The features go up twice: the binary
file the hourly Lambda reads (inference/features.py) and a column-wise JSON copy
for people (docs/serving.md#the-features-files-format).

Imports: botocore, the standard library, apy_runway/foundation and operations,
and inference/ (floor 6, operations). The binary file is written last: its S3
ObjectCreated event starts the scoring Lambda, which must find the new model
and the JSON already there. Its header carries row_count and allow_shrink, so
the Lambda applies the same shrink rule (contracts.is_shrunk) publish did, and,
published by `refresh`, the refresh's fields (features.refresh_fields) health reads.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from apy_runway.foundation.console import UserError, log
from apy_runway.foundation.paths import ProjectPaths
from apy_runway.foundation.s3 import upload_run
from apy_runway.operations.promote import run_model_version, served_version_max
from apy_runway.operations.runs import check_fit_to_ship
from inference import contracts, features
from models_py.run_folder import verify_artefact

# S3 object metadata of the features file: its pool count, read back by the
# next publish for the shrink rule without downloading the document.
ROW_COUNT_METADATA = "row-count"


def publish(
    client,
    bucket: str,
    latest: LatestFeatures,
    run_dir: Path | None = None,
    features_key: str = contracts.FEATURES_KEY,
    json_key: str = contracts.FEATURES_JSON_KEY,
    model_prefix: str = contracts.MODEL_PREFIX,
    allow_weak: bool = False,
    allow_synthetic: bool = False,
) -> int:
    """Check the shrink rule, upload the run (if any: refused when weak or
    trained on generated data, unless allowed), then the features: JSON, and
    the binary file the scorer follows last. Returns the binary size."""
    if run_dir is not None:
        check_fit_to_ship(verify_artefact(run_dir), "publish", allow_weak, allow_synthetic)
    check_shrink(client, bucket, features_key, latest.payload)
    if run_dir is not None:
        check_not_older(client, bucket, run_dir)
        keys = upload_run(client, bucket, model_prefix, run_dir)
        log(f"published run {run_dir.name} to s3://{bucket}/{model_prefix} ({len(keys)} files)")
    json_size, binary_size = publish_features(client, bucket, latest, features_key, json_key)
    log(
        f"published {latest.payload['row_count']} pools (features of "
        f"{latest.payload['snapshot_date_max']}) to s3://{bucket}/{features_key} "
        f"({binary_size / 1e6:.2f} MB) and, as JSON, {json_key} ({json_size / 1e6:.2f} MB)"
    )
    return binary_size


def check_not_older(client, bucket: str, run_dir: Path) -> None:
    """Refuse a run whose model_version is below the highest the Lambda has
    served: it would refuse to serve it. A deliberate rollback is promote's."""
    served = served_version_max(client, bucket)
    version, _ = run_model_version(run_dir)
    if served is not None and version < served:
        raise UserError(
            f"run {run_dir.name} has model_version {version}, below {served}, the highest the "
            f"Lambda has served from s3://{bucket}; nothing was published. To roll back on "
            f"purpose: apy-runway promote --run {run_dir.name} --bucket {bucket}"
        )


def published_row_count(client, bucket: str, key: str) -> int | None:
    """The pool count of the features file now at `key` (None: none there, or
    published before the count was recorded). Without s3:ListBucket, S3
    answers a HEAD of a missing key with 403: that is "none there" too (a put
    the caller may not make fails on its own, loudly)."""
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        if code in ("404", "NoSuchKey", "NotFound", "403", "AccessDenied", "Forbidden"):
            return None
        raise
    value = head.get("Metadata", {}).get(ROW_COUNT_METADATA)
    return int(value) if value and value.isdigit() else None


def check_shrink(client, bucket: str, key: str, payload: dict) -> None:
    """Refuse features with fewer than half the published file's pools unless
    the payload says allow_shrink; features of no pool always, on a fresh
    bucket too."""
    count = payload[contracts.FEATURES_ROW_COUNT_FIELD]
    if count == 0:
        raise UserError(
            "the features hold 0 pools: a features file of no pool is never published "
            f"(s3://{bucket}/{key} was left as it was)"
        )
    previous = published_row_count(client, bucket, key)
    if contracts.is_shrunk(count, previous) and not payload.get(
        contracts.FEATURES_ALLOW_SHRINK_FIELD
    ):
        raise UserError(
            f"the features have {count:,} pools, below "
            f"{contracts.SHRINK_MIN_RATIO:.0%} of the {previous:,} published at "
            f"s3://{bucket}/{key}; nothing was published. Pass --allow-shrink if the "
            "pool count really fell"
        )


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
    columns: dict[str, list],
    feature_columns: dict,
    source: str = "",
    allow_shrink: bool = False,
    refresh: dict | None = None,
) -> dict[str, Any]:
    """Column-wise features document (JSON, for people); `refresh`
    (features.refresh_fields) goes in it as in the binary file's header."""
    missing = [
        name
        for name in feature_columns["features"] + ["pool_id", "snapshot_date"]
        if name not in columns
    ]
    if missing:
        raise UserError(f"latest features lack columns {missing} named by feature_columns.json")
    clean = {name: [_json_value(v) for v in values] for name, values in columns.items()}
    dates = [d for d in clean["snapshot_date"] if d]
    try:
        refreshed = features.checked_refresh(refresh)
    except features.FeatureContractError as error:
        raise UserError(f"latest features: {error}") from error
    return {
        **refreshed,
        "format": contracts.FEATURES_JSON_FORMAT,
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


class LatestFeatures:
    """The latest features read once: the JSON payload for people and the
    binary file for the scorer."""

    def __init__(self, payload: dict, binary: bytes, inactive: list[str] | None = None) -> None:
        self.payload = payload
        self.binary = binary
        self.inactive = inactive or []  # pools left out: unseen too long


def _read_latest(paths: ProjectPaths) -> tuple[Any, dict]:
    import pyarrow.parquet as pq

    if not paths.latest_features.exists():
        raise UserError(f"no {paths.latest_features}: run `apy-runway build` first")
    if not paths.feature_columns.exists():
        raise UserError(f"no {paths.feature_columns}: run `apy-runway build` first")
    feature_columns = json.loads(paths.feature_columns.read_text())
    return pq.read_table(paths.latest_features), feature_columns


def binary_columns(table: Any, feature_columns: dict) -> dict[str, Any]:
    """Arrow table -> columns for inference.features.encode: numeric columns
    as float64 arrays (nulls NaN), the rest as Python values."""
    import pyarrow as pa
    import pyarrow.compute as pc

    categorical = set(feature_columns.get("categorical", []))
    columns: dict[str, Any] = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        kind = column.type
        numeric = (
            pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
        )
        if numeric and name not in categorical:
            columns[name] = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
        else:
            columns[name] = column.to_pylist()
    return columns


def features_binary(
    table: Any,
    feature_columns: dict,
    source: str = "",
    allow_shrink: bool = False,
    refresh: dict | None = None,
) -> bytes:
    try:
        return features.encode(
            binary_columns(table, feature_columns),
            feature_columns,
            source=source,
            allow_shrink=allow_shrink,
            refresh=refresh,
        )
    except features.FeatureContractError as error:
        raise UserError(f"latest features: {error}") from error


def active_rows(table: Any, inactive_after_days: int) -> tuple[Any, list[str]]:
    """The rows of pools whose feature day is within `inactive_after_days` of
    the newest one, and the pool ids left out (unseen for longer)."""
    import datetime as dt

    import pyarrow as pa
    import pyarrow.compute as pc

    newest = pc.max(table["snapshot_date"]).as_py()
    if newest is None:
        return table, []
    cutoff = pa.scalar(newest - dt.timedelta(days=inactive_after_days), pa.date32())
    keep = pc.fill_null(pc.greater_equal(table["snapshot_date"], cutoff), True)
    left_out = table.filter(pc.invert(keep))["pool_id"].to_pylist()
    return table.filter(keep), sorted(str(p) for p in left_out)


def load_latest_features(
    paths: ProjectPaths,
    allow_shrink: bool = False,
    refresh: dict | None = None,
    inactive_after_days: int | None = None,
) -> LatestFeatures:
    """Read data/exports/latest_features.parquet + feature_columns.json once;
    `refresh` (features.refresh_fields: the refresh's hour, input notes and
    set-aside landing files) goes in both headers;
    with `inactive_after_days`, pools unseen that long are left out."""
    table, feature_columns = _read_latest(paths)
    inactive: list[str] = []
    if inactive_after_days is not None:
        table, inactive = active_rows(table, inactive_after_days)
    source = paths.latest_features.name
    return LatestFeatures(
        columnar_payload(
            table.to_pydict(),
            feature_columns,
            source=source,
            allow_shrink=allow_shrink,
            refresh=refresh,
        ),
        features_binary(
            table,
            feature_columns,
            source=source,
            allow_shrink=allow_shrink,
            refresh=refresh,
        ),
        inactive,
    )


def load_features_payload(paths: ProjectPaths, allow_shrink: bool = False) -> dict[str, Any]:
    """The column-wise JSON payload of data/exports/latest_features.parquet."""
    table, feature_columns = _read_latest(paths)
    return columnar_payload(
        table.to_pydict(),
        feature_columns,
        source=paths.latest_features.name,
        allow_shrink=allow_shrink,
    )


def upload_features(client, bucket: str, key: str, payload: dict) -> int:
    """The JSON features document (for people)."""
    body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    return len(body)


def upload_features_binary(client, bucket: str, key: str, data: bytes) -> int:
    """The binary features file (what the hourly Lambda reads), with its pool
    count as object metadata for the next publish's shrink rule."""
    header, _ = features.read_header(data)  # never publish a file the scorer would refuse
    client.put_object(
        Bucket=bucket,
        Key=key,
        Body=data,
        ContentType="application/octet-stream",
        Metadata={ROW_COUNT_METADATA: str(header[contracts.FEATURES_ROW_COUNT_FIELD])},
    )
    return len(data)


def publish_features(
    client,
    bucket: str,
    latest: LatestFeatures,
    binary_key: str = contracts.FEATURES_KEY,
    json_key: str = contracts.FEATURES_JSON_KEY,
) -> tuple[int, int]:
    """JSON first, then the binary file the scorer follows; (json, binary) sizes."""
    json_size = upload_features(client, bucket, json_key, latest.payload)
    return json_size, upload_features_binary(client, bucket, binary_key, latest.binary)
