"""The watchlist: `apy-runway watch add|remove|list` keeps it in the bucket,
the hourly scorer posts a watched pool's class flip or p_keep move to the
webhook (a real HTTP server on 127.0.0.1) once per pool and hour, and a retry
of the same hour posts nothing. The Lambda runs for real: the scheduled
handler against moto's S3 server with the tiny model; the rules are also
tested on their own (inference/watchlist.py is pure)."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from fixtures.tiny_model import feature_file
from fixtures.webhook import Hook

from apy_runway import cli
from apy_runway.operations import watch
from apy_runway.operations.publish import upload_features_binary
from inference import contracts, handler, service, watchlist

POOLS = 50


def scheduled(hour: int) -> dict:
    return handler.scheduled({"time": f"2025-06-06T{hour:02d}:00:00Z"})


def hour_text(hour: int) -> str:
    return f"2025-06-06T{hour:02d}:00:00Z"


# --------------------------------------------------------------------------- the rules


def judge(calls: dict[int, float | None], watched=("a",), announced=None, state=None):
    """Run the hours of `calls` ({hour: p_keep of pool a, None = not scored})
    through evaluate in order; the alerts of each hour and the final state."""
    state = state or {}
    raised = {}
    for hour, p in sorted(calls.items()):
        records = {} if p is None else {"a": {"pool_id": "a", "p_keep": p}}
        alerts, state = watchlist.evaluate(state, list(watched), records, hour_text(hour))
        raised[hour] = [(a.kind, a.before[0][11:13]) for a in alerts]
    return raised, state


def test_a_flip_is_announced_against_the_previous_call_once():
    raised, state = judge({1: 0.62, 2: 0.58, 3: 0.48, 4: 0.47, 5: 0.52})
    assert raised == {1: [], 2: [], 3: [("flip", "02")], 4: [], 5: [("flip", "04")]}
    assert state["a"]["announced"] == hour_text(5)
    assert [c[0][11:13] for c in state["a"]["calls"]] == ["01", "02", "03", "04", "05"]


def test_a_move_of_at_least_the_limit_within_the_window_is_announced_once():
    move = contracts.WATCH_P_KEEP_MOVE
    # below the limit: nothing; exactly the limit against hour 1's call: a move
    raised, _ = judge({1: 0.95, 2: 0.95 - move + 0.01, 3: 0.95 - move})
    assert raised == {1: [], 2: [], 3: [("move", "01")]}
    # after an announcement, the calls before it do not count again
    raised, _ = judge({1: 0.95, 3: 0.95 - move, 4: 0.95 - move - 0.05})
    assert raised[4] == []
    # a call older than the window does not count
    window = contracts.WATCH_WINDOW_HOURS
    raised, state = judge({0: 0.95, 2: 0.90})
    alerts, _ = watchlist.evaluate(
        state,
        ["a"],
        {"a": {"pool_id": "a", "p_keep": 0.95 - move}},
        "2025-06-07T01:00:00Z",  # 25 hours after hour 0, 23 after hour 2
    )
    assert window == 24 and [(a.kind, a.before) for a in alerts] == []
    alerts, _ = watchlist.evaluate(
        state, ["a"], {"a": {"pool_id": "a", "p_keep": 0.90 - move}}, "2025-06-07T01:00:00Z"
    )
    assert [(a.kind, a.before) for a in alerts] == [("move", (hour_text(2), 0.90))]


def test_a_retried_hour_and_pools_not_scored_or_no_longer_watched_raise_nothing():
    raised, state = judge({1: 0.8, 2: 0.3})
    assert raised[2] == [("flip", "01")]
    again, state = watchlist.evaluate(
        state, ["a"], {"a": {"pool_id": "a", "p_keep": 0.3}}, hour_text(2)
    )
    assert again == [] and len(state["a"]["calls"]) == 2  # the hour's call replaced, not added
    raised, state = judge({3: None, 4: 0.9}, state=state)  # not scored at 3: no call
    assert raised == {3: [], 4: [("flip", "02")]}
    _, state = watchlist.evaluate(state, ["b"], {}, hour_text(5))
    assert state == {"b": {"calls": [], "announced": None}}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "not a watchlist"),
        ({"format": "other", "pools": []}, "not a watchlist"),
        ({"format": contracts.WATCHLIST_FORMAT, "pools": "a"}, "'pools' is not a list"),
        ({"format": contracts.WATCHLIST_FORMAT, "pools": ["a", 3]}, r"pools\[1\]: 3 is not"),
        ({"format": contracts.WATCHLIST_FORMAT, "pools": [" a"]}, "spaces at its ends"),
        ({"format": contracts.WATCHLIST_FORMAT, "pools": ["a\nb"]}, "control characters"),
        (
            {
                "format": contracts.WATCHLIST_FORMAT,
                "pools": [f"p{i}" for i in range(contracts.WATCHLIST_MAX_POOLS + 1)],
            },
            "more than",
        ),
    ],
)
def test_a_broken_watchlist_is_named(document, message):
    with pytest.raises(watchlist.WatchlistError, match=message):
        watchlist.read_watchlist(document, "s3://b/watch/watchlist.json")


# --------------------------------------------------------------------------- the CLI


def run_watch(project_home, bucket, moto_endpoint, *argv) -> int:
    return cli.main(
        [
            "--home",
            str(project_home.home),
            "watch",
            *argv,
            "--bucket",
            bucket,
            "--endpoint-url",
            moto_endpoint,
        ]
    )


def test_watch_add_remove_list_keep_the_list_in_the_bucket(
    project_home, lambda_env, moto_endpoint, s3_client, capsys
):
    bucket = lambda_env
    assert run_watch(project_home, bucket, moto_endpoint, "list") == 0
    assert "no pools watched" in capsys.readouterr().out
    assert run_watch(project_home, bucket, moto_endpoint, "add", "p1", "p2", "p1") == 0
    assert "added 2 of 3 pools; 2 watched" in capsys.readouterr().out
    assert run_watch(project_home, bucket, moto_endpoint, "add", "p3", "p2") == 0
    assert run_watch(project_home, bucket, moto_endpoint, "remove", "p1", "p9") == 0
    assert "removed 1 of 2 pools; 2 watched" in capsys.readouterr().out.splitlines()[-3]
    stored = json.loads(
        s3_client.get_object(Bucket=bucket, Key=contracts.WATCHLIST_KEY)["Body"].read()
    )
    assert stored["format"] == contracts.WATCHLIST_FORMAT and stored["pools"] == ["p2", "p3"]
    assert run_watch(project_home, bucket, moto_endpoint, "list") == 0
    assert capsys.readouterr().out.split() == ["p2", "p3"]
    assert run_watch(project_home, bucket, moto_endpoint, "add", "bad\tid") == 2
    assert "control characters" in capsys.readouterr().err
    # a write against a list someone changed meanwhile is refused by S3 (If-Match)
    etag, _ = watch.read(s3_client, bucket)
    watch.change(s3_client, bucket, add=["p4"])
    with pytest.raises(ClientError, match=r"PreconditionFailed|412"):
        s3_client.put_object(Bucket=bucket, Key=contracts.WATCHLIST_KEY, Body=b"{}", IfMatch=etag)
    s3_client.put_object(Bucket=bucket, Key=contracts.WATCHLIST_KEY, Body=b"not json")
    assert run_watch(project_home, bucket, moto_endpoint, "list") == 2
    assert "is not a watchlist" in capsys.readouterr().err


# --------------------------------------------------------------------------- the hourly run


def test_a_watched_pools_flip_is_posted_once_and_a_retry_of_the_hour_posts_nothing(
    lambda_env, moto_endpoint, s3_client, monkeypatch
):
    bucket = lambda_env
    first = scheduled(0)  # before any watchlist: nothing to judge
    assert first["watch"] == {"watched": 0, "alerts": [], "posted": 0}
    document = json.loads(
        s3_client.get_object(Bucket=bucket, Key="predictions/latest.json")["Body"].read()
    )
    scored = [r for r in document["predictions"] if r["p_keep"] is not None]
    keep = [r for r in scored if r["predicted_class"] == contracts.CLASS_KEEP]
    down = [r for r in scored if r["predicted_class"] == contracts.CLASS_DOWN]
    watched, other = keep[0], down[0]
    steady = next(r for r in keep[1:] if r["pool_id"] != other["pool_id"])
    index = {r["pool_id"]: i for i, r in enumerate(document["predictions"])}
    watch.change(s3_client, bucket, add=[watched["pool_id"], steady["pool_id"]])

    with Hook() as hook:
        monkeypatch.setenv("APY_RUNWAY_WEBHOOK_URL", hook.url)
        baseline = scheduled(1)
        assert baseline["watch"] == {"watched": 2, "alerts": [], "posted": 0}

        def flip(columns, contract):  # the watched pool takes a Down pool's features
            for name, values in columns.items():
                if name != "pool_id":
                    values[index[watched["pool_id"]]] = values[index[other["pool_id"]]]

        body = feature_file(POOLS, edit=flip)
        upload_features_binary(s3_client, bucket, contracts.FEATURES_KEY, body)
        flipped = scheduled(2)
        assert flipped["watch"]["alerts"] == [
            {"pool_id": watched["pool_id"], "kind": "flip", "posted": True}
        ]
        assert len(hook.messages) == 1
        text = hook.messages[0]["content"]
        assert hook.messages[0]["text"] == text
        assert f"flipped {contracts.CLASS_KEEP} → {contracts.CLASS_DOWN}" in text
        assert watched["pool_id"] in text and hour_text(2) in text
        assert "why: " in text and ("↑" in text or "↓" in text)
        for reason in other["reasons"]:  # the watched pool's reasons are now the other's
            assert reason["text"] in text

        retried = scheduled(2)  # Lambda's retry of the same hour
        assert retried["latest_written"] and retried["watch"]["alerts"] == []
        later = scheduled(3)  # still Down, no move since the announcement
        assert later["watch"]["alerts"] == []
        late = scheduled(1)  # an older hour retried late: latest.json keeps hour 3
        assert not late["latest_written"] and "skipped" in late["watch"]
        assert len(hook.messages) == 1

    state = json.loads(
        s3_client.get_object(Bucket=bucket, Key=contracts.WATCH_STATE_KEY)["Body"].read()
    )
    assert state["pools"][watched["pool_id"]]["announced"] == hour_text(2)
    assert [c[0] for c in state["pools"][steady["pool_id"]]["calls"]] == [
        hour_text(1),
        hour_text(2),
        hour_text(3),
    ]


def test_a_broken_watchlist_never_fails_the_hourly_run(lambda_env, s3_client):
    s3_client.put_object(Bucket=lambda_env, Key=contracts.WATCHLIST_KEY, Body=b"[1, 2]")
    summary = scheduled(4)
    assert summary["latest_written"] and "not a watchlist" in summary["watch"]["error"]


def test_an_hour_of_many_alerts_posts_ten_then_one_naming_the_rest_and_stops_on_failure():
    records = {f"p{i:02d}": {"pool_id": f"p{i:02d}", "symbol": f"S{i}"} for i in range(13)}
    raised = [
        watchlist.Alert(p, "flip", (hour_text(1), 0.8), 0.3, hour_text(2)) for p in sorted(records)
    ]
    with Hook() as hook:
        entries = service._post_watch_alerts(hook.url, raised, records, "m")
    assert [e["posted"] for e in entries] == [True] * 13
    assert len(hook.messages) == contracts.WATCH_MAX_POSTS + 1
    last = hook.messages[-1]["content"]
    assert last.startswith("apy-runway watch: 3 more watched pools changed")
    assert all(f"p{i:02d} S{i}: flipped" in last for i in (10, 11, 12))
    with Hook(status=500) as down:
        entries = service._post_watch_alerts(down.url, raised[:3], records, "m")
    assert len(down.messages) == 1  # the others are not tried
    assert entries[0]["error"] == "HTTP 500"
    assert entries[2]["error"].startswith("not tried after a failed post")
    assert not any(e["posted"] for e in entries)


def test_a_broken_watch_state_is_started_afresh():
    assert service._readable_state({"format": "x"}, "s3://b/watch/state.json") == {}
    good = watchlist.state_document({"a": {"calls": [[hour_text(1), 0.5]], "announced": None}}, "h")
    assert service._readable_state(good, "w") == {
        "a": {"calls": [[hour_text(1), 0.5]], "announced": None}
    }
