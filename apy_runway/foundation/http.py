"""The one HTTP client of the data stages: sequential GETs of DefiLlama's JSON API
with a polite delay, retries with exponential backoff (urllib3's Retry, honouring
Retry-After up to MAX_RETRY_AFTER), a deadline over each whole request enforced
by a watchdog that shuts the socket down, body caps, same-host redirects only,
and JSON at most MAX_JSON_DEPTH deep with a non-empty "data" list (`parse_json`).

Imports: urllib3, numpy, the standard library and apy_runway/foundation (floor
3). `fetch` and `collect` both use it, so their limits and error messages are
the same; the watchdog exists because per-read timeouts alone let a server
trickling headers or body byte by byte hold the caller indefinitely. A response
comes back with its raw bytes and headers (collect saves the bytes as served).
The limits as flags: docs/operations.md#using-it.
"""

from __future__ import annotations

import contextlib
import contextvars
import http.client
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import MaxRetryError
from urllib3.util import Retry, Timeout

from apy_runway.foundation.console import log
from apy_runway.foundation.defaults import (
    DEFAULT_BACKOFF,
    DEFAULT_DEADLINE,
    DEFAULT_DELAY,
    DEFAULT_MAX_CHART_MB,
    DEFAULT_MAX_POOLS_MB,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    MAX_RETRY_AFTER,
)

USER_AGENT = "apy-runway/0.1 (+https://github.com/; research use, rate-limited)"
MAX_REDIRECTS = 5
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
CHUNK = 1 << 16
# DefiLlama's replies nest 4 levels ({"data": [{"predictions": {...}}]}); a
# deeper document is refused before Python's recursive parser sees it
MAX_JSON_DEPTH = 64
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')


def json_depth(body: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest, by a scan of its
    bytes (C-speed: escapes dropped, strings cut out, brackets counted)."""
    structure = body.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_STRUCTURE)
    brackets = b"".join(structure.split(b'"')[::2])  # outside the strings
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


def parse_json(body: bytes) -> Any:
    """A JSON document, or ValueError with a one-line reason: not JSON, nested
    deeper than MAX_JSON_DEPTH, or a number too long to convert."""
    depth = json_depth(body)
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"JSON nested {depth:,} levels deep (at most {MAX_JSON_DEPTH})")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"not JSON ({len(body):,} bytes)") from None
    except (ValueError, RecursionError) as error:  # e.g. a 5,000-digit number
        raise ValueError(f"JSON not readable ({str(error).split(':')[0]})") from None


class FetchError(Exception):
    """One request failed; `retryable` says whether trying again can help."""

    def __init__(
        self,
        message: str,
        retryable: bool = True,
        response: urllib3.BaseHTTPResponse | None = None,
    ):
        super().__init__(message)
        self.retryable = retryable
        self.response = response


@dataclass(frozen=True)
class JsonResponse:
    """A successful GET: the parsed document, its raw bytes and its headers."""

    payload: dict
    body: bytes
    headers: Mapping[str, str]


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


class _Watchdog:
    """Shuts down the sockets of one request when its deadline passes: a
    blocked connect, header or body read then fails at once, however slowly
    the server sends (a per-read timeout alone restarts with every byte)."""

    def __init__(self, seconds: float):
        self.expired = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(seconds, 0.0), self._expire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket | None) -> None:
        with self._lock:
            if sock is not None:
                self._sockets.append(sock)
            if self.expired.is_set():
                self._shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired.set()
            for sock in self._sockets:
                self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket | None) -> None:
        if sock is None:
            return
        with contextlib.suppress(OSError):
            # the plain socket's shutdown: a TLS socket's own would race its reader
            socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()


_WATCHDOG: contextvars.ContextVar[_Watchdog | None] = contextvars.ContextVar(
    "apy_runway_http_watchdog", default=None
)


class _Watched:
    """A connection that shows its socket to the request's watchdog once the
    request is sent (a fresh or a reused connection alike)."""

    sock: socket.socket | None

    def getresponse(self):
        watchdog = _WATCHDOG.get()
        if watchdog is not None:
            watchdog.watch(self.sock)
        return super().getresponse()  # type: ignore[misc]


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


@contextlib.contextmanager
def _deadline_watch(seconds: float) -> Iterator[_Watchdog]:
    watchdog = _Watchdog(seconds)
    token = _WATCHDOG.set(watchdog)
    try:
        yield watchdog
    finally:
        _WATCHDOG.reset(token)
        watchdog.cancel()


class Client:
    """Sequential GETs with a polite delay between them and retries with backoff."""

    def __init__(
        self,
        delay: float = DEFAULT_DELAY,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        timeout: float = DEFAULT_TIMEOUT,
        deadline: float = DEFAULT_DEADLINE,
        max_chart_mb: float = DEFAULT_MAX_CHART_MB,
        max_pools_mb: float = DEFAULT_MAX_POOLS_MB,
    ):
        if delay < 0 or retries < 0 or backoff < 0 or timeout <= 0 or deadline <= 0:
            raise ValueError(
                f"delay, retries and backoff must be >= 0, timeout and deadline > 0, got "
                f"delay={delay}, retries={retries}, backoff={backoff}, timeout={timeout}, "
                f"deadline={deadline}"
            )
        if max_chart_mb <= 0 or max_pools_mb <= 0:
            raise ValueError(
                f"body caps must be > 0 MB, got max_chart_mb={max_chart_mb}, "
                f"max_pools_mb={max_pools_mb}"
            )
        self.delay, self.retries, self.backoff, self.timeout = delay, retries, backoff, timeout
        self.deadline = deadline
        self.max_chart_bytes = int(max_chart_mb * 1e6)
        self.max_pools_bytes = int(max_pools_mb * 1e6)
        self.requests = 0
        self._last_request: float | None = None
        self._pool = urllib3.PoolManager(
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            retries=False,
        )
        self._pool.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}

    def _wait_turn(self) -> None:
        if self._last_request is not None:
            remaining = self.delay - (time.monotonic() - self._last_request)
            if remaining > 0:
                time.sleep(remaining)
        self._last_request = time.monotonic()

    def _policy(self) -> Retry:
        return Retry(
            total=self.retries,
            allowed_methods=frozenset({"GET"}),
            status_forcelist=RETRY_STATUSES,
            respect_retry_after_header=True,
            redirect=False,
            raise_on_status=False,
        )

    def get(self, url: str, label: str, max_bytes: int | None = None) -> JsonResponse:
        """GET a JSON document ({"data": [...]}, not empty), retried per the
        policy above within one deadline; FetchError names what went wrong
        and the attempts."""
        max_bytes = max_bytes or self.max_chart_bytes
        retry = self._policy()
        attempt = 0
        self._wait_turn()
        ends = time.monotonic() + self.deadline
        while True:
            if attempt:
                self._wait_turn()
            self.requests += 1
            attempt += 1
            try:
                return self._get_once(url, max_bytes, retry, ends)
            except FetchError as error:
                if not error.retryable:
                    raise FetchError(f"{error} after {attempt} attempt(s)", False) from None
                try:
                    retry = retry.increment(
                        method="GET",
                        url=url,
                        response=error.response,
                        error=None if error.response is not None else Urllib3Error(str(error)),
                    )
                except (MaxRetryError, Urllib3Error):
                    raise FetchError(f"{error} after {attempt} attempt(s)", True) from None
                after = retry.get_retry_after(error.response) if error.response else None
                wait = (
                    min(after, MAX_RETRY_AFTER)
                    if after is not None
                    else self.backoff * 2 ** (attempt - 1)
                )
                said = " (Retry-After)" if after is not None else ""
                if time.monotonic() + wait >= ends:
                    raise FetchError(
                        f"{error} after {attempt} attempt(s); a retry in {wait:.1f} s{said} "
                        f"would pass the {self.deadline:g} s deadline",
                        True,
                    ) from None
                log(f"  {label}: {error}; retry {attempt}/{self.retries} in {wait:.1f} s{said}")
                time.sleep(wait)

    def _get_once(self, url: str, max_bytes: int, retry: Retry, ends: float) -> JsonResponse:
        """One attempt, ended by the watchdog at `ends` (time.monotonic)."""
        left = ends - time.monotonic()
        if left <= 0:
            raise FetchError(f"no complete response within the {self.deadline:g} s deadline", False)
        with _deadline_watch(left) as watchdog:
            try:
                body, headers = self._fetch_body(url, max_bytes, retry, ends)
            except FetchError:
                if not watchdog.expired.is_set():
                    raise
            if watchdog.expired.is_set():  # a body read until close may be cut short
                self._pool.clear()  # no shut-down socket goes back to the pool
                raise FetchError(
                    f"no complete response within the {self.deadline:g} s deadline "
                    "(connect, headers and body)",
                    retryable=False,
                )
        try:
            payload = parse_json(body)
        except ValueError as error:
            raise FetchError(f"response is {error}") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
            status = payload.get("status") if isinstance(payload, dict) else type(payload).__name__
            raise FetchError(f'response has no "data" list (status: {status})')
        if not payload["data"]:
            # nothing to save: a failure to try again on a later run
            raise FetchError(
                f'empty "data" list (status: {payload.get("status")}; nothing to save, '
                "try again later)",
                False,
            )
        return JsonResponse(payload, body, headers)

    def _fetch_body(
        self, url: str, max_bytes: int, retry: Retry, ends: float
    ) -> tuple[bytes, dict[str, str]]:
        """The body and headers of a 200 answer (same-origin redirects followed)."""
        origin = _origin(url)
        for _ in range(MAX_REDIRECTS + 1):
            wait = max(min(self.timeout, ends - time.monotonic()), 0.001)
            try:
                response = self._pool.request(
                    "GET",
                    url,
                    preload_content=False,
                    redirect=False,
                    retries=False,
                    timeout=Timeout(connect=wait, read=self.timeout),
                )
            except (Urllib3Error, http.client.HTTPException, OSError) as error:
                raise FetchError(f"network error: {error}") from None
            location = response.get_redirect_location()
            if not location:
                break
            response.drain_conn()
            response.release_conn()
            target = urllib.parse.urljoin(url, location)
            if _origin(target) != origin:
                raise FetchError(
                    f"HTTP {response.status} redirect to another host refused: {target}",
                    retryable=False,
                )
            url = target
        else:
            raise FetchError(f"more than {MAX_REDIRECTS} redirects", retryable=False)
        try:
            if response.status != 200:
                has_retry_after = bool(response.headers.get("Retry-After"))
                retryable = retry.is_retry("GET", response.status, has_retry_after)
                raise FetchError(
                    f"HTTP {response.status} {response.reason}", retryable, response=response
                )
            body = self._read_body(response, max_bytes)
            headers = dict(response.headers.items())
        except FetchError:
            response.close()  # never hand a half-read connection back to the pool
            raise
        finally:
            response.release_conn()
        return body, headers

    def _read_body(self, response: urllib3.BaseHTTPResponse, max_bytes: int) -> bytes:
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise FetchError(
                f"body of {int(declared):,} bytes is over the cap of {max_bytes:,} bytes",
                retryable=False,
            )
        chunks, size = [], 0
        try:
            while True:
                chunk = response.read1(CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError(
                        f"body over the cap of {max_bytes:,} bytes (not read further)",
                        retryable=False,
                    )
                chunks.append(chunk)
        except (Urllib3Error, http.client.HTTPException, OSError) as error:
            # IncompleteRead (a body cut short or a lying Content-Length),
            # a reset connection or a read timeout
            raise FetchError(f"broken body after {size:,} bytes: {error}") from None
        return b"".join(chunks)
