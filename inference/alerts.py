"""Health alerts: one webhook message when the hourly run's health changes
state (ok -> degraded, degraded -> ok "recovered"). Standard library only.

- `check_webhook_url(url, where)`: the URL rule, applied at start-up: https
  (or http to a loopback host), printable ASCII, no credentials.
- `transition(previous, current)`: the change to announce, or None (a first
  run announces only a degraded start).
- `message(...)` builds a body Discord (`content`) and Slack (`text`) accept;
  `post(url, body)` sends any JSON body, never raises and never takes more
  than WEBHOOK_BUDGET_SECONDS in all: an alert must not fail or hold the
  scoring run. Redirects are never followed.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import socket
import threading
from typing import Any
from urllib.parse import urlsplit

from inference.health import STATUS_DEGRADED, STATUS_OK

# the whole post (name lookup, connect, send, answer) within this many seconds
WEBHOOK_BUDGET_SECONDS = 5.0
MAX_MESSAGE_CHARS = 1900  # Discord's limit is 2,000
LOOPBACK_NAMES = ("localhost",)


class WebhookUrlError(ValueError):
    """A webhook URL that breaks the rule (the message says which part)."""


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_webhook_url(url: str, where: str) -> str:
    """The URL if it follows the rule, else WebhookUrlError naming `where`."""
    if not isinstance(url, str):
        raise WebhookUrlError(f"{where}: not a URL (a {type(url).__name__})")
    odd = next((c for c in url if not 33 <= ord(c) <= 126), None)
    if odd is not None:
        # CR/LF would split the request line; spaces and other characters
        # must be percent-encoded in a URL anyway
        raise WebhookUrlError(
            f"{where}: the URL holds {odd!r}; a webhook URL is printable ASCII "
            "without spaces or control characters (percent-encode the rest)"
        )
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as error:
        raise WebhookUrlError(f"{where}: not a URL ({error})") from None
    if parts.scheme not in ("https", "http") or not host:
        raise WebhookUrlError(
            f"{where}: {parts.scheme or 'no'} scheme / host {host or 'none'}: "
            "a webhook URL must be https://host/..."
        )
    if parts.username or parts.password:
        raise WebhookUrlError(f"{where}: a webhook URL must not carry credentials before the host")
    if parts.scheme == "http" and not _is_loopback(host):
        raise WebhookUrlError(
            f"{where}: http is allowed only to a loopback host (127.0.0.0/8, ::1, localhost), "
            f"not {host!r}; use https"
        )
    return url


def transition(previous: str | None, current: str) -> str | None:
    """'degraded' or 'recovered' when the state changed, else None."""
    if previous == current:
        return None
    if current == STATUS_DEGRADED:
        return "degraded"
    if current == STATUS_OK and previous == STATUS_DEGRADED:
        return "recovered"
    return None


def message(change: str, health: dict, event_time: str, model_id: str) -> dict:
    """The webhook body: the same text as `content` (Discord) and `text` (Slack)."""
    if change == "recovered":
        text = f"apy-runway recovered: health is ok again at {event_time} (model {model_id})"
    else:
        lines = [
            f"apy-runway degraded at {event_time} (model {model_id}): "
            + ", ".join(health.get("reasons") or [])
        ]
        if health.get("important_drifted_features"):
            lines.append(
                "important features drifting: " + ", ".join(health["important_drifted_features"])
            )
        if health.get("drifted_features"):
            lines.append(
                f"{len(health['drifted_features'])} features drifting "
                f"({health.get('drifted_share', 0):.0%}): "
                + ", ".join(health["drifted_features"][:15])
            )
        text = "\n".join(lines)
    text = text[:MAX_MESSAGE_CHARS]
    return {"content": text, "text": text}


def post(url: str, body: Any, budget: float | None = None) -> str | None:
    """POST `body` as JSON to `url`; None on a 2xx, else what went wrong. Never
    raises; gives up after `budget` seconds in all (WEBHOOK_BUDGET_SECONDS by
    default), however slowly the receiver answers."""
    try:
        budget = WEBHOOK_BUDGET_SECONDS if budget is None else float(budget)
        parts = urlsplit(check_webhook_url(url, "webhook URL"))
        data = json.dumps(body, allow_nan=False).encode()
        https = parts.scheme == "https"
        kind = http.client.HTTPSConnection if https else http.client.HTTPConnection
        connection = kind(parts.hostname, parts.port, timeout=budget)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return _exchange(connection, target, data, budget)
    except Exception as error:  # the promise: an alert never fails the run
        return f"{type(error).__name__}: {error}"


def _exchange(
    connection: http.client.HTTPConnection, target: str, data: bytes, budget: float
) -> str | None:
    """The request in a worker thread, cut off at the budget: the socket is
    shut down under a receiver that trickles its answer (a per-read timeout
    alone would let it hold the run for as long as it keeps sending)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            connection.request(
                "POST",
                target,
                body=data,
                headers={"Content-Type": "application/json", "User-Agent": "apy-runway-alerts"},
            )
            response = connection.getresponse()
            outcome["status"] = response.status
            outcome["location"] = response.getheader("Location")
        except Exception as error:
            outcome["error"] = error
        finally:
            connection.close()

    worker = threading.Thread(target=run, name="webhook-post", daemon=True)
    worker.start()
    worker.join(budget)
    if worker.is_alive():
        sock = connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        return f"no answer within the {budget:g} s budget"
    if "error" in outcome:
        error = outcome["error"]
        return f"{type(error).__name__}: {error}"
    status = outcome["status"]
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        return f"HTTP {status} redirect to {outcome['location']} refused"
    return f"HTTP {status}"
