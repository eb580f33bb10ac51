"""A DefiLlama stand-in on 127.0.0.1: the yields API's /pools and /chart/{pool}
in DefiLlama's format, for the tests and `apy-runway rehearse`. A loopback
server that counts every GET per path, a /pools server that answers queued
replies (or broken ones, or a slow trickle of headers), and `pools_item`, one
/pools item in DefiLlama's field order with the model-output fields the loop
must never read.

Imports: the standard library only (floor 4, landing), so a test can start it
without the rest of the package; it never listens beyond 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

# the model-output and look-ahead fields DefiLlama serves beside each pool:
# the loop must never read them (their values are traps a test looks for)
NEVER_READ = {
    "predictions": {"predictedClass": "Down", "predictedProbability": 99, "binnedConfidence": 3},
    "mu": 777.0,
    "sigma": 0.777,
    "count": 777,
    "outlier": True,
    "apyPct1D": 777.0,
    "apyPct7D": 777.0,
    "apyPct30D": 777.0,
    "apyMean30d": 777.0,
}


class CountingHandler(BaseHTTPRequestHandler):
    """Counts each GET in its server's `requests` (per unquoted path), then
    calls `answer(path, count)`, count being this path's requests so far."""

    server: Any  # the ThreadingHTTPServer LoopbackServer made, `owner` set

    def do_GET(self) -> None:
        owner = self.server.owner
        path = unquote(self.path)
        with owner.lock:
            owner.requests[path] = owner.requests.get(path, 0) + 1
            count = owner.requests[path]
        self.answer(path, count)

    def answer(self, path: str, count: int) -> None:
        raise NotImplementedError

    def send_json(self, status: int, payload: Any, headers: dict | None = None) -> None:
        """One JSON reply (`payload` as is when it is already bytes)."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # keep the caller's output clean
        pass


class LoopbackServer:
    """Serves `handler` on 127.0.0.1; `requests` counts GETs per path;
    `stopping` is set when the server is stopped (for handlers that stream)."""

    def __init__(self, handler: type[CountingHandler]) -> None:
        self.requests: dict[str, int] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.server.owner = self
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def pools_item(pool: str, **fields) -> dict:
    """One /pools item in DefiLlama's field order, with the never-read fields."""
    item = {
        "chain": fields.get("chain", "Ethereum"),
        "project": fields.get("project", "aave-v3"),
        "symbol": fields.get("symbol", "USDC"),
        "tvlUsd": fields.get("tvlUsd", 1_000_000.0),
        "apyBase": fields.get("apyBase", fields.get("apy", 5.0)),
        "apyReward": fields.get("apyReward"),
        "apy": fields.get("apy", 5.0),
        "rewardTokens": None,
        "pool": pool,
        "stablecoin": fields.get("stablecoin", True),
        "ilRisk": fields.get("ilRisk", "no"),
        "exposure": fields.get("exposure", "single"),
        "poolMeta": fields.get("poolMeta"),
        "underlyingTokens": ["0x0000000000000000000000000000000000000000"],
        "il7d": None,
        "apyBase7d": None,
        "volumeUsd1d": None,
        "volumeUsd7d": None,
        "apyBaseInception": None,
    }
    item.update(NEVER_READ)
    return item


@dataclass
class Reply:
    status: int
    body: bytes
    date: datetime | None = None


def pools_reply(items: list, date: datetime | None) -> Reply:
    return Reply(200, json.dumps({"status": "success", "data": items}).encode(), date)


class _PoolsHandler(CountingHandler):
    def answer(self, path: str, count: int) -> None:
        owner = self.server.owner
        if path == "/pools":
            with owner.lock:
                reply = owner.replies.popleft() if owner.replies else Reply(503, b"{}")
                slow, owner.delay_headers = owner.delay_headers, 0.0
            if slow:
                return self._trickle_headers(slow)
        elif path.startswith("/chart/") and path[7:] in owner.charts:
            reply = Reply(200, json.dumps(owner.charts[path[7:]]).encode())
        else:
            reply = Reply(404, b'{"error": "not found"}')
        headers = {}
        if reply.date is not None:
            headers["Date"] = format_datetime(reply.date.astimezone(UTC), usegmt=True)
        self.send_json(reply.status, reply.body, headers)

    def _trickle_headers(self, seconds: float) -> None:
        """A status line, then one header byte every 0.1 s for `seconds`."""
        try:
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            ends = time.monotonic() + seconds
            while time.monotonic() < ends and not self.server.owner.stopping.is_set():
                self.wfile.write(b"X")
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:  # the client gave up: expected
            pass
        self.close_connection = True

    def send_response(self, code, message=None):
        # http.server would add the clock's Date: only a queued one is sent
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Server", self.version_string())


class PoolsServer(LoopbackServer):
    """Serves queued /pools replies and fixed /chart documents."""

    def __init__(self, charts: dict[str, dict] | None = None):
        self.replies: deque[Reply] = deque()
        self.charts = charts or {}
        self.delay_headers = 0.0
        super().__init__(_PoolsHandler)

    def queue(self, *replies: Reply) -> None:
        with self.lock:
            self.replies.extend(replies)
