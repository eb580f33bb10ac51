"""`apy-runway promote --run ID`: make a training run the champion, by hand
(roll back or forward), and the champion's two homes. A run whose
model_version is below the highest the Lambda has served gets a rollback
mark (rollback.json) first: the Lambda refuses such a version without it.

The champion is `runs/champion` locally and, with `--bucket`, the run at
models/latest/ in the bucket (what the Lambda serves). Promoting uploads the
run there with metadata.json last (the Lambda's sha256 check refuses a mix of
an old metadata.json and a new model), then points runs/champion at it.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from apy_runway.foundation import s3
from apy_runway.foundation.console import UserError, log
from apy_runway.foundation.paths import ProjectPaths
from apy_runway.operations.runs import check_fit_to_ship, point_link, resolve_run
from inference import contracts
from inference.model import artefact
from models_py import config
from models_py.run_folder import verify_artefact

# S3's answers for a missing key (403 without s3:ListBucket)
MISSING_CODES = ("404", "NoSuchKey", "NotFound", "403", "AccessDenied", "Forbidden")


def champion_link(paths: ProjectPaths) -> Path:
    return paths.runs / config.CHAMPION


def served_version_max(client: Any, bucket: str) -> int | None:
    """The highest model_version the Lambda has served from `bucket`
    (predictions/latest.json's metadata); None before any."""
    key = contracts.latest_predictions_key(contracts.PREDICTIONS_PREFIX)
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in MISSING_CODES:
            return None
        raise
    value = head.get("Metadata", {}).get(contracts.MODEL_VERSION_MAX_METADATA, "")
    return int(value) if value.isdigit() else None


def run_model_version(run_dir: Path) -> tuple[int, bytes]:
    """(the model_version of the run's portable spec, the spec's bytes)."""
    spec = (run_dir / contracts.PORTABLE_SPEC_FILE).read_bytes()
    version = json.loads(spec).get("model_version", 0)
    return (version if isinstance(version, int) else 0), spec


def mark_rollback(client: Any, bucket: str, run_dir: Path, metadata: dict) -> None:
    """Before uploading a run whose model_version is below the highest served,
    write rollback.json beside the model: the Lambda serves that spec and no
    other below it (signed with $APY_RUNWAY_SIGNING_KEY, which a Lambda that
    checks signatures requires)."""
    served = served_version_max(client, bucket)
    version, spec = run_model_version(run_dir)
    if served is None or version >= served:
        return
    name = contracts.ENVIRONMENT["signing_key"]
    signing = os.environ.get(name) or None
    key = None
    if signing:
        try:
            key = artefact.check_signing_key(signing.encode(), name)
        except artefact.ModelIntegrityError as error:
            raise UserError(str(error)) from None
    mark = artefact.rollback_mark(
        artefact.sha256_hex(spec),
        metadata["model_id"],
        version,
        served,
        datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        key,
    )
    client.put_object(
        Bucket=bucket,
        Key=contracts.MODEL_PREFIX + contracts.ROLLBACK_FILE,
        Body=json.dumps(mark, indent=1).encode(),
        ContentType="application/json",
    )
    log(
        f"rollback: {metadata['model_id']} has model_version {version}, below {served} (the "
        f"highest served); marked deliberate in {contracts.ROLLBACK_FILE} "
        f"({'signed' if key else 'unsigned: a Lambda that checks signatures will refuse it'})"
    )


def promote(
    paths: ProjectPaths,
    run_dir: Path,
    bucket: str | None = None,
    endpoint_url: str | None = None,
    client: Any = None,
    allow_weak: bool = False,
    allow_synthetic: bool = False,
) -> None:
    """Make `run_dir` the champion: upload it to models/latest/ (with a bucket;
    a model_version below the highest served is marked as a deliberate
    rollback first), then point runs/champion at it. A weak run or one trained
    on generated data is refused unless allowed (runs.check_fit_to_ship)."""
    metadata = verify_artefact(run_dir)
    check_fit_to_ship(metadata, "promote", allow_weak, allow_synthetic)
    if bucket:
        client = client or s3.s3_client(endpoint_url)
        mark_rollback(client, bucket, run_dir, metadata)
        keys = s3.upload_run(client, bucket, contracts.MODEL_PREFIX, run_dir)
        log(
            f"promoted {metadata['model_id']}: {len(keys)} files to "
            f"s3://{bucket}/{contracts.MODEL_PREFIX}"
        )
    if run_dir.parent.resolve() == paths.runs.resolve():
        link = point_link(paths.runs, config.CHAMPION, run_dir.name)
        log(f"{link} -> {run_dir.name}")


def champion_metadata(
    paths: ProjectPaths,
    bucket: str | None = None,
    endpoint_url: str | None = None,
    client: Any = None,
) -> tuple[dict | None, str]:
    """(metadata.json of the champion or None, where it was looked for)."""
    if bucket:
        key = contracts.MODEL_PREFIX + contracts.MODEL_METADATA_FILE
        where = f"s3://{bucket}/{key}"
        client = client or s3.s3_client(endpoint_url)
        try:
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            # without s3:ListBucket, S3 answers 403 for a missing key, not 404
            if code in MISSING_CODES:
                return None, where
            raise
        try:
            return json.loads(body), where
        except json.JSONDecodeError as error:
            raise UserError(f"{where} is not valid JSON: {error}") from None
    link = champion_link(paths)
    where = str(link)
    if not link.exists():
        return None, where
    return verify_artefact(resolve_run(paths, link)), where
