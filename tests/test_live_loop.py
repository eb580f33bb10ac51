"""The live hourly loop end to end, on a small generated home (30 pools x 60
days, hourly): `run-all`, then two hours' `collect` against a DefiLlama-format
server on 127.0.0.1 (the two hours after the generated data, given by its
`Date` headers; the generated pools plus two new ones with /chart history),
then `refresh --board` (ingest, incremental build, publish to a local S3,
the runway board drawn again) and the scoring Lambda on the features key's
S3 ObjectCreated event. The hourly predictions carry a known pool's APY of
the newest hour.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from datetime import UTC, timedelta

import boto3
import duckdb
import pytest

from apy_runway.cli import main as cli_main
from apy_runway.foundation.http import Client
from apy_runway.foundation.paths import project_paths
from apy_runway.landing.collect import collect
from apy_runway.landing.standin import NEVER_READ, PoolsServer, pools_item, pools_reply
from inference import contracts, handler, health

pytestmark = pytest.mark.slow

BUCKET = "apy-runway-live-loop"
NEW_POOLS = ("11111111-aaaa-4aaa-8aaa-000000000001", "22222222-bbbb-4bbb-8bbb-000000000002")
KNOWN_POOL_APY = 12.3456  # the known pool's APY in the second collected hour


def chart(days: list[str], apy: float) -> dict:
    return {
        "status": "success",
        "data": [
            {
                "timestamp": f"{day}T23:01:13.171Z",
                "tvlUsd": 2_000_000 + i,
                "apy": apy + i / 10,
                "apyBase": apy,
                "apyReward": i / 10,
                "il7d": None,
                "apyBase7d": None,
            }
            for i, day in enumerate(days)
        ],
    }


def s3_event(key: str, event_time: str) -> dict:
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": event_time,
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": BUCKET}, "object": {"key": key, "size": 1}},
            }
        ]
    }


@pytest.fixture(scope="module")
def loop(tmp_path_factory, moto_endpoint):
    home = tmp_path_factory.mktemp("live_loop")
    paths = project_paths(home)
    cli = ["--home", str(home)]
    # a 7-day horizon: 60 days leave enough labelled days to train on
    assert (
        cli_main([*cli, "run-all", "--pools", "30", "--days", "60", "--vars", "{horizon_days: 7}"])
        == 0
    )
    publish = [
        *cli,
        "publish",
        "--bucket",
        BUCKET,
        "--endpoint-url",
        moto_endpoint,
        "--run",
        "latest",
        "--create-bucket",
    ]
    # run-all's model is trained on generated data: publish refuses it unless told
    metadata = json.loads((paths.runs / "latest" / "metadata.json").read_text())
    assert metadata["data_provenance"]["kind"] == "generated"
    assert metadata["data_provenance"]["seed"] == 42
    assert cli_main([*publish, "--allow-weak"]) == 2
    assert cli_main([*publish, "--allow-synthetic", "--allow-weak"]) == 0
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        last_rows = con.execute(f"""
            select pool, chain, project, symbol, tvlUsd, apy, stablecoin, ilRisk, exposure,
                "timestamp"
            from '{paths.generated_snapshots}'
            qualify row_number() over (partition by pool order by "timestamp" desc) = 1
            order by pool
        """).fetchall()
    last_hour = max(row[-1] for row in last_rows).replace(minute=0, second=0, microsecond=0)
    hours = [last_hour + timedelta(hours=1), last_hour + timedelta(hours=2)]
    known = last_rows[0][0]

    def snapshot(hour_index: int) -> list[dict]:
        items = [
            pools_item(
                pool,
                chain=chain,
                project=project,
                symbol=symbol,
                tvlUsd=tvl,
                apy=KNOWN_POOL_APY if (pool == known and hour_index == 1) else apy * 1.01,
                stablecoin=stablecoin,
                ilRisk=il_risk,
                exposure=exposure,
            )
            for (pool, chain, project, symbol, tvl, apy, stablecoin, il_risk, exposure, _) in (
                last_rows
            )
        ]
        items += [
            pools_item(pool, apy=4.0 + i, project="new-project") for i, pool in enumerate(NEW_POOLS)
        ]
        return items

    history_days = [(hours[0].date() - timedelta(days=d)).isoformat() for d in range(12, 0, -1)]
    charts = {pool: chart(history_days, 4.0 + i) for i, pool in enumerate(NEW_POOLS)}
    with PoolsServer(charts) as server:
        server.queue(
            pools_reply(snapshot(0), hours[0] + timedelta(minutes=4, seconds=11)),
            pools_reply(snapshot(1), hours[1] + timedelta(minutes=2)),
        )
        # the clock of each collect is the hour it collects (a Date header is
        # believed within 2 h of the clock)
        for hour in hours:
            collect(paths, base_url=server.url, client=Client(delay=0, backoff=0), now=hour)
        requests = dict(server.requests)
    # run-all drew the board; the refresh draws it again (--board)
    shutil.rmtree(paths.data / "board")
    refresh_code = cli_main(
        [*cli, "refresh", "--bucket", BUCKET, "--endpoint-url", moto_endpoint, "--board"]
    )
    with pytest.MonkeyPatch.context() as env:
        for name, value in {
            "AWS_ENDPOINT_URL": moto_endpoint,
            "APY_RUNWAY_BUCKET": BUCKET,
            "APY_RUNWAY_FEATURES_KEY": contracts.FEATURES_KEY,
        }.items():
            env.setenv(name, value)
        summary = handler.scheduled(
            s3_event(contracts.FEATURES_KEY, f"{hours[1]:%Y-%m-%dT%H}:06:41.123Z")
        )
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    latest = json.loads(
        s3.get_object(Bucket=BUCKET, Key=contracts.latest_predictions_key("predictions/"))[
            "Body"
        ].read()
    )
    return {
        "paths": paths,
        "hours": hours,
        "known": known,
        "requests": requests,
        "refresh_code": refresh_code,
        "summary": summary,
        "latest": latest,
        "s3": s3,
    }


def test_latest_predictions_carry_the_new_hours_apy_of_a_known_pool(loop):
    latest = loop["latest"]
    assert loop["refresh_code"] == 0
    assert latest["schema_version"] == contracts.PREDICTIONS_SCHEMA_VERSION
    assert latest["event_time"] == f"{loop['hours'][1]:%Y-%m-%dT%H}:00:00Z"
    [record] = [p for p in latest["predictions"] if p["pool_id"] == loop["known"]]
    assert record["apy"] == pytest.approx(KNOWN_POOL_APY)
    assert record["feature_date"] == loop["hours"][1].date().isoformat()
    assert record["status"] == "scored" and 0 <= record["p_keep"] <= 1
    # the features are fresh; the drift half of the health (tests/test_monitoring.py)
    # ran too, on a 30-pool home whose scored day lies after the reference window
    assert health.FEATURES_STALE not in latest["health"]["reasons"]
    assert set(latest["health"]) >= {"status", "drifted_features", "drifted_share"}
    # the hour's own key, from the S3 event's time floored to the hour
    key = contracts.hourly_predictions_key("predictions/", loop["hours"][1])
    assert loop["summary"]["hourly_key"] == key
    assert loop["s3"].head_object(Bucket=BUCKET, Key=key)


def test_new_pools_were_back_filled_once_and_reach_the_predictions(loop):
    requests = loop["requests"]
    assert requests["/pools"] == 2
    assert all(requests[f"/chart/{pool}"] == 1 for pool in NEW_POOLS)
    pools = {p["pool_id"]: p for p in loop["latest"]["predictions"]}
    for pool in NEW_POOLS:
        # 12 back-filled days + the two collected hours' day
        assert pools[pool]["feature_date"] == loop["hours"][1].date().isoformat()
    assert len(pools) == 32


def test_the_raw_store_holds_the_two_hours_and_never_the_model_outputs(loop):
    paths = loop["paths"]
    landed = sorted(p.name for p in paths.landed_pools.glob("*.json.gz"))
    assert landed == [f"{h:%Y-%m-%dT%H}Z.json.gz" for h in loop["hours"]]
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        hours = con.execute(f"""
            select date_trunc('hour', "timestamp"), count(*), max(apy)
            from '{paths.raw_store}/*/*.parquet'
            where "timestamp" >= timestamptz '{loop["hours"][0].isoformat()}'
            group by all order by 1
        """).fetchall()
        trap = con.execute(
            f"select count(*) from '{paths.raw_store}/*/*.parquet' where apy = 777 or tvlUsd = 777"
        ).fetchone()[0]
    assert [(h.astimezone(UTC), n) for h, n, _ in hours] == [
        (loop["hours"][0], 32),
        (loop["hours"][1], 32),
    ]
    assert trap == 0 and 777.0 in NEVER_READ.values()
    manifest = [json.loads(line) for line in paths.manifest.read_text().splitlines()]
    assert sum(e["rows_in"] for e in manifest) == sum(
        e["rows_staged"] + e["rows_quarantined"] for e in manifest
    )
    kinds = sorted(e["kind"] for e in manifest)
    assert kinds == ["chart", "chart", "parquet", "pools", "pools"]


def test_the_refresh_was_incremental_and_compacted_the_collected_day(loop):
    paths = loop["paths"]
    state = json.loads(paths.build_state.read_text())
    assert json.loads(state["serving"]["vars"]) == {"horizon_days": 7}
    day = paths.raw_store / f"snapshot_date={loop['hours'][0].date().isoformat()}"
    # the two hourly files of the (completed) collected day became one
    assert [p.name for p in day.iterdir()] == [f"c{state['serving']['landing_order']:08d}.parquet"]
    log = (paths.data / "dbt_logs" / "dbt.log").read_text()
    assert "refresh_from_date" in log


def test_a_second_refresh_with_nothing_new_builds_nothing_and_publishes_the_same(
    loop, moto_endpoint, capsys
):
    paths = loop["paths"]
    state = paths.build_state.read_text()
    exported = paths.latest_features.read_bytes()
    code = cli_main(
        ["--home", str(paths.home), "refresh", "--bucket", BUCKET, "--endpoint-url", moto_endpoint]
    )
    summary = capsys.readouterr().out
    assert code == 0
    assert "ingest nothing new" in summary and "build up to date" in summary
    assert "export 32 pools" in summary and f"s3://{BUCKET}/" in summary
    assert paths.build_state.read_text() == state
    assert paths.latest_features.read_bytes() == exported


def test_refresh_refuses_a_shrunken_build_and_publishes_nothing(loop, moto_endpoint, capsys):
    from apy_runway.cli.hourly import state_path
    from apy_runway.operations.publish import published_row_count

    paths = loop["paths"]
    accepted = state_path(paths).read_text()
    state_path(paths).write_text(json.dumps({"pools": 1000}))
    try:
        code = cli_main(
            [
                "--home",
                str(paths.home),
                "refresh",
                "--bucket",
                BUCKET,
                "--endpoint-url",
                moto_endpoint,
            ]
        )
        error = capsys.readouterr().err
        assert code == 2
        assert (
            "refresh failed at step export" in error and "32 pools, below 50% of the 1,000" in error
        )
        assert "nothing was published" in error
        assert published_row_count(loop["s3"], BUCKET, contracts.FEATURES_KEY) == 32
    finally:
        state_path(paths).write_text(accepted)


def test_the_backtest_in_the_ledger_scores_what_the_monthly_backtest_scored(loop):
    """run-all replays the monthly backtest into the ledger: prediction_outcomes
    has its rows, and their served AUC per month is the backtest's to 1e-9."""
    paths = loop["paths"]
    metadata = json.loads((paths.runs / "latest" / "metadata.json").read_text())
    months = {m["month"]: m for m in metadata["backtest"]["months"]}
    assert months
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        by_month = con.execute(
            "select strftime(prediction_month, '%Y-%m'), served_rows, matured_rows, roc_auc "
            "from prediction_outcomes_by_month where source = 'backtest'"
        ).fetchall()
        mismatched = con.execute(
            "select count(*) from prediction_outcomes "
            "where binned_confidence <> served_binned_confidence"
        ).fetchone()[0]
    assert {m for m, *_ in by_month} == set(months)
    for month, served, matured, auc in by_month:
        assert served == matured == months[month]["rows"]
        assert abs(auc - months[month]["roc_auc"]) <= 1e-9
    assert mismatched == 0
    # the board `refresh --board` drew: its track record reads the ledger's mart
    track = (paths.data / "board" / "data" / "track.js").read_text()
    assert '"backtest":{' in track


def test_show_prints_a_pools_call_reasons_and_its_ledger_record(loop, capsys):
    """`show` on the run-all home: the local hourly document's call and the
    record of the ledger mart prediction_outcomes (the replayed backtest)."""
    paths = loop["paths"]
    document = json.loads((paths.exports / "predictions_latest.json").read_text())
    record = next(r for r in document["predictions"] if r["p_keep"] is not None and r["reasons"])
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        rows, matured = con.execute(
            "select count(*), count(*) filter (where is_matured) from prediction_outcomes "
            "where pool_id = ? and source = 'backtest'",
            [record["pool_id"]],
        ).fetchone()
    capsys.readouterr()
    assert cli_main(["--home", str(paths.home), "show", record["pool_id"][:18]]) == 0
    out = capsys.readouterr().out
    assert f"pool {record['pool_id']}" in out
    assert f"p_keep {record['p_keep']:.3f}" in out
    for reason in record["reasons"]:
        assert reason["text"] in out
    assert rows > 0 and f"record (backtest): {rows} predictions, {matured} matured" in out


def test_rehearse_runs_the_loop_on_a_copy_with_the_simulated_clock(loop, tmp_path, capsys):
    """`apy-runway rehearse --hours 2` on the live loop's home: two simulated
    hours after its newest collected hour, each one refreshed (collect ...
    publish) and scored; collect's landed hours and the scorer's ledger hours
    are the simulated ones; a new pool is back-filled; the home itself is not
    touched; the stand-in and the local S3 are stopped at the end."""
    paths = loop["paths"]
    manifest = paths.manifest.read_bytes()
    threads = threading.active_count()
    into = tmp_path / "rehearsal"
    code = cli_main(
        [
            "--home",
            str(paths.home),
            "rehearse",
            "--hours",
            "2",
            "--into",
            str(into),
            "--new-pools",
            "1",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    hours = [loop["hours"][1] + timedelta(hours=i) for i in (1, 2)]
    for hour in hours:
        [line] = [line for line in out.splitlines() if line.startswith(f"{hour:%Y-%m-%dT%H}Z")]
        assert "refresh ok" in line and "health ok" in line, line
    assert "ledger: 2 of 2 rehearsed hour(s) served" in out
    assert "health of the last hour: ok" in out and "rehearsal green: 2 hour(s)" in out
    scratch = project_paths(into)
    assert sorted(p.name for p in scratch.landed_pools.glob("*.json.gz")) == [
        f"{h:%Y-%m-%dT%H}Z.json.gz" for h in hours
    ]
    ledger = {p.name for p in (scratch.data / "ledger").rglob("*.json.gz")}
    assert {f"{h:%Y-%m-%dT%H}Z.json.gz" for h in hours} <= ledger
    # the stand-in's new pool arrived in the second hour and was back-filled
    [chart] = [p.stem for p in (scratch.landing / "defillama" / "chart").glob("*.json")]
    assert chart.startswith("5ea1c0de-") and "back-filled 1 pool(s)" in out
    assert "prediction_outcomes live: " in out
    # as deployed (refresh --mature-labels): the labels were rebuilt once in the day
    state = json.loads((scratch.exports / "labels_state.json").read_text())
    assert state["day"] in {f"{h:%Y-%m-%d}" for h in hours}
    assert paths.manifest.read_bytes() == manifest
    deadline = time.monotonic() + 10
    while threading.active_count() > threads and time.monotonic() < deadline:
        time.sleep(0.1)
    assert threading.active_count() <= threads
