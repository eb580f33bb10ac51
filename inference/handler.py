"""AWS Lambda entry points (thin): S3 I/O, event parsing, response shaping.

- ``http``: API Gateway HTTP API (v2) ``POST /predictions``. Body = JSON array of
  feature rows -> ``{"predictions": [[p_down, p_keep], ...], "rows": [...]}``;
  body = ``{"pools": [...]}`` -> answers from the latest published predictions.
- ``scheduled``: EventBridge (hourly). Scores the published latest features and
  writes ``<predictions prefix>hourly/<event hour>Z.json`` plus ``latest.json``.

Environment (see serverless.yml): APY_RUNWAY_BUCKET, APY_RUNWAY_MODEL_PREFIX
(metadata.json + model file), APY_RUNWAY_FEATURES_KEY, APY_RUNWAY_PREDICTIONS_PREFIX,
APY_RUNWAY_STALE_AFTER_HOURS, APY_RUNWAY_MAX_BATCH_ROWS; AWS_ENDPOINT_URL is honoured
by boto3 (local S3). The model is read from S3 on first use and cached for the
container's life; its sha256 is checked against metadata.json before unpickling.
"""
from __future__ import annotations

import base64
import io
import json
import logging
import os
import time
import traceback
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from inference import predict

logger = logging.getLogger("apy_runway.inference")
logger.setLevel(logging.INFO)

DEFAULT_MODEL_PREFIX = "models/latest/"
DEFAULT_FEATURES_KEY = "features/latest_features.json"
DEFAULT_PREDICTIONS_PREFIX = "predictions/"
DEFAULT_STALE_AFTER_HOURS = 48.0
ROUTE = ("POST", "/predictions")

# Number of times a model was read from S3 and unpickled in this process.
MODEL_LOADS = 0


@dataclass(frozen=True)
class LoadedModel:
    model: Any
    spec: predict.ModelSpec
    metadata: dict
    source: str


_models: dict[tuple[str | None, str, str], LoadedModel] = {}
_clients: dict[str | None, Any] = {}
_latest_cache: dict[tuple[str | None, str, str], tuple[str, dict]] = {}


class ConfigError(RuntimeError):
    """A missing or malformed environment variable of the function."""


# --------------------------------------------------------------------------- plumbing

def log_event(level: int, event: str, **fields: Any) -> None:
    """One structured JSON line per event (CloudWatch Logs Insights can parse it)."""
    logger.log(level, json.dumps({"level": logging.getLevelName(level), "event": event, **fields},
                                 default=str))


def s3():
    """The S3 client, created once per endpoint (boto3 reads AWS_ENDPOINT_URL itself)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    client = _clients.get(endpoint)
    if client is None:
        client = boto3.client("s3", config=Config(retries={"max_attempts": 3, "mode": "standard"}))
        _clients[endpoint] = client
    return client


def _env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if not value:
        raise ConfigError(f"environment variable {name} is not set")
    return value


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    try:
        return float(raw) if raw else default
    except ValueError as error:
        raise ConfigError(f"environment variable {name}={raw!r} is not a number") from error


def installed_versions() -> dict[str, str | None]:
    versions = {}
    for name in ("scikit-learn", "numpy", "scipy", "joblib"):
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _get_bytes(bucket: str, key: str) -> bytes:
    return s3().get_object(Bucket=bucket, Key=key)["Body"].read()


def _put_json(bucket: str, key: str, payload: dict, metadata: dict[str, str]) -> None:
    body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    s3().put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json",
                    Metadata=metadata)


def _request_id(context: Any) -> str | None:
    return getattr(context, "aws_request_id", None)


# --------------------------------------------------------------------------- model

def get_model() -> LoadedModel:
    """The cached model; read, verified and unpickled on first use only."""
    global MODEL_LOADS
    bucket = _env("APY_RUNWAY_BUCKET")
    prefix = _env("APY_RUNWAY_MODEL_PREFIX", DEFAULT_MODEL_PREFIX)
    cache_key = (os.environ.get("AWS_ENDPOINT_URL"), bucket, prefix)
    cached = _models.get(cache_key)
    if cached is not None:
        return cached

    started = time.perf_counter()
    metadata = json.loads(_get_bytes(bucket, prefix + "metadata.json"))
    spec = predict.ModelSpec.from_metadata(metadata)
    warnings = predict.check_library_versions(metadata, installed_versions())
    model_file = metadata.get("model_file") or "model.joblib"
    if "/" in model_file or model_file.startswith("."):
        raise predict.ModelIntegrityError(f"metadata.json: model_file {model_file!r} is not a "
                                          f"plain file name")
    data = _get_bytes(bucket, prefix + model_file)
    predict.verify_artefact(data, metadata)  # before unpickling: never load unverified bytes

    import joblib  # imported here: the layer's heavy imports are paid on first use

    model = predict.single_threaded(joblib.load(io.BytesIO(data)))
    if not hasattr(model, "predict_proba"):
        raise predict.ModelIntegrityError(f"{model_file} holds {type(model).__name__}, "
                                          f"not a classifier with predict_proba")
    loaded = LoadedModel(model=model, spec=spec, metadata=metadata,
                         source=f"s3://{bucket}/{prefix}{model_file}")
    _models[cache_key] = loaded
    MODEL_LOADS += 1
    log_event(logging.INFO, "model_loaded", model_id=spec.model_id, source=loaded.source,
              size_bytes=len(data), seconds=round(time.perf_counter() - started, 3),
              version_warnings=warnings)
    return loaded


# --------------------------------------------------------------------------- HTTP

def _response(status: int, body: dict) -> dict:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body, allow_nan=False),
    }


def _http_body(event: dict) -> str | bytes | None:
    body = event.get("body")
    if body is not None and event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body)
        except ValueError as error:
            raise predict.InputError("body is not valid base64", code="invalid_body") from error
    return body


def _latest_predictions() -> dict:
    """predictions/latest.json, re-read only when its ETag changes."""
    bucket = _env("APY_RUNWAY_BUCKET")
    key = predict.latest_key(_env("APY_RUNWAY_PREDICTIONS_PREFIX", DEFAULT_PREDICTIONS_PREFIX))
    cache_key = (os.environ.get("AWS_ENDPOINT_URL"), bucket, key)
    cached = _latest_cache.get(cache_key)
    try:
        kwargs = {"IfNoneMatch": cached[0]} if cached else {}
        response = s3().get_object(Bucket=bucket, Key=key, **kwargs)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        if cached and code in ("304", "NotModified"):
            return cached[1]
        if code in ("NoSuchKey", "404"):
            raise predict.InputError("no predictions have been published yet; "
                                     "send feature rows instead", status=503,
                                     code="no_published_predictions") from error
        raise
    published = json.loads(response["Body"].read())
    _latest_cache[cache_key] = (response["ETag"], published)
    return published


def http(event: dict, context: Any = None) -> dict:
    """API Gateway HTTP API v2: POST /predictions."""
    started = time.perf_counter()
    request_id = _request_id(context)
    try:
        http_info = (event.get("requestContext") or {}).get("http") or {}
        method = http_info.get("method")
        path = event.get("rawPath") or http_info.get("path")
        if path != ROUTE[1]:
            raise predict.InputError(f"no route for {path!r}", status=404, code="not_found")
        if method != ROUTE[0]:
            raise predict.InputError(f"method {method} is not allowed; use POST",
                                     status=405, code="method_not_allowed")
        parsed = predict.parse_json_body(_http_body(event))
        if isinstance(parsed, dict) and "pools" in parsed:
            body = predict.lookup(_latest_predictions(), parsed["pools"])
            log_event(logging.INFO, "lookup", request_id=request_id,
                      pools=len(parsed["pools"]), found=len(body["pools"]),
                      ms=round(1000 * (time.perf_counter() - started), 1))
            return _response(200, body)
        loaded = get_model()
        max_rows = int(_env_number("APY_RUNWAY_MAX_BATCH_ROWS", predict.MAX_BATCH_ROWS))
        body = predict.score_rows(loaded.model, loaded.spec, parsed, max_rows=max_rows)
        log_event(logging.INFO, "scored_rows", request_id=request_id, rows=len(parsed),
                  model_id=loaded.spec.model_id,
                  ms=round(1000 * (time.perf_counter() - started), 1))
        return _response(200, body)
    except predict.InputError as error:
        log_event(logging.WARNING, "bad_request", request_id=request_id, status=error.status,
                  **error.to_dict())
        return _response(error.status, error.to_dict())
    except (predict.ModelIntegrityError, ConfigError) as error:
        log_event(logging.ERROR, "model_unavailable", request_id=request_id,
                  error_type=type(error).__name__, message=str(error))
        return _response(503, {"error": "model_unavailable", "message": str(error),
                               "request_id": request_id})
    except Exception as error:  # noqa: BLE001 - no stack trace may reach the caller
        log_event(logging.ERROR, "internal_error", request_id=request_id,
                  error_type=type(error).__name__, message=str(error),
                  traceback=traceback.format_exc())
        return _response(500, {"error": "internal_error",
                               "message": "the request could not be scored; see the logs",
                               "request_id": request_id})


# --------------------------------------------------------------------------- scheduled

def scheduled(event: dict, context: Any = None) -> dict:
    """EventBridge hourly: score the published latest features, write the hour's key."""
    started = time.perf_counter()
    request_id = _request_id(context)
    try:
        event_time = predict.parse_event_time(event.get("time"))
        loaded = get_model()
        bucket = _env("APY_RUNWAY_BUCKET")
        features_key = _env("APY_RUNWAY_FEATURES_KEY", DEFAULT_FEATURES_KEY)
        prefix = _env("APY_RUNWAY_PREDICTIONS_PREFIX", DEFAULT_PREDICTIONS_PREFIX)
        stale_after = _env_number("APY_RUNWAY_STALE_AFTER_HOURS", DEFAULT_STALE_AFTER_HOURS)

        payload = json.loads(_get_bytes(bucket, features_key))
        result = predict.score_published(loaded.model, loaded.spec, payload, event_time,
                                         stale_after)
        counts = result["counts"]
        if result["unused_published_features"]:
            log_event(logging.WARNING, "unused_published_features", request_id=request_id,
                      features=result["unused_published_features"])
        if counts["stale"]:
            log_event(logging.WARNING, "stale_features", request_id=request_id,
                      stale=counts["stale"], pools=counts["pools"],
                      feature_date_max=result["feature_date_max"],
                      event_time=result["event_time"], stale_after_hours=stale_after)

        object_metadata = {"event-time": result["event_time"], "model-id": loaded.spec.model_id}
        hourly = predict.hour_key(prefix, event_time)
        _put_json(bucket, hourly, result, object_metadata)
        latest = predict.latest_key(prefix)
        wrote_latest = _newer_than_latest(bucket, latest, result["event_time"])
        if wrote_latest:
            _put_json(bucket, latest, result, object_metadata)
        summary = {"hourly_key": hourly, "latest_key": latest if wrote_latest else None,
                   "model_id": loaded.spec.model_id, "event_time": result["event_time"],
                   "feature_date_max": result["feature_date_max"], **counts}
        log_event(logging.INFO, "scheduled_scored", request_id=request_id,
                  seconds=round(time.perf_counter() - started, 3), **summary)
        return summary
    except Exception as error:
        # re-raised so the invocation fails and EventBridge's async retry runs it
        # again (same event time -> same key, no duplicates)
        log_event(logging.ERROR, "scheduled_failed", request_id=request_id,
                  error_type=type(error).__name__, message=str(error),
                  traceback=traceback.format_exc())
        raise


def _newer_than_latest(bucket: str, key: str, event_time: str) -> bool:
    """A retried *older* event must not roll latest.json back."""
    try:
        head = s3().head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return True
        raise
    return head.get("Metadata", {}).get("event-time", "") <= event_time


def handler(event: dict, context: Any = None) -> dict:
    """One entry point for both event kinds (the deployed functions use http/scheduled)."""
    if "requestContext" in event:
        return http(event, context)
    return scheduled(event, context)
