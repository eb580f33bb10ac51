"""The webhook cannot break or hold the scorer: alerts.post never raises
(hypothesis: any text as the URL, any object as the body), and a receiver
that trickles its answer is cut off at the budget, alone and inside an hourly
run. Receivers are real sockets on 127.0.0.1, stopped by the tests."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fixtures.tiny_model import feature_file
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apy_runway.foundation.s3 import upload_run
from apy_runway.operations.publish import upload_features_binary
from inference import alerts, contracts, handler


class Receiver:
    """A webhook receiver on 127.0.0.1 answering 204 to every POST."""

    def __init__(self) -> None:
        self.posts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.posts += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class Trickler:
    """Accepts a connection, reads the request, then sends its answer one byte
    every `every` seconds, for as long as the client keeps the socket open:
    each read succeeds, so a per-read timeout alone would never fire."""

    def __init__(self, every: float = 0.2) -> None:
        self.every = every
        self.stop = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/hook"
        self.threads: list[threading.Thread] = []

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=self._trickle, args=(connection,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _trickle(self, connection: socket.socket) -> None:
        with connection:
            connection.settimeout(1.0)
            try:
                connection.recv(65536)
                for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"x" * 10_000:
                    if self.stop.wait(self.every):
                        return
                    connection.sendall(bytes([byte]))
            except OSError:
                return  # the client gave up and closed: what it should do

    def __enter__(self) -> Trickler:
        thread = threading.Thread(target=self._serve, daemon=True)
        thread.start()
        self.threads.append(thread)
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=5)
        self.listener.close()


class Unserialisable:
    pass


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.fixture(scope="module")
def receiver():
    with Receiver() as hook:
        yield hook


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)
bodies = st.one_of(
    json_values,
    st.builds(Unserialisable),
    st.sets(st.integers(), max_size=3),
    st.binary(max_size=10),
    st.integers(min_value=1, max_value=2000).map(lambda depth: _nested(depth)),
)


@settings(
    derandomize=True,
    deadline=None,
    max_examples=300,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    url=st.one_of(
        st.text(max_size=40),
        st.text(max_size=20).map(lambda path: f"http://127.0.0.1:9/{path}"),  # nothing listens
        st.sampled_from(["https://exa mple.com/", "http://127.0.0.1:notaport/", "http://[::1"]),
        st.just("RECEIVER"),
    ),
    body=bodies,
)
def test_post_never_raises(receiver, url, body):
    url = receiver.url if url == "RECEIVER" else url
    started = time.perf_counter()
    outcome = alerts.post(url, body, budget=1.0)
    assert outcome is None or isinstance(outcome, str)
    assert time.perf_counter() - started < 2.0
    if outcome is None:
        assert url == receiver.url and json.dumps(body, allow_nan=False)


def test_a_receiver_that_trickles_its_answer_is_cut_off_at_the_budget():
    with Trickler() as slow:
        started = time.perf_counter()
        outcome = alerts.post(slow.url, {"content": "x", "text": "x"}, budget=1.0)
        elapsed = time.perf_counter() - started
    assert outcome == "no answer within the 1 s budget"
    assert 1.0 <= elapsed < 1.5


def test_a_slow_webhook_holds_the_hourly_run_no_longer_than_the_budget(
    s3_client, moto_endpoint, tiny_run, monkeypatch
):
    """A degraded first run (stale features) posts an alert; the receiver
    trickles; the run finishes, reports the error and wrote everything."""
    bucket = f"apy-runway-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=bucket)
    upload_run(s3_client, bucket, contracts.MODEL_PREFIX, tiny_run)
    upload_features_binary(s3_client, bucket, contracts.FEATURES_KEY, feature_file(30))
    monkeypatch.setattr(alerts, "WEBHOOK_BUDGET_SECONDS", 1.0)
    with Trickler() as slow:
        for key, value in {
            "AWS_ENDPOINT_URL": moto_endpoint,
            "APY_RUNWAY_BUCKET": bucket,
            "APY_RUNWAY_WEBHOOK_URL": slow.url,
        }.items():
            monkeypatch.setenv(key, value)
        started = time.perf_counter()
        summary = handler.scheduled({"time": "2025-06-20T00:00:00Z"})  # features 15 days old
        elapsed = time.perf_counter() - started
    assert summary["health"] == "degraded" and summary["latest_written"]
    assert summary["alert"]["error"] == "no answer within the 1 s budget"
    assert summary["alert"]["posted"] is False
    assert elapsed < 1.0 + 5.0  # the budget plus the run itself
    assert summary["ms"]["alert"] < 1500
