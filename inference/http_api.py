"""The HTTP API's side of the Lambda (API Gateway HTTP API v2 events): the
route an event asks for, its JSON body, the answer to POST /predictions and
the response envelope. No I/O: the handler hands in the model and the
latest predictions (it caches both) and maps errors to statuses.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from inference import contracts
from inference.logs import log_event
from inference.publication import lookup
from inference.scoring import score_rows
from inference.settings import Settings
from inference.validation import InputError, kind, parse_json_body

JSON_MEDIA_TYPE = "application/json"


def response(status: int, body: dict) -> dict:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(
            {"schema_version": contracts.HTTP_SCHEMA_VERSION, **body}, allow_nan=False
        ),
    }


def short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _object(value: Any, field: str) -> dict:
    """An optional event field that must be an object when present."""
    if value is not None and not isinstance(value, dict):
        raise InputError(
            f"event field {field} must be an object, got {kind(value)}",
            field=field,
            code="invalid_event",
        )
    return value or {}


def route_of(event: Any, routes: Iterable[tuple[str, str]]) -> tuple[str, str]:
    """The (method, path) of `routes` the event asks for; 404 for an unknown
    path, 405 for a known path with another method."""
    if not isinstance(event, dict):
        raise InputError(
            f"the event must be an object (API Gateway's HTTP API v2 event), got {kind(event)}",
            code="invalid_event",
        )
    context = _object(event.get("requestContext"), "requestContext")
    http_info = _object(context.get("http"), "requestContext.http")
    method = http_info.get("method")
    path = event.get("rawPath") or http_info.get("path")
    methods = [m for (m, p) in routes if p == path]
    if not isinstance(path, str) or not methods:
        raise InputError(f"no route for {short(path)}", status=404, code="not_found")
    if not isinstance(method, str) or method not in methods:
        raise InputError(
            f"method {short(method)} is not allowed; use {' or '.join(methods)}",
            status=405,
            code="method_not_allowed",
        )
    return method, path


def _body(event: dict) -> str | bytes | None:
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


def _require_json(event: dict) -> None:
    """415 unless the request says its body is JSON (Content-Type:
    application/json, parameters such as charset allowed): a form post or
    text/plain is not a guess this function makes."""
    headers = _object(event.get("headers"), "headers")
    value = next(
        (v for k, v in headers.items() if isinstance(k, str) and k.lower() == "content-type"),
        None,
    )
    media = value.split(";")[0].strip().lower() if isinstance(value, str) else None
    if media != JSON_MEDIA_TYPE:
        raise InputError(
            f"Content-Type {short(value)} is not {JSON_MEDIA_TYPE}; send the JSON body with "
            f"Content-Type: {JSON_MEDIA_TYPE}",
            status=415,
            field="Content-Type",
            code="unsupported_media_type",
        )


def json_request(event: dict) -> Any:
    """The parsed JSON body of a request that says it sends JSON."""
    _require_json(event)
    return parse_json_body(_body(event))


def predictions(
    parsed: Any,
    settings: Settings,
    model_of: Callable[[Settings], Any],
    latest_of: Callable[[Settings], dict],
    request_id: str | None,
    started: float,
) -> dict:
    """POST /predictions: `{"pools": [...]}` is answered from the latest
    published predictions (`latest_of`), a list of feature rows is scored
    with the model (`model_of`, a service.LoadedModel)."""
    if isinstance(parsed, dict) and "pools" in parsed:
        body = lookup(latest_of(settings), parsed["pools"])
        log_event(
            logging.INFO,
            "lookup",
            request_id=request_id,
            pools=len(parsed["pools"]),
            found=len(body["pools"]),
            ms=round(1000 * (time.perf_counter() - started), 1),
        )
        return body
    loaded = model_of(settings)
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
