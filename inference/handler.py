"""AWS Lambda entry points (thin): routes, caches, JSON logs, error mapping.

- ``http``: API Gateway HTTP API (v2) ``POST /predictions``: feature rows, or
  ``{"pools": [...]}`` answered from the latest published predictions.
- ``scheduled``: S3 ObjectCreated on the features key and the hourly schedule;
  scores the published features and writes the hourly documents.

Imports: the standard library, numpy, orjson, botocore (the runtime's) and
inference/ (floor 1); no scikit-learn, scipy, joblib or pickle. The work is
inference/service.py's, given the settings (inference/settings.py) and the S3
client; the model is read on first use and cached for the container's life.
The API, trust and answers: docs/serving.md.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from inference import contracts, service
from inference.events import s3_objects, scoring_hour
from inference.health import STATUS_OK
from inference.model.artefact import ModelIntegrityError
from inference.publication import lookup
from inference.scoring import score_rows
from inference.settings import ConfigError, Settings, current
from inference.validation import InputError, kind, parse_json_body

logger = logging.getLogger("apy_runway.inference")
logger.setLevel(logging.INFO)

# Number of times a model was read from S3 and loaded in this process.
MODEL_LOADS = 0

_clients: dict[tuple[str, str | None], Any] = {}
_session: list[Any] = []  # one botocore session per process
_models: dict[tuple, service.LoadedModel] = {}
_latest_cache: dict[tuple[str | None, str, str], tuple[str, dict]] = {}
_webhooks: dict[tuple, str | None] = {}

# Server-side faults: the model or the published predictions cannot be read or
# do not verify, a setting is wrong, S3 fails. The caller gets 503
# model_unavailable with the request id; what went wrong (keys, file names,
# sha256 values, what to run) goes to the logs only.
SERVER_FAULTS = (
    ModelIntegrityError,
    ConfigError,
    service.PublishedPredictionsError,
    ClientError,
    BotoCoreError,
)
JSON_MEDIA_TYPE = "application/json"
MODEL_UNAVAILABLE_MESSAGE = (
    "the model or the published predictions cannot be served right now; "
    "retry later, and quote the request_id if it persists"
)


def log_event(level: int, event: str, **fields: Any) -> None:
    """One structured JSON line per event (CloudWatch Logs Insights can parse it)."""
    logger.log(
        level,
        json.dumps({"level": logging.getLevelName(level), "event": event, **fields}, default=str),
    )


def _client(service_name: str, settings: Settings) -> Any:
    """An AWS client, created once per service and endpoint. Made from a
    botocore session (what boto3.client does underneath, with the same
    credentials and region): importing boto3 itself also imports s3transfer,
    120 ms of a cold start the handler never uses."""
    key = (service_name, settings.endpoint_url)
    client = _clients.get(key)
    if client is None:
        if not _session:
            _session.append(botocore.session.get_session())
        client = _clients[key] = _session[0].create_client(
            service_name,
            endpoint_url=settings.endpoint_url,
            config=Config(
                retries={"max_attempts": 3, "mode": "standard"},
                # S3 bodies go with their CRC32 and are not hashed again for the
                # signature: botocore's own choice over https (AWS), made explicit
                # so a local http endpoint does not hash 14 MB a second time
                s3={"payload_signing_enabled": False},
            ),
        )
    return client


def s3(settings: Settings) -> Any:
    return _client("s3", settings)


def get_model(settings: Settings) -> service.LoadedModel:
    """The cached model; read, verified and loaded on first use only."""
    global MODEL_LOADS
    key = (
        settings.endpoint_url,
        settings.bucket,
        settings.model_prefix,
        settings.signing_key_parameter,
        bool(settings.signing_key),
    )
    loaded = _models.get(key)
    if loaded is None:
        ssm = _client("ssm", settings) if settings.signing_key_parameter else None
        signing_key = service.signing_key(settings, ssm)
        loaded = _models[key] = service.load_model(settings, s3(settings), signing_key)
        MODEL_LOADS += 1
        log_event(
            logging.INFO,
            "model_loaded",
            model_id=loaded.spec.model_id,
            source=loaded.source,
            size_bytes=loaded.size_bytes,
            seconds=round(loaded.seconds, 3),
            signature_checked=loaded.signed,
        )
    return loaded


def get_webhook(settings: Settings) -> str | None:
    """The health-alert webhook URL, read (from SSM when configured so) and
    checked once per container: a bad URL fails the start-up (ConfigError)."""
    key = (settings.endpoint_url, settings.webhook_url_parameter, settings.webhook_url)
    if key not in _webhooks:
        ssm = _client("ssm", settings) if settings.webhook_url_parameter else None
        _webhooks[key] = service.webhook_url(settings, ssm)
    return _webhooks[key]


def _latest_predictions(settings: Settings) -> dict:
    """predictions/latest.json, re-read only when its ETag changes."""
    key = (settings.endpoint_url, settings.bucket, settings.latest_predictions_key)
    _latest_cache[key] = service.read_latest_predictions(
        settings, s3(settings), _latest_cache.get(key)
    )
    return _latest_cache[key][1]


# --------------------------------------------------------------------------- HTTP


def _response(status: int, body: dict) -> dict:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(
            {"schema_version": contracts.HTTP_SCHEMA_VERSION, **body}, allow_nan=False
        ),
    }


def _http_body(event: dict) -> str | bytes | None:
    """The request body, base64-decoded when the event says so (a boolean)."""
    body = event.get("body")
    encoded = event.get("isBase64Encoded", False)
    if not isinstance(encoded, bool):
        raise InputError(
            f"event field isBase64Encoded must be true or false, got {kind(encoded)}",
            field="isBase64Encoded",
            code="invalid_event",
        )
    if body is not None and not isinstance(body, str):
        raise InputError(
            f"event field body must be a string, got {kind(body)}",
            field="body",
            code="invalid_event",
        )
    if body is not None and encoded:
        try:
            return base64.b64decode(body, validate=True)
        except ValueError as error:
            raise InputError(
                "body is not valid base64", field="body", code="invalid_body"
            ) from error
    return body


def _content_type(event: dict) -> None:
    """415 unless the request says its body is JSON (Content-Type:
    application/json, parameters such as charset allowed): a form post or
    text/plain is not a guess this function makes."""
    headers = event.get("headers")
    if headers is not None and not isinstance(headers, dict):
        raise InputError(
            f"event field headers must be an object, got {kind(headers)}",
            field="headers",
            code="invalid_event",
        )
    value = next(
        (
            v
            for k, v in (headers or {}).items()
            if isinstance(k, str) and k.lower() == "content-type"
        ),
        None,
    )
    media = value.split(";")[0].strip().lower() if isinstance(value, str) else None
    if media != JSON_MEDIA_TYPE:
        raise InputError(
            f"Content-Type {_short(value)} is not {JSON_MEDIA_TYPE}; send the JSON body with "
            f"Content-Type: {JSON_MEDIA_TYPE}",
            status=415,
            field="Content-Type",
            code="unsupported_media_type",
        )


def _predictions(event: dict, request_id: str | None, started: float) -> dict:
    settings = current()
    _content_type(event)
    parsed = parse_json_body(_http_body(event))
    if isinstance(parsed, dict) and "pools" in parsed:
        body = lookup(_latest_predictions(settings), parsed["pools"])
        log_event(
            logging.INFO,
            "lookup",
            request_id=request_id,
            pools=len(parsed["pools"]),
            found=len(body["pools"]),
            ms=round(1000 * (time.perf_counter() - started), 1),
        )
        return body
    loaded = get_model(settings)
    body = score_rows(loaded.model, parsed, max_rows=settings.max_batch_rows)
    log_event(
        logging.INFO,
        "scored_rows",
        request_id=request_id,
        rows=len(parsed),
        model_id=loaded.spec.model_id,
        ms=round(1000 * (time.perf_counter() - started), 1),
    )
    return body


ROUTES: dict[tuple[str, str], Callable[[dict, str | None, float], dict]] = {
    ("POST", "/predictions"): _predictions,
}


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _route(event: dict) -> Callable[[dict, str | None, float], dict]:
    context = event.get("requestContext")
    if context is not None and not isinstance(context, dict):
        raise InputError(
            f"event field requestContext must be an object, got {kind(context)}",
            field="requestContext",
            code="invalid_event",
        )
    http_info = (context or {}).get("http")
    if http_info is not None and not isinstance(http_info, dict):
        raise InputError(
            f"event field requestContext.http must be an object, got {kind(http_info)}",
            field="requestContext.http",
            code="invalid_event",
        )
    method = (http_info or {}).get("method")
    path = event.get("rawPath") or (http_info or {}).get("path")
    methods = [m for (m, p) in ROUTES if p == path]
    if not isinstance(path, str) or not methods:
        raise InputError(f"no route for {_short(path)}", status=404, code="not_found")
    if not isinstance(method, str) or (method, path) not in ROUTES:
        raise InputError(
            f"method {_short(method)} is not allowed; use {' or '.join(methods)}",
            status=405,
            code="method_not_allowed",
        )
    return ROUTES[(method, path)]


def http(event: Any, context: Any = None) -> dict:
    """API Gateway HTTP API v2: POST /predictions. Every answer is JSON: 4xx for
    what the caller sent (naming the row and field), 503 for a server-side
    fault, 500 only for a fault of this code; never a stack trace."""
    started = time.perf_counter()
    request_id = getattr(context, "aws_request_id", None) or str(uuid.uuid4())
    try:
        if not isinstance(event, dict):
            raise InputError(
                f"the event must be an object (API Gateway's HTTP API v2 event), got {kind(event)}",
                code="invalid_event",
            )
        return _response(200, _route(event)(event, request_id, started))
    except InputError as error:
        log_event(
            logging.WARNING,
            "bad_request",
            request_id=request_id,
            status=error.status,
            **error.to_dict(),
            **_s3_code(error.__cause__),
        )
        return _response(error.status, error.to_dict())
    except SERVER_FAULTS as error:
        log_event(
            logging.ERROR,
            "model_unavailable",
            request_id=request_id,
            error_type=type(error).__name__,
            message=str(error),
            **_s3_code(error.__cause__ or error),
        )
        return _response(
            503,
            {
                "error": "model_unavailable",
                "message": MODEL_UNAVAILABLE_MESSAGE,
                "request_id": request_id,
            },
        )
    except Exception as error:
        log_event(
            logging.ERROR,
            "internal_error",
            request_id=request_id,
            error_type=type(error).__name__,
            message=str(error),
            traceback=traceback.format_exc(),
        )
        return _response(
            500,
            {
                "error": "internal_error",
                "message": "the request could not be scored; see the logs",
                "request_id": request_id,
            },
        )


def _s3_code(error: BaseException | None) -> dict:
    """The S3 error code behind an error, for the log line (e.g. a 403 that
    answered 'not published yet')."""
    if isinstance(error, ClientError):
        return {"s3_error_code": error.response.get("Error", {}).get("Code")}
    return {}


# --------------------------------------------------------------------------- scheduled


def scheduled(event: dict, context: Any = None) -> dict:
    """S3 ObjectCreated on the features key, or EventBridge hourly: score the
    published latest features, write the hour's key."""
    started = time.perf_counter()
    request_id = getattr(context, "aws_request_id", None)
    try:
        event_time = scoring_hour(event)
        settings = current()
        objects = s3_objects(event)
        if objects and (settings.bucket, settings.features_key) not in objects:
            log_event(logging.WARNING, "ignored_s3_event", request_id=request_id, objects=objects)
            return {"ignored": objects}
        webhook = get_webhook(settings)
        loaded = get_model(settings)
        try:
            try:
                summary, result = service.score_hour(
                    settings, s3(settings), loaded, event_time, webhook
                )
            except service.ModelRollback:
                # a newer model was served since this container loaded its own:
                # read the published one again (a rollback is refused there)
                _models.clear()
                loaded = get_model(settings)
                summary, result = service.score_hour(
                    settings, s3(settings), loaded, event_time, webhook
                )
        except service.FeaturesRefused as refused:
            # not transient: a retry would refuse again; nothing is written
            log_event(logging.ERROR, "features_refused", request_id=request_id, reason=str(refused))
            return {"refused": str(refused)}
        if result["health"]["status"] != STATUS_OK:
            log_event(
                logging.WARNING,
                "degraded",
                request_id=request_id,
                reasons=result["health"]["reasons"],
                feature_date_max=result["feature_date_max"],
                event_time=result["event_time"],
            )
        if result["unused_published_features"]:
            log_event(
                logging.WARNING,
                "unused_published_features",
                request_id=request_id,
                features=result["unused_published_features"],
            )
        if summary["stale"]:
            log_event(
                logging.WARNING,
                "stale_features",
                request_id=request_id,
                stale=summary["stale"],
                pools=summary["pools"],
                feature_date_max=result["feature_date_max"],
                event_time=result["event_time"],
                stale_after_hours=settings.stale_after_hours,
            )
        log_event(
            logging.INFO,
            "scheduled_scored",
            request_id=request_id,
            seconds=round(time.perf_counter() - started, 3),
            **summary,
        )
        return summary
    except Exception as error:
        # re-raised so the invocation fails and EventBridge's async retry runs it
        # again (same event time -> same key, no duplicates)
        log_event(
            logging.ERROR,
            "scheduled_failed",
            request_id=request_id,
            error_type=type(error).__name__,
            message=str(error),
            traceback=traceback.format_exc(),
        )
        raise


def handler(event: Any, context: Any = None) -> dict:
    """One entry point for both event kinds (the deployed functions use http/scheduled)."""
    if isinstance(event, dict) and "requestContext" in event:
        return http(event, context)
    return scheduled(event, context)
