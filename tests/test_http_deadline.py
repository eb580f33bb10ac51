"""--deadline bounds a whole request: connect, headers, body and retries. Servers
on 127.0.0.1 (started and stopped here) that accept and never answer, trickle
their headers or body a byte at a time (each byte well within --timeout, so
only the deadline can end them), or answer 503 to every try; each request ends
within deadline + 1 s with one line naming the deadline. Also the JSON limits:
a deeply nested or unreadable document is one clear FetchError, never a
RecursionError."""

from __future__ import annotations

import json
import socket
import time

import pytest

from apy_runway.foundation.console import UserError
from apy_runway.foundation.http import MAX_JSON_DEPTH, Client, FetchError, json_depth, parse_json
from apy_runway.landing.collect import collect
from apy_runway.landing.standin import CountingHandler, LoopbackServer, PoolsServer

DEADLINE = 1.5
TIMEOUT = 1.0  # longer than the 0.1 s between trickled bytes


class _Slow(CountingHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, path: str, count: int) -> None:
        stopping = self.server.owner.stopping
        try:
            if path == "/slow-headers":
                self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                while not stopping.is_set():
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.1)
            elif path == "/slow-body":
                self.send_response(200)
                self.send_header("Content-Length", "100000")
                self.end_headers()
                self.wfile.write(b'{"data": [')
                while not stopping.is_set():
                    self.wfile.write(b"1,")
                    self.wfile.flush()
                    time.sleep(0.1)
            elif path == "/unavailable":
                self.send_json(503, {"error": "busy"})
        except OSError:  # the client hung up: expected
            pass
        self.close_connection = True


@pytest.fixture(scope="module")
def slow():
    with LoopbackServer(_Slow) as server:
        yield server


@pytest.fixture
def silent():
    """A socket that listens and never accepts: connect succeeds (the kernel's
    backlog), then nothing is ever said."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def timed_get(url: str, **client) -> tuple[float, str]:
    options = {"delay": 0, "retries": 0, "backoff": 0, "timeout": TIMEOUT, "deadline": DEADLINE}
    started = time.monotonic()
    with pytest.raises(FetchError) as error:
        Client(**(options | client)).get(url, "test")
    return time.monotonic() - started, str(error.value)


@pytest.mark.parametrize("path", ["/slow-headers", "/slow-body"])
def test_a_trickling_server_is_cut_off_at_the_deadline(slow, path):
    seconds, message = timed_get(slow.url + path, retries=3)
    assert seconds < DEADLINE + 1, seconds
    assert f"within the {DEADLINE:g} s deadline" in message
    assert slow.requests[path] == 1  # no time is left for a retry


def test_a_server_that_never_answers_is_cut_off_at_the_deadline_not_the_timeout(silent):
    seconds, message = timed_get(silent, timeout=30)
    assert seconds < DEADLINE + 1, seconds
    assert "deadline" in message


def test_retries_and_their_waits_fit_inside_the_deadline(slow):
    seconds, message = timed_get(slow.url + "/unavailable", retries=20, backoff=0.2)
    assert seconds < DEADLINE + 1, seconds
    assert "HTTP 503" in message and "would pass the 1.5 s deadline" in message
    assert 2 <= slow.requests["/unavailable"] <= 5


def test_collect_from_a_slow_header_server_ends_within_the_deadline(project_home):
    with PoolsServer() as server:
        server.delay_headers = 30.0
        started = time.monotonic()
        with pytest.raises(UserError, match=r"deadline.*nothing was written"):
            collect(
                project_home,
                base_url=server.url,
                client=Client(delay=0, retries=2, backoff=0, timeout=TIMEOUT, deadline=DEADLINE),
            )
    assert time.monotonic() - started < DEADLINE + 1


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested 100,001 levels deep"),
        (b'{"data": [' + b"1" * 5000 + b"]}", "JSON not readable"),
        (b'{"data": [1, 2', "not JSON"),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_unreadable_json_is_one_clear_line(body, problem):
    with pytest.raises(ValueError, match=problem) as error:
        parse_json(body)
    assert "\n" not in str(error.value)


def test_the_depth_scan_ignores_brackets_inside_strings():
    text = json.dumps({"a": ["[[[{{", {"b": '\\"[', "c": "\\"}], "d": "]]]]"})
    assert json_depth(text.encode()) == 3
    deep = json.dumps(json.loads("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH))
    assert parse_json(deep.encode()) is not None
