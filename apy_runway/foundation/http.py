"""The one HTTP client of the data stages: sequential GETs of DefiLlama's
JSON API with a polite delay between requests, retries with exponential
backoff, and a per-request timeout. `fetch` and `collect` both use it, so
their limits and their error messages are the same.

Standard library only (urllib). A response is returned with its raw bytes
and headers: `collect` saves the bytes as served and reads the `Date`
header; `fetch` saves the parsed document.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

from apy_runway.foundation.console import log

USER_AGENT = "apy-runway/0.1 (+https://github.com/; research use, rate-limited)"
DEFAULT_DELAY = 1.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 2.0
DEFAULT_TIMEOUT = 60.0


class FetchError(Exception):
    """One request failed; `retryable` says whether trying again can help."""

    def __init__(self, message: str, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class JsonResponse:
    """A successful GET: the parsed document, its raw bytes and its headers."""

    payload: dict
    body: bytes
    headers: Mapping[str, str]


def get_json(url: str, timeout: float) -> JsonResponse:
    """One GET of a DefiLlama-style JSON document ({"data": [...]})."""
    request = urllib.request.Request(
        url, headers={"User-Agent": USER_AGENT, "Accept": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
            headers = dict(response.headers.items())
    except urllib.error.HTTPError as error:
        # 429 and 5xx are worth another try; other 4xx will not change
        retryable = error.code == 429 or error.code >= 500
        raise FetchError(f"HTTP {error.code} {error.reason}", retryable) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise FetchError(f"network error: {reason}") from None
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise FetchError(f"response is not JSON ({len(body)} bytes)") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        status = payload.get("status") if isinstance(payload, dict) else type(payload).__name__
        raise FetchError(f'response has no "data" list (status: {status})')
    return JsonResponse(payload, body, headers)


class Client:
    """Sequential GETs with a polite delay between them and retries with backoff."""

    def __init__(
        self,
        delay: float = DEFAULT_DELAY,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        timeout: float = DEFAULT_TIMEOUT,
    ):
        if delay < 0 or retries < 0 or backoff < 0 or timeout <= 0:
            raise ValueError(
                f"delay, retries and backoff must be >= 0 and timeout > 0, got "
                f"delay={delay}, retries={retries}, backoff={backoff}, timeout={timeout}"
            )
        self.delay, self.retries, self.backoff, self.timeout = delay, retries, backoff, timeout
        self.requests = 0
        self._last_request: float | None = None

    def _wait_turn(self) -> None:
        if self._last_request is not None:
            remaining = self.delay - (time.monotonic() - self._last_request)
            if remaining > 0:
                time.sleep(remaining)
        self._last_request = time.monotonic()

    def get(self, url: str, label: str) -> JsonResponse:
        attempt = 0
        while True:
            self._wait_turn()
            self.requests += 1
            try:
                return get_json(url, self.timeout)
            except FetchError as error:
                if not error.retryable or attempt >= self.retries:
                    raise FetchError(
                        f"{error} after {attempt + 1} attempt(s)", error.retryable
                    ) from None
                wait = self.backoff * 2**attempt
                attempt += 1
                log(f"  {label}: {error}; retry {attempt}/{self.retries} in {wait:.1f} s")
                time.sleep(wait)


def add_client_arguments(parser, delay: float = DEFAULT_DELAY) -> None:
    """The client's flags, the same on every command that downloads."""
    parser.add_argument(
        "--delay",
        type=float,
        default=delay,
        help=f"seconds to wait between requests (default {delay:g})",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=DEFAULT_RETRIES,
        help=f"retries per request after the first attempt (default {DEFAULT_RETRIES})",
    )
    parser.add_argument(
        "--backoff",
        type=float,
        default=DEFAULT_BACKOFF,
        help=f"first retry wait in seconds, doubled each retry (default {DEFAULT_BACKOFF:g})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds before a request times out (default {DEFAULT_TIMEOUT:g})",
    )


def client_from_arguments(args) -> Client:
    return Client(args.delay, args.retries, args.backoff, args.timeout)
