"""`apy-runway fetch` against a misbehaving server on 127.0.0.1 (started and
stopped by the test): truncated bodies, a lying Content-Length, a trickled
body, 429 with Retry-After, a cross-host redirect, an oversize body, empty
data and a long pool id. Every good pool is saved, every bad one is reported
in the failures file, and none stops the others. Deadlines and caps are
small (flags) so the whole run takes a few seconds."""

from __future__ import annotations

import json
import socket
import time

import pytest

from apy_runway.landing.fetch import fetch, landing_dir
from apy_runway.landing.standin import CountingHandler, LoopbackServer


def chart(pool: str) -> dict:
    return {
        "status": "success",
        "data": [{"timestamp": "2024-11-13T00:00:00.000Z", "tvlUsd": 1e6, "apy": 3.0}],
    }


GOOD = ["g00d0000-0000-4000-8000-00000000000" + str(i) for i in range(3)]
LATE = "1a7e0000-0000-4000-8000-000000000001"  # 429 + Retry-After, then fine
HICCUP = "41cc0000-0000-4000-8000-000000000002"  # truncated once, then fine
BAD = {
    "7c0a0000-0000-4000-8000-000000000001": "broken body",  # always truncated
    "11e00000-0000-4000-8000-000000000002": "broken body",  # Content-Length lies
    "7b1c0000-0000-4000-8000-000000000003": "deadline",  # trickled body
    "0b1a0000-0000-4000-8000-000000000004": "redirect to another host refused",
    "b16b0000-0000-4000-8000-000000000005": "over the cap",  # declared too large
    "b16c0000-0000-4000-8000-000000000006": "over the cap",  # chunked, too large
    "e3370000-0000-4000-8000-000000000007": 'empty "data"',
    "5" * 300: "300 characters long",
    "../../etc/passwd": "not a safe file name",
}
CAP_MB = 0.05  # 50 kB: a good chart is ~150 bytes


class _HostileHandler(CountingHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, path: str, count: int) -> None:
        if path == "/pools":
            items = [{"pool": p, "tvlUsd": 1.0} for p in [*GOOD, LATE, HICCUP, *BAD]]
            return self.send_json(200, {"status": "success", "data": items})
        pool = path.removeprefix("/chart/")
        body = json.dumps(chart(pool)).encode()
        if pool == LATE and count == 1:
            return self.send_json(429, {"error": "slow down"}, {"Retry-After": "1"})
        if (pool == HICCUP and count == 1) or pool.startswith("7c0a"):
            return self.raw(body[: len(body) // 2], length=len(body))
        if pool.startswith("11e0"):
            return self.raw(body, length=len(body) + 500)
        if pool.startswith("7b1c"):
            return self.trickle(body)
        if pool.startswith("0b1a"):
            return self.redirect(f"http://localhost:{self.server.owner.port}/chart/{GOOD[0]}")
        if pool.startswith("b16b"):
            return self.raw(b"x" * 10, length=10**9)
        if pool.startswith("b16c"):
            return self.chunked(b'{"data": [' + b"1," * 100_000 + b"1]}")
        if pool.startswith("e337"):
            return self.send_json(200, {"status": "success", "data": []})
        return self.send_json(200, chart(pool))

    def raw(self, body: bytes, length: int):
        """Declares `length` bytes, sends `body`, closes."""
        self.send_response(200)
        self.send_header("Content-Length", str(length))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def trickle(self, body: bytes):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            for byte in body:  # one byte every 50 ms: ~7 s for the body
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.05)
                if self.server.owner.stopping.is_set():
                    break
        except OSError:  # the client gave up: expected
            pass
        self.close_connection = True

    def chunked(self, body: bytes):
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for start in range(0, len(body), 8192):
                part = body[start : start + 8192]
                self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass
        self.close_connection = True

    def redirect(self, location: str):
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()


class Hostile(LoopbackServer):
    """Serves /pools listing every pool above and misbehaves per pool."""

    def __init__(self) -> None:
        super().__init__(_HostileHandler)


@pytest.fixture
def hostile():
    with Hostile() as server:
        yield server


def test_every_good_pool_is_saved_and_every_bad_one_reported(project_home, hostile):
    assert socket.gethostbyname("localhost") == "127.0.0.1"  # the "other host"
    result = fetch(
        project_home,
        base_url=hostile.url,
        delay=0.0,
        retries=1,
        backoff=0.0,
        timeout=0.5,
        deadline=2.5,  # the whole request: the 1 s Retry-After fits, the ~7 s trickle does not
        max_chart_mb=CAP_MB,
    )
    folder = landing_dir(project_home)
    saved = sorted(p.stem for p in (folder / "chart").glob("*.json"))
    assert saved == sorted(result.saved) == sorted([*GOOD, LATE, HICCUP])
    for pool in saved:
        assert json.loads((folder / "chart" / f"{pool}.json").read_text()) == chart(pool)
    failures = json.loads((folder / "fetch_failures.json").read_text())["failed"]
    assert failures.keys() == BAD.keys()
    for pool, problem in BAD.items():
        assert problem in failures[pool], (pool[:40], failures[pool])
    # Retry-After honoured: the late pool's second request came after it
    assert hostile.requests[f"/chart/{LATE}"] == 2
    assert hostile.requests[f"/chart/{HICCUP}"] == 2
    # the bad ids were refused before any request; the cross-host redirect
    # was not followed (the good pool it points at was asked for once, by name)
    assert not [p for p in hostile.requests if "5555" in p or "etc" in p]
    assert hostile.requests[f"/chart/{GOOD[0]}"] == 1
    # a refused body is not retried; a broken one is (retries=1)
    assert hostile.requests["/chart/b16b0000-0000-4000-8000-000000000005"] == 1
    assert hostile.requests["/chart/7c0a0000-0000-4000-8000-000000000001"] == 2
    assert not [p for p in folder.rglob("*") if p.name.startswith(".")]  # no temp files


@pytest.mark.parametrize("command", [["fetch"], ["collect"], ["refresh", "--collect"]])
def test_the_limits_are_flags_of_every_downloading_command(command):
    from apy_runway.cli import build_parser
    from apy_runway.cli.landing import client_from_arguments

    args = build_parser().parse_args(
        [*command, "--deadline", "7", "--max-chart-mb", "1.5", "--max-pools-mb", "3"]
    )
    client = client_from_arguments(args)
    assert (client.deadline, client.max_chart_bytes, client.max_pools_bytes) == (
        7.0,
        1_500_000,
        3_000_000,
    )
