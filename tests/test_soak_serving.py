"""The serving half of issue 20's soak test (item 11): 72 simulated hours of the
real hourly loop on a tiny home (20 pools, 12 days of hourly history): the
refresh (collect from the DefiLlama stand-in, ingest, compact, incremental dbt
build on one warm DbtSession, export, publish to moto's S3 on 127.0.0.1), then
the Lambda's scheduled handler, then the ledger's sync. A fault every few
hours (FAULTS), three of them real processes beside the loop (a refresh killed
by SIGKILL while it holds the lock, an `ingest`, a training `build`). At the
end: the raw store equals a reference home fed only the good hours; every
good hour published its features and every hour its document; each fault is
named in its hour's refresh line and its health (refresh_missed, input_warnings,
refused_input), every other hour's health is ok, the last hour's too; the
ledger holds every served hour once. The scheduled handler runs at minute 50
(contracts.SAFETY_NET_SCHEDULE), after the hour's refresh.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import boto3
import duckdb
import pytest
from fixtures.soak import manifest_staged, stored
from fixtures.tiny_model import write_run

from apy_runway.cli.hourly import RefreshFailed, refresh
from apy_runway.foundation import lock
from apy_runway.foundation.http import Client
from apy_runway.foundation.paths import project_paths
from apy_runway.foundation.s3 import upload_run
from apy_runway.landing.collect import collect
from apy_runway.landing.ingest import ingest
from apy_runway.landing.standin import PoolsServer, Reply, pools_item, pools_reply
from apy_runway.operations.ledger import build_ledger_models, default_folder, sync_bucket
from apy_runway.warehouse.build import build
from apy_runway.warehouse.session import DbtSession
from inference import contracts, handler, health

pytestmark = pytest.mark.slow

HOURS = 72
HISTORY_HOURS = 24 * 12
FIRST = datetime(2026, 10, 13, tzinfo=UTC)  # the first soaked hour; history before it
POOLS = [f"soak-{i:02d}" for i in range(20)]
VANISHING = "soak-03"  # gone for six hours, then back
GONE = "soak-07"  # gone from hour 60 to the end
BUCKET = "apy-runway-soak"
HORIZON_DAYS = 2
CLIENT = Client(delay=0, retries=1, backoff=0, timeout=1, deadline=1.5)
FAULTS = {
    4: "far_past_date",
    9: "unparseable",
    14: "shrink_40",
    15: "shrink_walked_down",  # a second 40% step: below half of the 24 h largest
    19: "slow_headers",
    24: "sigkill_refresh",
    29: "concurrent_ingest",
    34: "concurrent_training_build",
    39: "refused_file",
    **dict.fromkeys(range(40, 46), "vanished"),
    52: "duplicated_ledger_hour",
    **dict.fromkeys(range(60, HOURS), "gone"),
}
LOST = {"unparseable", "shrink_walked_down", "slow_headers"}  # no snapshot lands
# no refresh publishes: the hour is scored on the previous hour's features
UNPUBLISHED = LOST | {"sigkill_refresh"}
# each fault hour's health reasons (every other hour: ok)
FAULT_REASONS = {
    4: [health.INPUT_WARNINGS],  # the re-dated reply: the clock's hour was used
    9: [health.REFRESH_MISSED],
    14: [health.INPUT_WARNINGS],  # the 40% shrink, accepted
    # both: the refused second shrink scores hour 14's features, which carry its note
    15: [health.REFRESH_MISSED, health.INPUT_WARNINGS],
    19: [health.REFRESH_MISSED],
    24: [health.REFRESH_MISSED],  # the SIGKILLed refresh was the hour's only one
    39: [health.REFUSED_INPUT],
}
REFUSED_NAME = "2026-10-13T09Z.json.gz"  # hour 9's unparseable reply, landed by hand


def apy_of(i: int, h: int) -> float:
    """Even pools grow, odd pools fall by a third a week: labels of both classes."""
    return (3.0 + i) * ((1 + 0.001 * h) if i % 2 == 0 else (0.9975**h))


def tvl_of(i: int, h: int) -> float:
    return 1e6 + 1e3 * i + h


def history_csv(path):
    lines = ["timestamp,pool,chain,project,symbol,apy,tvlUsd"]
    for h in range(HISTORY_HOURS):
        at = FIRST - timedelta(hours=HISTORY_HOURS - h)
        lines += [
            f"{at:%Y-%m-%dT%H:%M:%SZ},{pool},Ethereum,aave-v3,USDC,{apy_of(i, h)},{tvl_of(i, h)}"
            for i, pool in enumerate(POOLS)
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def items_of(index: int, fault: str | None) -> list[dict]:
    pools = list(enumerate(POOLS))
    if fault == "shrink_40":
        pools = pools[:12]
    elif fault == "shrink_walked_down":
        pools = pools[:7]
    elif fault == "vanished":
        pools = [(i, p) for i, p in pools if p != VANISHING]
    elif fault == "gone":
        pools = [(i, p) for i, p in pools if p != GONE]
    h = HISTORY_HOURS + index
    return [
        pools_item(pool, project="aave-v3", apy=apy_of(i, h), tvlUsd=tvl_of(i, h))
        for i, pool in pools
    ]


def reply_of(index: int) -> Reply:
    fault = FAULTS.get(index)
    hour = FIRST + timedelta(hours=index)
    if fault == "far_past_date":
        return pools_reply(items_of(index, fault), hour - timedelta(hours=72))
    if fault == "unparseable":
        return Reply(200, b'{"status": "success", "data": [', hour)
    return pools_reply(items_of(index, fault), hour + timedelta(minutes=2))


def cli_process(home, *argv: str, log_file=None) -> subprocess.Popen:
    """`apy-runway --home HOME ARGV` in its own process group (as a timer's unit)."""
    return subprocess.Popen(
        [sys.executable, "-m", "apy_runway.cli", "--home", str(home), *argv],
        stdout=subprocess.DEVNULL,
        stderr=log_file or subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for(condition, what: str, seconds: float = 60.0) -> None:
    ends = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < ends, f"timed out waiting for {what}"
        time.sleep(0.05)


def scheduled_event(hour: datetime) -> dict:
    """The safety net's event (contracts.SAFETY_NET_SCHEDULE: minute 50, after the refresh)."""
    return {
        "version": "0",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "time": f"{hour:%Y-%m-%dT%H}:50:00Z",
        "resources": ["arn:aws:events:us-east-1:000000000000:rule/apy-runway-soak-hourly"],
        "detail": {},
    }


def s3_event(hour: datetime) -> dict:
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "eventTime": f"{hour:%Y-%m-%dT%H}:05:31.000Z",
                "s3": {"bucket": {"name": BUCKET}, "object": {"key": contracts.FEATURES_KEY}},
            }
        ]
    }


class Soak:
    """The faulted home's loop: the servers, the S3 client, the warm session."""

    def __init__(self, paths, server, s3, endpoint, session):
        self.paths, self.server, self.s3, self.endpoint = paths, server, s3, endpoint
        self.session = session  # the hourly builds parse once (`refresh --every 1h`)
        self.records: dict[int, dict] = {}

    def refresh(self, index: int, collect_from: str | None, wait: float = 0.0) -> str:
        hour = FIRST + timedelta(hours=index)
        try:
            summary = refresh(
                self.paths,
                collect_from=collect_from,
                client=CLIENT,
                backfill_max=0,
                bucket=BUCKET,
                endpoint_url=self.endpoint,
                now=hour + timedelta(minutes=5),
                s3=self.s3,
                session=self.session,
                wait=wait,
            )
        except RefreshFailed as error:
            return f"FAILED {error}"
        return summary.line()

    def features_etag(self) -> str | None:
        try:
            return self.s3.head_object(Bucket=BUCKET, Key=contracts.FEATURES_KEY)["ETag"]
        except self.s3.exceptions.ClientError:
            return None

    def hour(self, index: int, refreshed: str, before: str | None, events: list[dict]) -> dict:
        """Score the hour (one Lambda run per event), sync the ledger; the record."""
        scored = [handler.scheduled(event) for event in events]
        if index % 24 == 23:  # the daily sync (refresh --mature-labels and the timer)
            sync_bucket(self.s3, BUCKET, contracts.LEDGER_PREFIX, default_folder(self.paths))
        record = {
            "refresh": refreshed,
            "published": self.features_etag() != before,
            "scored": scored,
            "health": scored[-1]["health"],
            "reasons": scored[-1]["health_reasons"],
        }
        self.records[index] = record
        return record


@pytest.fixture(scope="module")
def soaked(tmp_path_factory, moto_endpoint):
    root = tmp_path_factory.mktemp("soak_serving")
    faulted, reference = project_paths(root / "faulted"), project_paths(root / "ref")
    faulted.ensure(), reference.ensure()
    history = history_csv(root / "history.csv")
    side = root / "side.csv"  # a late file an operator ingests beside the loop
    side.write_text(
        "timestamp,pool,chain,project,symbol,apy,tvlUsd\n"
        + "".join(
            f"2026-10-08T{h:02d}:30:00Z,soak-side,Base,euler-v2,USDC,6.5,{7e5 + h}\n"
            for h in range(6)
        )
    )
    for home in (faulted, reference):
        ingest([history], home)
    # the home's first full build, with a 2-day label horizon (12 days of history), in
    # the session the hourly builds then reuse (one parse, as `refresh --every 1h`)
    session = DbtSession()
    build(
        faulted,
        dbt_vars={"horizon_days": HORIZON_DAYS},
        command="run",
        quiet=True,
        session=session,
    )
    run_dir = faulted.runs / "20261012T000000Z"
    write_run(run_dir)
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    upload_run(s3, BUCKET, "models/latest/", run_dir)
    lock.set_default_wait(120)  # in-process writers wait, as the timers' --wait does
    with pytest.MonkeyPatch.context() as env, PoolsServer() as server, PoolsServer() as clean:
        for name, value in {
            "AWS_ENDPOINT_URL": moto_endpoint,
            "APY_RUNWAY_BUCKET": BUCKET,
            "APY_RUNWAY_MODEL_PREFIX": "models/latest/",
            "APY_RUNWAY_FEATURES_KEY": contracts.FEATURES_KEY,
            "APY_RUNWAY_PREDICTIONS_PREFIX": "predictions/",
        }.items():
            env.setenv(name, value)
        env.delenv(contracts.ENVIRONMENT["signing_key"], raising=False)
        soak = Soak(faulted, server, s3, moto_endpoint, session)
        children: dict[str, dict] = {}
        try:
            for index in range(HOURS):
                run_hour(soak, index, root, side, children)
                if FAULTS.get(index) not in LOST:
                    feed_reference(reference, clean, index)
        finally:
            lock.set_default_wait(0)
        ingest([], reference)  # the reference lands its good hours once
        ingest([side], reference)  # and the late file
        # the duplicated ledger hour is synced again at the end, beside the others
        final_sync = sync_bucket(s3, BUCKET, contracts.LEDGER_PREFIX, default_folder(faulted))
        build_ledger_models(faulted)
    return {
        "faulted": faulted,
        "reference": reference,
        "records": soak.records,
        "children": children,
        "s3": s3,
        "final_sync": final_sync,
        "parses": session.parses,
    }


def feed_reference(reference, clean, index: int) -> None:
    """The never-faulted home: the good hour's snapshot, collected (landed at the end)."""
    clean.queue(
        pools_reply(items_of(index, FAULTS.get(index)), FIRST + timedelta(hours=index, minutes=2))
    )
    collect(
        reference,
        base_url=clean.url,
        client=CLIENT,
        backfill_max=0,
        now=FIRST + timedelta(hours=index, minutes=5),
    )


def run_hour(soak: Soak, index: int, root, side, children: dict) -> None:
    fault = FAULTS.get(index)
    hour = FIRST + timedelta(hours=index)
    paths = soak.paths
    before = soak.features_etag()
    soak.server.queue(reply_of(index))
    if fault == "unparseable":  # collect's retry is served the same broken reply
        soak.server.queue(reply_of(index))
    events = [scheduled_event(hour)]
    if fault == "slow_headers":
        soak.server.delay_headers = 5.0
    if fault == "refused_file":  # hour 9's unparseable reply, saved into landing/ by hand
        (paths.landed_pools / REFUSED_NAME).write_bytes(gzip.compress(reply_of(9).body, mtime=0))
    if fault == "sigkill_refresh":  # the hour's only refresh: the next hour's lands its file
        children[fault] = sigkill_a_refresh(soak, index, root)
        refreshed = "KILLED: the hour's refresh was SIGKILLed in its build"
    elif fault == "concurrent_ingest":
        process = cli_process(paths.home, "ingest", str(side), "--wait", "120")
        refreshed = soak.refresh(index, soak.server.url, wait=120)
        children[fault] = finish(process)
    elif fault == "concurrent_training_build":
        process = cli_process(
            paths.home,
            *("build", "--selector", "training", "--vars", f"{{horizon_days: {HORIZON_DAYS}}}"),
            *("--command", "run", "--wait", "120"),  # a writer beside the loop: its tests are not
            # what the soak checks (tests/test_dbt_contracts.py builds the selector with them)
        )
        wait_for(lambda: str(process.pid) in lock.holder_of(paths.writer_lock), "the build's lock")
        refreshed = soak.refresh(index, soak.server.url, wait=120)
        children[fault] = finish(process)
    else:
        refreshed = soak.refresh(index, soak.server.url)
    if fault == "duplicated_ledger_hour":  # the S3 event and the schedule both deliver the hour
        events = [s3_event(hour), scheduled_event(hour)]
    soak.hour(index, refreshed, before, events)
    if fault == "duplicated_ledger_hour":
        sync_bucket(soak.s3, BUCKET, contracts.LEDGER_PREFIX, default_folder(paths))


def finish(process: subprocess.Popen) -> dict:
    _, err = process.communicate(timeout=180)
    return {"code": process.returncode, "stderr": err[-3000:]}


def sigkill_a_refresh(soak: Soak, index: int, root) -> dict:
    """Land the hour, start a refresh in another process, SIGKILL its process
    group in the middle of its dbt build (while it holds the lock)."""
    paths = soak.paths
    hour = FIRST + timedelta(hours=index)
    collect(
        paths,
        base_url=soak.server.url,
        client=CLIENT,
        backfill_max=0,
        now=hour + timedelta(minutes=5),
    )
    log_path = root / "killed_refresh.log"
    with log_path.open("w") as log_file:
        process = cli_process(paths.home, "refresh", "--wait", "60", log_file=log_file)
        wait_for(lambda: "refresh step build" in log_path.read_text(), "the refresh's build")
        time.sleep(0.5)
        holder = lock.holder_of(paths.writer_lock)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    return {
        "code": process.returncode,
        "holder": holder,
        "pid": process.pid,
        "log": log_path.read_text(),
    }


# --------------------------------------------------------------------------- the checks


def good_hours() -> list[int]:
    return [i for i in range(HOURS) if FAULTS.get(i) not in LOST]


def test_the_store_equals_a_never_faulted_reference(soaked):
    faulted, reference = soaked["faulted"], soaked["reference"]
    rows = stored(faulted)
    assert rows == stored(reference)
    assert manifest_staged(faulted) == len(rows)
    assert soaked["parses"] == 1  # the first build's parse served all 72 hourly builds
    hours_of = {
        pool: {r[1].replace(minute=0, second=0) for r in rows if r[0] == pool and r[1] >= FIRST}
        for pool in POOLS
    }
    vanished = [i for i in good_hours() if FAULTS.get(i) == "vanished"]
    assert len(hours_of[VANISHING]) == len(good_hours()) - len(vanished)
    assert FIRST + timedelta(hours=46) in hours_of[VANISHING]  # back
    assert max(hours_of[GONE]) < FIRST + timedelta(hours=60)


def test_every_good_hour_published_and_every_hour_was_served(soaked):
    records, s3 = soaked["records"], soaked["s3"]
    for index in range(HOURS):
        record = records[index]
        good = FAULTS.get(index) not in UNPUBLISHED
        assert record["published"] == good, (index, record["refresh"])
        assert record["refresh"].startswith("refresh ok") == good, (index, record["refresh"])
        hour = FIRST + timedelta(hours=index)
        key = contracts.hourly_predictions_key("predictions/", hour)
        document = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
        assert document["event_time"] == f"{hour:%Y-%m-%dT%H}:00:00Z"
        assert document["counts"]["scored"] > 0


def test_each_fault_is_named_in_its_hour(soaked):
    records, children = soaked["records"], soaked["children"]
    line = {i: records[i]["refresh"] for i in range(HOURS)}
    assert "hour from the local clock (Date header not trusted)" in line[4]
    assert line[9].startswith("FAILED refresh failed at step collect") and "JSON" in line[9]
    assert "collected 2026-10-13T14Z (12 pools)" in line[14]
    assert "below 50% of the 20" in line[15] and "largest snapshot of the last 24 hours" in line[15]
    assert line[19].startswith("FAILED refresh failed at step collect")
    assert "no complete response within the 1.5 s deadline" in line[19]
    killed = children["sigkill_refresh"]
    assert killed["code"] == -signal.SIGKILL
    assert str(killed["pid"]) in killed["holder"]  # it held the lock when killed
    assert "refresh ok" not in killed["log"]
    assert children["concurrent_ingest"]["code"] == 0, children["concurrent_ingest"]["stderr"]
    built = children["concurrent_training_build"]
    assert built["code"] == 0, built["stderr"]

    def health_of(index: int) -> dict:
        key = records[index]["scored"][-1]["hourly_key"]
        return json.loads(soaked["s3"].get_object(Bucket=BUCKET, Key=key)["Body"].read())["health"]

    for index in range(HOURS):  # health names each fault in its hour, and only there
        reasons = FAULT_REASONS.get(index, [])
        status = health.STATUS_DEGRADED if reasons else health.STATUS_OK
        assert (records[index]["health"], records[index]["reasons"]) == (status, reasons), (
            index,
            records[index],
        )
        assert health_of(index)["reasons"] == reasons
    for index in (9, 15, 19, 24):  # scored on the previous hour's features
        previous = FIRST + timedelta(hours=index - 1)
        assert health_of(index)["refreshed_hour"] == f"{previous:%Y-%m-%dT%H}:00:00Z"
    assert any("Date header not trusted" in note for note in health_of(4)["input_notes"])
    assert any("12 pools, below the 20" in note for note in health_of(14)["input_notes"])
    assert any(REFUSED_NAME in name for name in health_of(39)["refused_inputs"])
    assert records[HOURS - 1]["health"] == health.STATUS_OK


def test_the_ledger_holds_every_served_hour_once(soaked):
    records = soaked["records"]
    synced = soaked["final_sync"]  # one file per served hour in the bucket, none corrupt
    assert len(synced.copied) == HOURS and not synced.corrupt and not synced.missing_days
    duplicated = records[52]["scored"]
    assert len(duplicated) == 2 and duplicated[0]["ledger_key"] == duplicated[1]["ledger_key"]
    with duckdb.connect(str(soaked["faulted"].warehouse), read_only=True) as con:
        per_hour = dict(
            con.execute(
                "select scored_hour, count(*) from prediction_outcomes where source = 'live' "
                "group by all"
            ).fetchall()
        )
        pairs = con.execute(
            "select count(*), count(distinct (pool_id, scored_hour)) from prediction_outcomes"
        ).fetchone()
    expected = {
        f"{FIRST + timedelta(hours=i):%Y-%m-%d %H}:00:00+00": records[i]["scored"][-1][
            "ledger_rows"
        ]
        for i in range(HOURS)
    }
    assert per_hour == expected
    assert pairs[0] == pairs[1]
