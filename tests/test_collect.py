"""`apy-runway collect` against a DefiLlama-format server on 127.0.0.1: the
hour from the Date header (or the clock), the gzip-compressed response as
served, hours missed between snapshots, the bounded and resumable back-fill of
new pools, and every bad response refused whole with nothing written."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

import pytest

from apy_runway.foundation.console import UserError
from apy_runway.foundation.http import Client
from apy_runway.landing.collect import collect, hour_from_date_header, load_state
from apy_runway.landing.ingest import ingest
from apy_runway.landing.standin import PoolsServer, Reply, pools_item, pools_reply

HOUR = datetime(2024, 3, 1, 5, tzinfo=UTC)
FAST = Client(delay=0, retries=1, backoff=0, timeout=5)


def items(*pools: str) -> list[dict]:
    return [pools_item(pool, apy=3.0 + i) for i, pool in enumerate(pools)]


def chart(pool: str) -> dict:
    return {
        "status": "success",
        "data": [{"timestamp": "2024-02-28T23:01:13.171Z", "apy": 4.2, "tvlUsd": 10.0}],
    }


def landing_state(paths) -> dict[str, bytes]:
    return {
        str(p.relative_to(paths.landing)): p.read_bytes()
        for p in sorted(paths.landing.rglob("*"))
        if p.is_file()
    }


def run(paths, server, **kwargs):
    return collect(paths, base_url=server.url, client=FAST, **kwargs)


def test_the_response_lands_as_served_in_the_hour_of_its_date_header(project_home):
    with PoolsServer() as server:
        server.queue(pools_reply(items("a", "b"), HOUR + timedelta(minutes=59, seconds=59)))
        result = run(project_home, server)
    assert (result.hour, result.hour_source, result.pools) == (HOUR, "Date header", 2)
    path = project_home.landed_pools / "2024-03-01T05Z.json.gz"
    assert result.path == path
    served = json.loads(gzip.decompress(path.read_bytes()))
    # the raw response: the never-read fields are kept in the landed file
    assert served["data"][0]["pool"] == "a" and "predictions" in served["data"][0]
    assert load_state(project_home)["hours"]["2024-03-01T05Z"]["pools"] == 2


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Fri, 01 Mar 2024 05:00:00 GMT", HOUR),
        ("Fri, 01 Mar 2024 06:59:59 +0100", HOUR),
        ("Fri, 01 Mar 2024 05:30:00 -0000", HOUR),
        ("not a date", None),
        ("", None),
        (None, None),
    ],
)
def test_the_hour_of_a_date_header(header, expected):
    assert hour_from_date_header(header) == expected


def test_without_a_date_header_the_local_clock_gives_the_hour(project_home):
    with PoolsServer() as server:
        server.queue(pools_reply(items("a"), None))
        result = run(project_home, server, now=HOUR + timedelta(minutes=42))
    assert (result.hour, result.hour_source) == (HOUR, "local clock")


def test_a_second_collect_in_the_same_hour_replaces_the_file(project_home):
    with PoolsServer() as server:
        server.queue(pools_reply(items("a"), HOUR), pools_reply(items("a", "b"), HOUR))
        first = run(project_home, server)
        second = run(project_home, server)
    assert (first.replaced, second.replaced) == (False, True)
    assert [p.name for p in project_home.landed_pools.glob("*.json.gz")] == [
        "2024-03-01T05Z.json.gz"
    ]
    assert second.missing_hours == []


def test_missed_hours_are_reported(project_home):
    with PoolsServer() as server:
        server.queue(
            pools_reply(items("a"), HOUR), pools_reply(items("a"), HOUR + timedelta(hours=3))
        )
        run(project_home, server)
        result = run(project_home, server)
    assert result.previous_hour == HOUR
    assert result.missing_hours == [HOUR + timedelta(hours=1), HOUR + timedelta(hours=2)]
    assert "2 hour(s) missing" in result.summary()


def test_new_pools_are_back_filled_bounded_per_run_and_resumed(project_home):
    charts = {pool: chart(pool) for pool in ("n1", "n2", "n3")}
    with PoolsServer(charts) as server:
        server.queue(
            pools_reply(items("a"), HOUR),
            pools_reply(items("a", "n1", "n2", "n3", "gone"), HOUR + timedelta(hours=1)),
            pools_reply(items("a", "n1", "n2", "n3", "gone"), HOUR + timedelta(hours=2)),
            pools_reply(items("a", "n1", "n2", "n3", "gone"), HOUR + timedelta(hours=3)),
        )
        first = run(project_home, server, backfill_max=2)
        second = run(project_home, server, backfill_max=2)
        third = run(project_home, server, backfill_max=2)
        fourth = run(project_home, server, backfill_max=2)
        requests = dict(server.requests)
    # the first snapshot of an empty home: every pool is new ("a" has no /chart)
    assert (first.new_pools, first.backfilled, list(first.backfill_failed)) == (1, [], ["a"])
    assert second.new_pools == 4 and second.backfilled == ["n1"]
    assert second.backfill_queued == 4  # n2, n3, gone, and "a" again at the back
    assert third.backfilled == ["n2", "n3"] and fourth.new_pools == 0
    chart_dir = project_home.landing / "defillama" / "chart"
    assert sorted(p.stem for p in chart_dir.glob("*.json")) == ["n1", "n2", "n3"]
    # a saved chart is never fetched again; a failing pool is retried per run
    assert all(requests[f"/chart/{pool}"] == 1 for pool in ("n1", "n2", "n3"))
    assert requests["/chart/gone"] >= 1


def test_pools_already_in_the_raw_store_are_not_back_filled(project_home, tmp_path):
    history = tmp_path / "history.csv"
    history.write_text("timestamp,pool,apy\n2024-02-28T23:00:00Z,a,1.0\n")
    ingest([history], project_home)
    with PoolsServer({"b": chart("b")}) as server:
        server.queue(pools_reply(items("a", "b"), HOUR))
        result = run(project_home, server)
    assert (result.new_pools, result.backfilled) == (1, ["b"])


def test_a_shrunken_snapshot_is_refused_unless_allowed(project_home):
    many = items(*(f"p{i}" for i in range(10)))
    with PoolsServer() as server:
        server.queue(
            pools_reply(many, HOUR),
            pools_reply(many[:4], HOUR + timedelta(hours=1)),
            pools_reply(many[:4], HOUR + timedelta(hours=1)),
        )
        run(project_home, server, backfill_max=0)
        before = landing_state(project_home)
        with pytest.raises(UserError, match=r"4 pools, below 50% of the previous snapshot's 10"):
            run(project_home, server, backfill_max=0)
        assert landing_state(project_home) == before
        allowed = run(project_home, server, backfill_max=0, allow_shrink=True)
    assert allowed.pools == 4


def truncated() -> Reply:
    body = json.dumps({"status": "success", "data": items("a", "b")}).encode()
    return Reply(200, body[: len(body) // 2], HOUR)


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        (Reply(500, b'{"error": "internal"}', HOUR), "HTTP 500"),
        (truncated(), "not JSON"),
        (Reply(200, b"<html>rate limited</html>", HOUR), "not JSON"),
        (pools_reply([], HOUR), 'empty "data" list'),
        (Reply(200, json.dumps({"status": "error", "data": []}).encode(), HOUR), "status"),
        (Reply(200, json.dumps({"status": "success"}).encode(), HOUR), 'no "data" list'),
        (
            pools_reply([{k: v for k, v in i.items() if k != "apy"} for i in items("a")], HOUR),
            'no item has the field "apy"',
        ),
        (
            pools_reply([{k: v for k, v in i.items() if k != "pool"} for i in items("a")], HOUR),
            'no item has the field "pool"',
        ),
    ],
)
def test_a_bad_response_writes_nothing_and_says_why_in_one_line(project_home, reply, problem):
    with PoolsServer() as server:
        server.queue(pools_reply(items("a", "b"), HOUR - timedelta(hours=1)))
        run(project_home, server, backfill_max=0)
        before = landing_state(project_home)
        server.queue(reply, reply)  # the client retries once
        with pytest.raises(UserError) as error:
            run(project_home, server)
    message = str(error.value)
    assert problem in message and "nothing was written" in message and "\n" not in message
    assert landing_state(project_home) == before
