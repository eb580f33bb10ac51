"""`apy-runway promote --run ID`: make a training run the champion, by hand
(roll back or forward), and the champion's two homes.

The champion is `runs/champion` locally and, with `--bucket`, the run at
models/latest/ in the bucket (what the Lambda serves). Promoting uploads the
run there with metadata.json last (the Lambda's sha256 check refuses a mix of
an old metadata.json and a new model), then points runs/champion at it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from apy_runway.foundation import s3
from apy_runway.foundation.console import UserError, log
from apy_runway.foundation.paths import ProjectPaths
from apy_runway.operations.runs import point_link, resolve_run
from inference import contracts
from models_py import config
from models_py.run_folder import verify_artefact


def champion_link(paths: ProjectPaths) -> Path:
    return paths.runs / config.CHAMPION


def promote(
    paths: ProjectPaths,
    run_dir: Path,
    bucket: str | None = None,
    endpoint_url: str | None = None,
    client: Any = None,
) -> None:
    """Make `run_dir` the champion: upload it to models/latest/ (with a bucket),
    then point runs/champion at it."""
    metadata = verify_artefact(run_dir)
    if bucket:
        client = client or s3.s3_client(endpoint_url)
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
            if code in ("404", "NoSuchKey", "NotFound", "403", "AccessDenied"):
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
