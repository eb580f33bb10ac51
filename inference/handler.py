"""AWS Lambda entry points, the thin edge: routing, caching, error mapping to HTTP.

- ``http``: API Gateway HTTP API (v2) ``POST /predictions`` (inference/http_api.py).
- ``scheduled``: S3 ObjectCreated on the features key and the hourly schedule
  (inference/hourly.py around service.score_hour).

Imports: the standard library, botocore (the runtime's) and inference/ (floor 1).
Cached for the container's life: AWS clients, the model (read and verified on
first use), the webhook URL, latest.json by ETag. Errors: 4xx for what the caller
sent, 503 model_unavailable for a server-side fault, 500 for a fault of this code,
the details in the logs only. The API, trust and answers: docs/serving.md.
"""

from __future__ import annotations

import logging
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from inference import aws, hourly, http_api, service
from inference.events import s3_objects, scoring_hour
from inference.logs import log_event, logger
from inference.model.artefact import ModelIntegrityError
from inference.settings import ConfigError, Settings, current
from inference.validation import InputError

__all__ = ["handler", "http", "logger", "scheduled", "scoring_hour"]

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
MODEL_UNAVAILABLE_MESSAGE = (
    "the model or the published predictions cannot be served right now; "
    "retry later, and quote the request_id if it persists"
)

# --------------------------------------------------------------------------- caches


def _client(service_name: str, settings: Settings) -> Any:
    """An AWS client, created once per service and endpoint."""
    key = (service_name, settings.endpoint_url)
    if key not in _clients:
        if not _session:
            _session.append(aws.new_session())
        _clients[key] = aws.new_client(_session[0], service_name, settings.endpoint_url)
    return _clients[key]


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


def _predictions(event: dict, request_id: str | None, started: float) -> dict:
    parsed = http_api.json_request(event)
    return http_api.predictions(
        parsed, current(), get_model, _latest_predictions, request_id, started
    )


ROUTES: dict[tuple[str, str], Callable[[dict, str | None, float], dict]] = {
    ("POST", "/predictions"): _predictions,
}


def _s3_code(error: BaseException | None) -> dict:
    """The S3 error code behind an error, for the log line (e.g. a 403 that
    answered 'not published yet')."""
    if isinstance(error, ClientError):
        return {"s3_error_code": error.response.get("Error", {}).get("Code")}
    return {}


def _response(status: int, body: dict) -> dict:
    return http_api.response(status, body)


def http(event: Any, context: Any = None) -> dict:
    """API Gateway HTTP API v2: POST /predictions. Every answer is JSON: 4xx for
    what the caller sent (naming the row and field), 503 for a server-side
    fault, 500 only for a fault of this code; never a stack trace."""
    started = time.perf_counter()
    request_id = getattr(context, "aws_request_id", None) or str(uuid.uuid4())
    try:
        route = ROUTES[http_api.route_of(event, ROUTES)]
        return _response(200, route(event, request_id, started))
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


# --------------------------------------------------------------------------- scheduled


def scheduled(event: dict, context: Any = None) -> dict:
    """S3 ObjectCreated on the features key, or EventBridge hourly: score the
    published latest features, write the hour's key. A failure is re-raised,
    so the invocation fails and the async retry runs it again (same event
    time, same key: no duplicates)."""
    started = time.perf_counter()
    request_id = getattr(context, "aws_request_id", None)
    try:
        event_time = scoring_hour(event)
        settings = current()
        objects = s3_objects(event)
        if objects and (settings.bucket, settings.features_key) not in objects:
            log_event(logging.WARNING, "ignored_s3_event", request_id=request_id, objects=objects)
            return {"ignored": objects}
        return hourly.run(
            settings,
            s3(settings),
            lambda: get_model(settings),
            _models.clear,
            event_time,
            get_webhook(settings),
            request_id,
            started,
        )
    except Exception as error:
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
