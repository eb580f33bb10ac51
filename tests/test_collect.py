"""`apy-runway collect` against a DefiLlama-format server on 127.0.0.1: the
hour from the Date header (trusted within 2 h of the clock) or the clock, the
gzip-compressed response as served, a collected hour never replaced, junk
items dropped and counted, hours missed between snapshots, the bounded,
resumable back-fill of pools never seen with its retry backoff, and every bad
response refused whole with nothing written."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

import duckdb
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
    """collect, the local clock a minute after the next queued reply's Date
    (unless a test sets `now`): a clock that agrees with the server."""
    if "now" not in kwargs and server.replies and server.replies[0].date is not None:
        kwargs["now"] = server.replies[0].date + timedelta(minutes=1)
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


def test_a_second_collect_in_the_same_hour_keeps_the_first(project_home):
    with PoolsServer() as server:
        server.queue(pools_reply(items("a"), HOUR), pools_reply(items("a", "b"), HOUR))
        first = run(project_home, server)
        landed = first.path.read_bytes()
        second = run(project_home, server)
    assert (first.kept, second.kept) == (False, True)
    assert [p.name for p in project_home.landed_pools.glob("*.json.gz")] == [
        "2024-03-01T05Z.json.gz"
    ]
    assert first.path.read_bytes() == landed
    assert "kept 2024-03-01T05Z" in second.summary()


@pytest.mark.parametrize(
    "offset", [timedelta(hours=-72), timedelta(days=-365 * 30), timedelta(hours=4)]
)
def test_a_date_header_far_from_the_clock_is_not_believed(project_home, offset):
    """A reply dated 72 h ago (or in 1994, or 4 h ahead) lands in the clock's
    hour, with a warning; the hour it claims keeps its own snapshot."""
    with PoolsServer() as server:
        server.queue(pools_reply(items("a"), HOUR))
        real = run(project_home, server)
        server.queue(pools_reply(items("a", "b"), HOUR + offset))
        result = run(project_home, server, now=HOUR + timedelta(hours=1, minutes=5))
    assert real.hour == HOUR and not real.warnings
    assert (result.hour, result.kept) == (HOUR + timedelta(hours=1), False)
    assert result.hour_source == "local clock (Date header not trusted)"
    [warning] = result.warnings
    assert "the local clock" in warning and "2024-03-01T06Z is used" in warning
    assert sorted(p.name for p in project_home.landed_pools.glob("*.json.gz")) == [
        "2024-03-01T05Z.json.gz",
        "2024-03-01T06Z.json.gz",
    ]


def test_a_date_header_within_two_hours_of_the_clock_gives_the_hour(project_home):
    with PoolsServer() as server:
        server.queue(pools_reply(items("a"), HOUR + timedelta(minutes=3)))
        result = run(project_home, server, now=HOUR + timedelta(hours=1, minutes=59))
    assert (result.hour, result.hour_source, result.warnings) == (HOUR, "Date header", [])


def landed_items(result) -> list[dict]:
    return json.loads(gzip.decompress(result.path.read_bytes()))["data"]


def test_junk_items_are_dropped_and_counted_and_the_hour_kept(project_home):
    """Items that are not objects, have no usable pool id, or an id the pool-id
    rule refuses (over 255 bytes: a file name too long; a path) are dropped
    before any file is touched; numeric ids become text."""
    junk = [
        "not an object",
        None,
        pools_item("5" * 300),
        pools_item("../../etc/passwd"),
        {**pools_item("x"), "pool": None},
        {**pools_item("x"), "pool": True},
        {**pools_item("x"), "pool": ["a"]},
    ]
    good = [*items("a"), {**pools_item("x"), "pool": 7}, {**pools_item("x"), "pool": 8.5}]
    with PoolsServer() as server:
        server.queue(pools_reply([junk[0], good[0], *junk[1:], *good[1:]], HOUR))
        result = run(project_home, server, backfill_max=5)
        requests = dict(server.requests)
    assert result.pools == 3 and not result.kept
    assert result.dropped == {"no_pool_id": 3, "not_an_object": 2, "unsafe_pool_id": 2}
    assert "dropped 7 junk item(s)" in result.summary()
    assert [item["pool"] for item in landed_items(result)] == ["a", "7", "8.5"]
    # the safe new pools were asked for their history; the unsafe ids never
    assert {p for p in requests if p.startswith("/chart/")} == {
        "/chart/a",
        "/chart/7",
        "/chart/8.5",
    }
    assert load_state(project_home)["hours"]["2024-03-01T05Z"]["dropped"] == result.dropped
    # and ingest lands the hour: three pools, nothing quarantined
    landed = ingest([], project_home)
    assert (landed.rows_staged, landed.rows_quarantined, landed.pools) == (3, 0, 3)


def test_numeric_pool_ids_are_counted_as_pools(project_home):
    numeric = [{**pools_item("x"), "pool": 1000 + i} for i in range(4)]
    with PoolsServer() as server:
        server.queue(pools_reply(numeric, HOUR))
        result = run(project_home, server, backfill_max=0)
    assert result.pools == 4 and result.dropped == {}
    assert [item["pool"] for item in landed_items(result)] == ["1000", "1001", "1002", "1003"]


def test_a_reply_of_nothing_but_junk_writes_nothing(project_home):
    with PoolsServer() as server:
        server.queue(pools_reply([pools_item("5" * 300), {**pools_item("x"), "pool": None}], HOUR))
        with pytest.raises(UserError, match=r"none of the 2 items is usable \(no_pool_id 1"):
            run(project_home, server)
    assert not list(project_home.landed_pools.glob("*.json.gz"))


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
            *(
                pools_reply(items("a", "n1", "n2", "n3", "gone"), HOUR + timedelta(hours=h))
                for h in (1, 2, 3)
            ),
        )
        first = run(project_home, server, backfill_max=2)
        second = run(project_home, server, backfill_max=2)
        third = run(project_home, server, backfill_max=2)
        fourth = run(project_home, server, backfill_max=2)
        requests = dict(server.requests)
    # the first snapshot of an empty home: every pool is new ("a" has no /chart)
    assert (first.new_pools, first.backfilled, list(first.backfill_failed)) == (1, [], ["a"])
    assert second.new_pools == 4 and second.backfilled == ["n1"]
    # "a" was due again (1 h later) and failed again: it waits 2 h now
    assert list(second.backfill_failed) == ["a"]
    assert third.backfilled == ["n2", "n3"] and fourth.new_pools == 0
    chart_dir = project_home.landing / "defillama" / "chart"
    assert sorted(p.stem for p in chart_dir.glob("*.json")) == ["n1", "n2", "n3"]
    # a saved chart is never fetched again
    assert all(requests[f"/chart/{pool}"] == 1 for pool in ("n1", "n2", "n3"))


def test_a_failing_back_fill_is_asked_again_with_backoff_and_listed(project_home):
    """A pool whose /chart answers 404 is asked again after 1 h, 2 h, 4 h, 8 h,
    16 h, then once a day; fetch_failures.json lists it with its next try."""
    hours = list(range(80))
    with PoolsServer({"b": chart("b")}) as server:
        server.queue(*(pools_reply(items("a", "b"), HOUR + timedelta(hours=h)) for h in hours))
        for _ in hours:
            run(project_home, server, backfill_max=5)
        asked = server.requests["/chart/a"]
        assert server.requests["/chart/b"] == 1
    # asked at hours 0, 1, 3, 7, 15, 31, 55, 79: eight times in 80 hours
    assert asked == 8
    state = load_state(project_home)
    assert state["backfill_retry"]["a"]["attempts"] == 8
    assert (
        state["backfill_retry"]["a"]["next_at"]
        == (HOUR + timedelta(hours=103, minutes=1)).isoformat()
    )
    failures = json.loads((project_home.landing / "defillama" / "fetch_failures.json").read_text())
    assert list(failures["failed"]) == ["a"] and "HTTP 404" in failures["failed"]["a"]
    assert "next try after" in failures["failed"]["a"]


def test_a_pool_that_vanishes_and_returns_is_not_back_filled_again(project_home):
    """New means never seen by the home, not missing from the previous hour."""
    with PoolsServer({"b": chart("b")}) as server:
        server.queue(
            pools_reply(items("a", "b"), HOUR),
            pools_reply(items("a"), HOUR + timedelta(hours=1)),
            pools_reply(items("a"), HOUR + timedelta(hours=2)),
            pools_reply(items("a", "b"), HOUR + timedelta(hours=3)),
        )
        results = [run(project_home, server, backfill_max=5) for _ in range(4)]
        requests = dict(server.requests)
    assert [r.new_pools for r in results] == [2, 0, 0, 0]
    assert requests["/chart/b"] == 1


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
        with pytest.raises(UserError, match=r"4 pools, below 50% of the 10 of 2024-03-01T05Z"):
            run(project_home, server, backfill_max=0)
        assert landing_state(project_home) == before
        allowed = run(project_home, server, backfill_max=0, allow_shrink=True)
    assert allowed.pools == 4


def test_the_shrink_rule_cannot_be_walked_down_hour_by_hour(project_home):
    """Each step keeps 60% of the previous hour (allowed one by one), but the
    rule compares with the largest of the last 24 collected hours: 10 -> 6 is
    landed, 6 -> 4 is refused (4 < 50% of 10); 25 hours after the 10, the 6
    is the reference and 4 is landed."""
    many = items(*(f"p{i}" for i in range(10)))
    with PoolsServer() as server:
        server.queue(
            pools_reply(many, HOUR),
            pools_reply(many[:6], HOUR + timedelta(hours=1)),
            pools_reply(many[:4], HOUR + timedelta(hours=2)),
            pools_reply(many[:4], HOUR + timedelta(hours=25)),
        )
        counts = [run(project_home, server, backfill_max=0).pools for _ in range(2)]
        with pytest.raises(UserError, match=r"4 pools, below 50% of the 10 of 2024-03-01T05Z"):
            run(project_home, server, backfill_max=0)
        later = run(project_home, server, backfill_max=0)
    assert counts == [10, 6] and later.pools == 4


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


def test_a_collected_hour_is_never_replaced_by_a_chart_row_or_an_older_dated_reply(
    project_home,
):
    """The loop end to end (collect, back-fill, ingest): a new pool's /chart
    history holds a row in an hour collect landed; a reply dated 3 h behind the
    clock, and one dated in an hour already collected, arrive later. Every
    collected hour keeps the values it was collected with."""
    h0, h1 = HOUR, HOUR + timedelta(hours=1)
    history = {
        "status": "success",
        "data": [
            {"timestamp": "2024-02-28T23:01:13.171Z", "apy": 7.0, "tvlUsd": 10.0},
            {"timestamp": f"{h1:%Y-%m-%dT%H}:00:00.000Z", "apy": 99.0, "tvlUsd": 10.0},
        ],
    }
    with PoolsServer({"n": history}) as server:
        server.queue(
            pools_reply([pools_item("a", apy=5.0)], h0),
            pools_reply([pools_item("a", apy=6.0), pools_item("n", apy=8.0)], h1),
            pools_reply([pools_item("a", apy=35.0), pools_item("n", apy=35.0)], h0),
            pools_reply([pools_item("a", apy=36.0), pools_item("n", apy=36.0)], h1),
        )
        run(project_home, server)
        ingest([], project_home)
        second = run(project_home, server, backfill_max=0)  # n waits in the queue
        ingest([], project_home)
        stale = run(project_home, server, now=h0 + timedelta(hours=3, minutes=2))
        assert (second.new_pools, second.backfilled, stale.backfilled) == (1, [], ["n"])
        repeated = run(project_home, server, now=h1 + timedelta(minutes=30))
        landed = ingest([], project_home)
    assert stale.hour == h0 + timedelta(hours=3) and stale.warnings
    assert repeated.kept and repeated.hour == h1
    # the stale reply (in the clock's hour) and n's history, whose row of a
    # collected hour was outranked
    assert (landed.files_landed, landed.by_reason["outranked"]) == (2, 1)

    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        rows = con.execute(f"""
            select stored.pool, strftime(stored."timestamp", '%Y-%m-%dT%H'), stored.apy
            from read_parquet('{project_home.raw_store}/*/*.parquet') as stored
            anti join read_parquet('{project_home.superseded_rows}') as superseded
                on stored.pool = superseded.pool
                and date_trunc('hour', stored."timestamp") = superseded.snapshot_hour
                and stored.landing_order = superseded.landing_order
            order by all
        """).fetchall()
    assert rows == [
        ("a", "2024-03-01T05", 5.0),
        ("a", "2024-03-01T06", 6.0),
        ("a", "2024-03-01T08", 35.0),
        ("n", "2024-02-28T23", 7.0),
        ("n", "2024-03-01T06", 8.0),
        ("n", "2024-03-01T08", 35.0),
    ]
