"""Health alerts: one webhook message when the hourly run's health changes
state (ok -> degraded, degraded -> ok "recovered"). Standard library only.

- `check_webhook_url(url, where)`: the URL rule, applied at start-up (the
  settings refuse a bad one): https, or http to a loopback host only
  (127.0.0.0/8, ::1, localhost), no credentials in the URL.
- `transition(previous, current)`: the change to announce, or None. The
  previous state is the `health` of the latest.json this run replaces; a
  first run (no previous state) announces only a degraded start.
- `message(...)` / `post(...)`: the body is JSON both Discord (`content`) and
  Slack (`text`) accept; a failed post is returned as an error string for the
  caller to log, never raised: an alert must not fail the scoring run. A
  redirect is never followed (the URL rule holds for the URL checked at
  start-up only: an https webhook must not be bounced to http or elsewhere).
"""

from __future__ import annotations

import ipaddress
import json
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from inference.health import STATUS_DEGRADED, STATUS_OK

WEBHOOK_TIMEOUT_SECONDS = 5.0
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


class RedirectRefused(urllib.error.HTTPError):
    """A 3xx answer: the webhook is posted to its checked URL or nowhere."""


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise RedirectRefused(req.full_url, code, f"redirect to {newurl} refused", headers, fp)


_OPENER = urllib.request.build_opener(_RefuseRedirects)


def post(url: str, body: dict, timeout: float = WEBHOOK_TIMEOUT_SECONDS) -> str | None:
    """POST the body as JSON; None on a 2xx, else what went wrong (never raises)."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "apy-runway-alerts"},
        method="POST",
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            if 200 <= response.status < 300:
                return None
            return f"HTTP {response.status}"
    except RedirectRefused as error:
        return f"HTTP {error.code} {error.reason}"
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}"
    except (urllib.error.URLError, OSError, ValueError) as error:
        return f"{type(error).__name__}: {error}"
