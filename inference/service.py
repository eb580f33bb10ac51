"""The serving core's I/O: every function takes the Settings and an S3 client
as arguments (no environment, no globals), so the handler and `apy-runway
score` call the same code.
"""

from __future__ import annotations

import gzip
import json
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from inference import alerts, contracts, features, watchlist
from inference.health import shrink_refusal
from inference.model import artefact, portable
from inference.model.artefact import ModelIntegrityError, ModelSpec
from inference.publication import (
    ScoredHour,
    Stopwatch,
    score_hour_published,
    without_cyclic_gc,
)
from inference.settings import ConfigError, Settings
from inference.validation import InputError

logger = logging.getLogger("apy_runway.inference")
# latest.json's object metadata: the health status it holds, so the next run
# reads the state it replaces from the same HEAD that gives the ETag
HEALTH_METADATA = "health"
NOT_FOUND_CODES = ("404", "NoSuchKey", "NotFound")
# S3's answer to a GET or HEAD of a key the caller may not read, and of a MISSING
# key when the caller may not list the bucket (s3:ListBucket); a HEAD has no body,
# so its code is the bare status
ACCESS_DENIED_CODES = ("403", "AccessDenied", "Forbidden")
# a conditional PUT that lost a race: 412 (the ETag changed / the key appeared),
# 409 (S3: a concurrent conditional write; retry), 404 (If-Match on a deleted key)
CONFLICT_CODES = (
    "412",
    "PreconditionFailed",
    "409",
    "ConditionalRequestConflict",
    *NOT_FOUND_CODES,
)
LATEST_WRITE_ATTEMPTS = 5
# the ledger's gzip: level 1 takes half level 6's time for a file ~25% larger
LEDGER_GZIP_LEVEL = 1


class PublishedPredictionsError(RuntimeError):
    """latest.json exists but is not a predictions document (a server-side fault)."""


class FeaturesRefused(RuntimeError):
    """The published features must not be scored (the shrink rule)."""


@dataclass(frozen=True)
class LoadedModel:
    model: portable.PortableModel
    spec: ModelSpec
    source: str
    size_bytes: int
    seconds: float
    signed: bool
    spec_sha256: str = ""
    key: bytes | None = field(default=None, repr=False)  # the signing key it was checked with


def get_bytes(client: Any, bucket: str, key: str) -> bytes:
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()


def _error_code(error: ClientError) -> str | None:
    return error.response.get("Error", {}).get("Code")


def encode_json(payload: dict) -> bytes:
    """Compact JSON of an output document. orjson: 15 ms instead of json's
    143 ms for 20k pools with reasons (benchmarks/RESULTS.md). The documents
    hold no NaN or infinity (orjson would write them as null)."""
    return orjson.dumps(payload)


def put_json(client: Any, bucket: str, key: str, body: bytes, metadata: dict[str, str]) -> None:
    client.put_object(
        Bucket=bucket, Key=key, Body=body, ContentType="application/json", Metadata=metadata
    )


def signing_key(settings: Settings, ssm_client: Any = None) -> bytes | None:
    """The key the spec's HMAC is checked with: APY_RUNWAY_SIGNING_KEY, or the
    SSM parameter APY_RUNWAY_SIGNING_KEY_PARAMETER names (read with decryption),
    or None (no signature check)."""
    if settings.signing_key:
        return artefact.check_signing_key(
            settings.signing_key.encode(), contracts.ENVIRONMENT["signing_key"]
        )
    if not settings.signing_key_parameter:
        return None
    name = settings.signing_key_parameter
    try:
        value = ssm_client.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    except ClientError as error:
        raise ModelIntegrityError(
            f"cannot read the signing key from SSM parameter {name!r}: "
            f"{error.response.get('Error', {}).get('Code')}; refusing to load an unverified model"
        ) from error
    return artefact.check_signing_key(value.encode(), f"SSM parameter {name!r}")


def _get_model_file(settings: Settings, client: Any, name: str) -> bytes:
    key = settings.model_prefix + name
    try:
        return get_bytes(client, settings.bucket, key)
    except ClientError as error:
        code = _error_code(error)
        if code in NOT_FOUND_CODES:
            raise ModelIntegrityError(
                f"s3://{settings.bucket}/{key} does not exist: publish a training run "
                "(apy-runway publish --run latest)"
            ) from error
        if code in ACCESS_DENIED_CODES:  # a missing key, to a role that may not list
            raise ModelIntegrityError(
                f"s3://{settings.bucket}/{key}: access denied (S3's answer for a missing key "
                "when the role may not list the bucket): publish a training run "
                "(apy-runway publish --run latest), or grant s3:GetObject on the model prefix"
            ) from error
        raise


def _json(data: bytes, name: str) -> Any:
    """A model file's JSON; NaN and Infinity are not JSON (an answer repeating
    one would be refused on the way out)."""

    def refuse(literal: str) -> None:
        raise ValueError(f"{literal} is not a JSON number")

    try:
        return json.loads(data, parse_constant=refuse)
    except (ValueError, RecursionError) as error:
        raise ModelIntegrityError(f"{name} is not JSON: {error}") from None


def load_model(settings: Settings, client: Any, key: bytes | None = None) -> LoadedModel:
    """Read metadata.json, then the portable spec (size, sha256 and, with a
    signing key, HMAC checked before it is parsed), then its arrays (size and
    sha256 from the spec checked before any array is read); then refuse a
    model_version below the highest served (latest.json) unless
    rollback.json marks this spec (check_version)."""
    started = time.perf_counter()
    prefix = settings.model_prefix
    metadata_file = contracts.MODEL_METADATA_FILE
    metadata = _json(_get_model_file(settings, client, metadata_file), metadata_file)
    pointer = artefact.Pointer.from_metadata(metadata)
    spec_bytes = _get_model_file(settings, client, pointer.spec_file)
    artefact.verify_bytes(
        spec_bytes, pointer.spec_file, pointer.spec_sha256, pointer.spec_size_bytes, metadata_file
    )
    artefact.verify_signature(spec_bytes, pointer, key)
    document = _json(spec_bytes, pointer.spec_file)
    listed = document.get("arrays") if isinstance(document, dict) else None
    if not isinstance(listed, dict):
        raise ModelIntegrityError(f"{pointer.spec_file} names no arrays file")
    arrays_file = artefact.plain_file_name(listed.get("file"), f"{pointer.spec_file} arrays.file")
    arrays_bytes = _get_model_file(settings, client, arrays_file)
    artefact.verify_bytes(
        arrays_bytes, arrays_file, listed.get("sha256"), listed.get("size_bytes"), pointer.spec_file
    )
    model = portable.load(document, portable.read_arrays(arrays_bytes, arrays_file))
    _check_run_features(metadata, model.spec, pointer.spec_file)
    loaded = LoadedModel(
        model=model,
        spec=model.spec,
        source=f"s3://{settings.bucket}/{prefix}{pointer.spec_file}",
        size_bytes=len(spec_bytes) + len(arrays_bytes),
        seconds=0.0,
        signed=key is not None,
        spec_sha256=pointer.spec_sha256,
        key=key,
    )
    state = latest_state(settings, client)
    check_version(settings, client, loaded, state.model_version_max if state else None)
    return replace(loaded, seconds=time.perf_counter() - started)


class ModelRollback(ModelIntegrityError):
    """The model's version is below the highest served, without promote's mark."""


def check_version(
    settings: Settings, client: Any, loaded: LoadedModel, served_max: int | None
) -> None:
    """Refuse (ModelRollback) a model_version below `served_max`, the highest
    served (latest.json's metadata), unless rollback.json, written by
    `apy-runway promote --run`, marks this very spec while nothing above the
    version it was promoted under has been served."""
    version = loaded.spec.model_version
    if served_max is None or version >= served_max:
        return
    name = contracts.ROLLBACK_FILE
    try:
        mark = _json(_get_model_file(settings, client, name), name)
    except ModelIntegrityError as error:
        if not isinstance(error.__cause__, ClientError):
            raise
        mark = None  # absent (or, without s3:ListBucket, 403): no mark
    problem = artefact.rollback_problem(mark, loaded.spec_sha256, version, served_max, loaded.key)
    if problem:
        raise ModelRollback(
            f"{loaded.source} has model_version {version}, below {served_max}, the highest "
            f"served ({contracts.MODEL_VERSION_MAX_METADATA} of latest.json), and {problem}: "
            "roll back with `apy-runway promote --run <run> --bucket ...`, or publish a newer run"
        )


def _check_run_features(metadata: dict, spec: ModelSpec, spec_file: str) -> None:
    """metadata.json's ordered features (the run's feature contract) must be the
    spec's: a feature renamed in one of them is a broken publication, a server
    fault, never a row the caller got wrong."""
    listed = metadata.get("features")
    if listed is None:
        return
    if not isinstance(listed, list) or listed != list(spec.features):
        listed = listed if isinstance(listed, list) else []
        only_spec = [f for f in spec.features if f not in listed]
        only_metadata = [f for f in listed if f not in spec.features]
        raise ModelIntegrityError(
            f"{contracts.MODEL_METADATA_FILE} features differ from {spec_file}'s "
            f"(only in {spec_file}: {only_spec}; only in metadata: {only_metadata}; "
            "else the order)"
        )


def read_latest_predictions(
    settings: Settings, client: Any, cached: tuple[str, dict] | None = None
) -> tuple[str, dict]:
    """(ETag, document) of predictions/latest.json; with `cached`, a conditional
    GET that returns the cached pair when the object has not changed."""
    key = settings.latest_predictions_key
    try:
        kwargs = {"IfNoneMatch": cached[0]} if cached else {}
        response = client.get_object(Bucket=settings.bucket, Key=key, **kwargs)
    except ClientError as error:
        code = _error_code(error)
        if cached and code in ("304", "NotModified"):
            return cached
        # The HTTP function's role may not list the bucket, so S3 answers a GET of a
        # missing latest.json with 403 AccessDenied, not 404: before the first hourly
        # run that is the normal answer. (A role that cannot read an existing
        # latest.json answers the same; the handler logs the S3 code.)
        if code in NOT_FOUND_CODES or code in ACCESS_DENIED_CODES:
            raise InputError(
                "no predictions have been published yet; send feature rows instead",
                status=503,
                code="no_published_predictions",
            ) from error
        raise
    try:
        # NaN / Infinity refused: an answer repeating one could not be written
        document = _json(response["Body"].read(), key)
    except ModelIntegrityError as error:
        raise PublishedPredictionsError(f"s3://{settings.bucket}/{error}") from None
    records = document.get("predictions") if isinstance(document, dict) else None
    if not isinstance(records, list) or not all(
        isinstance(r, dict) and isinstance(r.get("pool_id"), str) for r in records
    ):
        raise PublishedPredictionsError(
            f"s3://{settings.bucket}/{key} is not a predictions document "
            "(a `predictions` list of records with a pool_id)"
        )
    return response["ETag"], document


@dataclass(frozen=True)
class LatestState:
    """latest.json as its HEAD tells it (object metadata): what this run's
    conditional write replaces and the rules compare with."""

    etag: str
    event_time: str
    health: str | None
    pools: int | None
    # the highest model_version served so far (None: not recorded yet)
    model_version_max: int | None

    @classmethod
    def from_head(cls, head: dict) -> LatestState:
        metadata = head.get("Metadata", {})

        def whole(key: str) -> int | None:
            value = metadata.get(key)
            return int(value) if value and value.isdigit() else None

        return cls(
            head["ETag"],
            metadata.get("event-time", ""),
            metadata.get(HEALTH_METADATA),
            whole(contracts.PREDICTIONS_POOLS_METADATA),
            whole(contracts.MODEL_VERSION_MAX_METADATA),
        )


@dataclass(frozen=True)
class LatestWrite:
    """What this run did to latest.json. `written`: its conditional PUT
    succeeded (then `etag` is the ETag it wrote); else `newer_event_time` is the
    newer hour already there. The monitoring issue posts a health change only
    from a run whose write succeeded."""

    written: bool
    etag: str | None
    newer_event_time: str | None
    attempts: int
    # the health status of the latest.json this write replaced (None: there was none)
    previous_health: str | None = None


class LatestConflict(RuntimeError):
    """latest.json kept changing under this run's conditional writes."""


def latest_state(settings: Settings, client: Any) -> LatestState | None:
    """latest.json's HEAD; None when there is none."""
    try:
        head = client.head_object(Bucket=settings.bucket, Key=settings.latest_predictions_key)
    except ClientError as error:
        code = _error_code(error)
        # Without s3:ListBucket (the deployed role has none: it would let the function
        # list every key of the prefix) S3 answers a HEAD of a missing key with 403, not
        # 404, so on a fresh bucket 403 means "absent". Treating it so is safe because
        # the write that follows is conditional: If-None-Match: * fails with 412 when the
        # key exists after all, and nothing is overwritten; and the shrink rule has no
        # earlier count to compare with before the first hourly write anyway.
        if code in NOT_FOUND_CODES or code in ACCESS_DENIED_CODES:
            return None
        raise
    return LatestState.from_head(head)


def _document_health(settings: Settings, client: Any, etag: str) -> str | None:
    """The health status inside latest.json at `etag` (a document written before
    the health metadata existed); None when it has none or changed meanwhile."""
    try:
        response = client.get_object(
            Bucket=settings.bucket, Key=settings.latest_predictions_key, IfMatch=etag
        )
        document = json.loads(response["Body"].read())
    except (ClientError, ValueError, RecursionError):
        return None
    block = document.get("health") if isinstance(document, dict) else None
    return block.get("status") if isinstance(block, dict) else None


def refuse_unsound(
    settings: Settings,
    table: features.FeatureTable,
    event_time: datetime,
    latest: LatestState | None,
) -> None:
    """FeaturesRefused unless the features may be scored at `event_time`: no
    feature day after the hour plus one day, and the shrink rule against the
    pool count last scored (latest.json's metadata), unless their header says
    allow_shrink: true. (decode() already refused a pool id listed twice.)"""
    where = f"s3://{settings.bucket}/{settings.features_key}"
    late = features.future_days(table.pool_ids, table.feature_dates, event_time)
    if late:
        raise FeaturesRefused(f"{where}: {late}")
    refusal = shrink_refusal(
        table.row_count,
        latest.pools if latest else None,
        table.header.get(contracts.FEATURES_ALLOW_SHRINK_FIELD) is True,
    )
    if refusal:
        raise FeaturesRefused(f"{where}: {refusal}")


def publish_latest(
    settings: Settings,
    client: Any,
    body: bytes,
    metadata: dict[str, str],
    event_time: str,
    state: LatestState | None = None,
    known: bool = False,
) -> LatestWrite:
    """Write latest.json unless a newer hour is there, atomically: read its ETag
    and event time, then PUT with If-Match on that ETag (If-None-Match: * when
    there is none). A 412/409 (another run wrote in between) or a 404 (it was
    deleted) starts again from the read, at most LATEST_WRITE_ATTEMPTS times: a
    slower older hour can never overwrite a newer one. With `known`, `state`
    is the first read (this run's HEAD).

    The body is PUT, not copied from the hour's key: CopyObject's If-Match /
    If-None-Match on the destination exist in S3's API (botocore 1.44) but moto's
    server ignores them, so no local test could show the guard holds. The hour's
    key is the copy instead (hourly_from_latest)."""
    for attempt in range(1, LATEST_WRITE_ATTEMPTS + 1):
        if not (known and attempt == 1):
            state = latest_state(settings, client)
        if state is not None and state.event_time > event_time:
            return LatestWrite(False, None, state.event_time, attempt)
        condition = {"IfMatch": state.etag} if state is not None else {"IfNoneMatch": "*"}
        previous = None
        if state is not None:
            previous = state.health or _document_health(settings, client, state.etag)
        try:
            response = client.put_object(
                Bucket=settings.bucket,
                Key=settings.latest_predictions_key,
                Body=body,
                ContentType="application/json",
                Metadata=metadata,
                **condition,
            )
        except ClientError as error:
            if _error_code(error) in CONFLICT_CODES:
                continue
            raise
        return LatestWrite(True, response["ETag"], None, attempt, previous)
    raise LatestConflict(
        f"s3://{settings.bucket}/{settings.latest_predictions_key} changed under each of "
        f"{LATEST_WRITE_ATTEMPTS} conditional writes (or exists but cannot be read: the "
        "role needs s3:GetObject on it); the hour's key is written, latest.json is not"
    )


def hourly_from_latest(
    settings: Settings,
    client: Any,
    key: str,
    body: bytes,
    metadata: dict[str, str],
    latest: LatestWrite,
) -> str:
    """The hour's key: a server-side copy of the latest.json this run just
    wrote (its 13.9 MB body goes up once), or the body itself when this run
    did not write latest.json. The copy is conditional on latest.json still
    being this run's (x-amz-copy-source-if-match, which S3 honours and moto
    ignores), and its ETag is checked after (a copy of the same bytes keeps
    it): if latest.json changed in between, the body is PUT. Returns how."""
    if latest.written:
        try:
            copied = client.copy_object(
                Bucket=settings.bucket,
                Key=key,
                CopySource={"Bucket": settings.bucket, "Key": settings.latest_predictions_key},
                CopySourceIfMatch=latest.etag,
            )
            if copied.get("CopyObjectResult", {}).get("ETag") == latest.etag:
                return "copied"
        except ClientError as error:
            if _error_code(error) not in CONFLICT_CODES:
                raise
    put_json(client, settings.bucket, key, body, metadata)
    return "put"


def read_features(settings: Settings, client: Any) -> features.FeatureTable:
    """The binary features file the hourly run scores (settings.features_key)."""
    return features.decode(get_bytes(client, settings.bucket, settings.features_key))


def webhook_url(settings: Settings, ssm_client: Any = None) -> str | None:
    """The health-alert webhook: APY_RUNWAY_WEBHOOK_URL (checked by Settings),
    or the SSM parameter APY_RUNWAY_WEBHOOK_URL_PARAMETER names (read with
    decryption, checked here: a bad URL is a ConfigError), or None."""
    if settings.webhook_url or not settings.webhook_url_parameter:
        return settings.webhook_url
    name = settings.webhook_url_parameter
    try:
        value = ssm_client.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    except ClientError as error:
        raise ConfigError(
            f"cannot read the webhook URL from SSM parameter {name!r}: {_error_code(error)}"
        ) from error
    try:
        return alerts.check_webhook_url(value, f"SSM parameter {name!r}")
    except alerts.WebhookUrlError as error:
        raise ConfigError(str(error)) from None


def ledger_body(rows: list[dict]) -> bytes:
    """gzip NDJSON, byte-for-byte the same for the same rows (no time stamp)."""
    text = b"".join(orjson.dumps(row) + b"\n" for row in rows)
    return gzip.compress(text, compresslevel=LEDGER_GZIP_LEVEL, mtime=0)


def alert_on_change(
    url: str | None, latest: LatestWrite, health: dict, event_time: str, model_id: str
) -> dict:
    """Post one webhook message when this run's write of latest.json succeeded
    and the health changed against the document it replaced. Never raises: a
    failed post is logged and reported in the summary."""
    change = alerts.transition(latest.previous_health, health["status"])
    outcome = {"change": change, "previous": latest.previous_health, "posted": False}
    if change is None or not latest.written or not url:
        return outcome
    error = alerts.post(url, alerts.message(change, health, event_time, model_id))
    if error is not None:
        logger.warning(
            json.dumps(
                {"level": "WARNING", "event": "webhook_failed", "change": change, "error": error}
            )
        )
        outcome["error"] = error
    else:
        outcome["posted"] = True
    return outcome


def write_side_documents(
    settings: Settings, client: Any, event_time: datetime, hour: ScoredHour
) -> tuple[str | None, str, dict[str, float]]:
    """The hour's monitoring document (if any) and ledger file; (their keys,
    milliseconds per phase)."""
    clock = Stopwatch()
    monitoring_key = None
    if hour.monitoring is not None:
        monitoring_key = contracts.monitoring_key(settings.monitoring_prefix, event_time)
        put_json(client, settings.bucket, monitoring_key, encode_json(hour.monitoring), {})
    clock.lap("put_monitoring")
    ledger_key = contracts.ledger_key(settings.ledger_prefix, event_time)
    rows = hour.ledger
    clock.lap("ledger_rows")
    ledger = ledger_body(rows)
    clock.lap("ledger_gzip")
    client.put_object(
        Bucket=settings.bucket,
        Key=ledger_key,
        Body=ledger,
        ContentType="application/gzip",
        Metadata={"rows": str(len(hour.ledger)), "format": contracts.LEDGER_FORMAT},
    )
    clock.lap("put_ledger")
    return monitoring_key, ledger_key, clock.ms()


def score_hour(
    settings: Settings,
    client: Any,
    loaded: LoadedModel,
    event_time: datetime,
    webhook: str | None = None,
    features_body: Future | None = None,
) -> tuple[dict, dict]:
    """Score the published features for one hour; write its monitoring
    document and ledger file, latest.json unless a newer hour is already there
    (publish_latest), then the hour's key (hourly_from_latest); then alert the
    `webhook` if the health changed. Returns (summary, the published
    document); the summary's `ms` says where the time went. `features_body`:
    the features file's bytes on their way (else they are read here).

    Worker threads run beside the main path: the HEAD of latest.json during
    the features' GET, the ledger (gzip, PUT) and the monitoring document
    during the document's encode and upload, the hour's key during the
    alerts. zlib and sockets release the GIL, so on one vCPU the uploads'
    waits overlap; a failure on any side fails the run (a retry writes every
    key again)."""
    clock = Stopwatch()
    with (
        without_cyclic_gc(),  # the ledger rows are built on the worker, after the document
        ThreadPoolExecutor(max_workers=2, thread_name_prefix="hourly-side") as side,
    ):
        head = side.submit(latest_state, settings, client)
        if features_body is None:
            data = get_bytes(client, settings.bucket, settings.features_key)
        else:  # fetched while the model loaded (a cold start)
            data = features_body.result()
        clock.lap("features_get")
        table = features.decode(data)
        clock.lap("features_decode")
        state = head.result()
        served_max = state.model_version_max if state else None
        check_version(settings, client, loaded, served_max)
        refuse_unsound(settings, table, event_time, state)
        clock.lap("checks")
        hour = score_hour_published(
            loaded.model, table, event_time, settings.stale_after_hours, clock
        )
        side_writes = side.submit(write_side_documents, settings, client, event_time, hour)
        result = hour.document
        body = encode_json(result)
        object_metadata = {
            "event-time": result["event_time"],
            "model-id": loaded.spec.model_id,
            contracts.PREDICTIONS_POOLS_METADATA: str(result["counts"]["pools"]),
            HEALTH_METADATA: result["health"]["status"],
            contracts.MODEL_VERSION_METADATA: str(loaded.spec.model_version),
            contracts.MODEL_VERSION_MAX_METADATA: str(
                max(loaded.spec.model_version, served_max or 0)
            ),
        }
        clock.lap("encode")
        hourly = contracts.hourly_predictions_key(settings.predictions_prefix, event_time)
        try:
            latest = publish_latest(
                settings, client, body, object_metadata, result["event_time"], state, known=True
            )
        except LatestConflict:
            put_json(client, settings.bucket, hourly, body, object_metadata)  # the hour is kept
            raise
        clock.lap("put_latest")
        hourly_write = side.submit(
            hourly_from_latest, settings, client, hourly, body, object_metadata, latest
        )
        alert = alert_on_change(
            webhook, latest, result["health"], result["event_time"], loaded.spec.model_id
        )
        clock.lap("alert")
        watch = alert_watchlist(settings, client, webhook, latest, result)
        clock.lap("watch")
        clock.lap("hourly_" + hourly_write.result())
        monitoring_key, ledger_key, side_ms = side_writes.result()
        clock.lap("wait_side")
    summary = {
        "hourly_key": hourly,
        "latest_key": settings.latest_predictions_key if latest.written else None,
        # did this run's conditional write of latest.json succeed (see LatestWrite)
        "latest_written": latest.written,
        "latest_etag": latest.etag,
        "model_id": loaded.spec.model_id,
        "event_time": result["event_time"],
        "feature_date_max": result["feature_date_max"],
        "health": result["health"]["status"],
        "health_reasons": result["health"]["reasons"],
        "monitoring_key": monitoring_key,
        "ledger_key": ledger_key,
        "ledger_rows": len(hour.ledger),
        "alert": alert,
        "watch": watch,
        **result["counts"],
        "ms": clock.ms(),
        # the worker thread's phases, overlapped with the main path's
        "side_ms": side_ms,
    }
    return summary, result


# --------------------------------------------------------------------------- watchlist

WATCH_WRITE_ATTEMPTS = 5


def _get_json_with_etag(client: Any, bucket: str, key: str) -> tuple[str, Any] | None:
    """(ETag, parsed JSON) of a small document; None when it is missing (404,
    or 403 to a role that may not list the bucket)."""
    try:
        response = client.get_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if _error_code(error) in NOT_FOUND_CODES or _error_code(error) in ACCESS_DENIED_CODES:
            return None
        raise
    try:
        return response["ETag"], json.loads(response["Body"].read())
    except ValueError as error:
        raise watchlist.WatchlistError(f"s3://{bucket}/{key} is not JSON: {error}") from error


def _readable_state(document: Any, where: str) -> dict:
    """The watch state, or an empty one when it is broken: the scorer owns it
    and writes it whole, so the next write repairs it (logged)."""
    try:
        return watchlist.read_state(document, where)
    except watchlist.WatchlistError as error:
        logger.warning(
            json.dumps({"level": "WARNING", "event": "watch_state_reset", "error": str(error)})
        )
        return {}


def _record_watch_state(
    settings: Settings, client: Any, watched: list[str], records: dict, hour: str
) -> list[watchlist.Alert]:
    """Read the watch state, judge the hour's calls, write the state back
    with a conditional PUT (If-Match its ETag; If-None-Match: * when there is
    none), again from the read when another run wrote in between. The alerts
    are returned only once their hour is recorded, so a retry posts nothing."""
    key = settings.watch_state_key
    for _ in range(WATCH_WRITE_ATTEMPTS):
        found = _get_json_with_etag(client, settings.bucket, key)
        state = {} if found is None else _readable_state(found[1], f"s3://{settings.bucket}/{key}")
        raised, new_state = watchlist.evaluate(state, watched, records, hour)
        condition = {"IfMatch": found[0]} if found is not None else {"IfNoneMatch": "*"}
        try:
            client.put_object(
                Bucket=settings.bucket,
                Key=key,
                Body=encode_json(watchlist.state_document(new_state, hour)),
                ContentType="application/json",
                **condition,
            )
        except ClientError as error:
            if _error_code(error) in CONFLICT_CODES:
                continue
            raise
        return raised
    raise LatestConflict(
        f"s3://{settings.bucket}/{key} changed under each of {WATCH_WRITE_ATTEMPTS} writes"
    )


def alert_watchlist(
    settings: Settings, client: Any, url: str | None, latest: LatestWrite, document: dict
) -> dict:
    """The watchlist step of the hourly run: post one message per watched pool
    whose call flipped or moved (inference/watchlist.py), once per pool and
    hour. Only a run whose write of latest.json succeeded judges (an older
    hour retried late says nothing). Never raises: a broken watchlist or a
    failed read or post is logged and reported in the summary."""
    outcome: dict[str, Any] = {"watched": 0, "alerts": [], "posted": 0}
    if not latest.written:
        return outcome | {"skipped": "a newer hour holds latest.json"}
    try:
        found = _get_json_with_etag(client, settings.bucket, settings.watchlist_key)
        if found is None:
            return outcome
        watched = watchlist.read_watchlist(
            found[1], f"s3://{settings.bucket}/{settings.watchlist_key}"
        )
        wanted = set(watched)
        records = {r["pool_id"]: r for r in document["predictions"] if r["pool_id"] in wanted}
        raised = _record_watch_state(settings, client, watched, records, document["event_time"])
    except (ClientError, BotoCoreError, watchlist.WatchlistError, LatestConflict) as error:
        logger.warning(
            json.dumps({"level": "WARNING", "event": "watchlist_failed", "error": str(error)})
        )
        return outcome | {"error": str(error)}
    outcome["watched"] = len(watched)
    outcome["alerts"] = _post_watch_alerts(url, raised, records, document.get("model_id"))
    outcome["posted"] = sum(entry["posted"] for entry in outcome["alerts"])
    return outcome


def _post_watch_alerts(
    url: str | None, raised: list[watchlist.Alert], records: dict, model_id: str | None
) -> list[dict]:
    """One message per pool for the first contracts.WATCH_MAX_POSTS alerts,
    one message naming the rest; after a failed post the others are not tried
    (a webhook that is down would spend the run's time budget)."""
    messages = [
        ([alert], watchlist.message(alert, records[alert.pool_id], model_id))
        for alert in raised[: contracts.WATCH_MAX_POSTS]
    ]
    if len(raised) > contracts.WATCH_MAX_POSTS:
        rest = raised[contracts.WATCH_MAX_POSTS :]
        messages.append((rest, watchlist.summary_message(rest, records)))
    entries, failed = [], None
    for group, body in messages:
        error = "no webhook configured" if not url else failed or alerts.post(url, body)
        if url and error and failed is None:
            failed = f"not tried after a failed post ({error})"
            logger.warning(
                json.dumps({"level": "WARNING", "event": "watch_webhook_failed", "error": error})
            )
        for alert in group:
            entry = {"pool_id": alert.pool_id, "kind": alert.kind, "posted": error is None}
            if error is not None and url:
                entry["error"] = error
            entries.append(entry)
    return entries
