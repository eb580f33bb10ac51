"""The track record matures by itself (issue 20, item 7): once a UTC day the
hourly refresh rebuilds the labels that matured (the training selector,
incremental), syncs the ledger from the bucket and rebuilds prediction_outcomes.
A 2-day horizon (dbt var horizon_days) keeps it small: served predictions of a
feature day gain their outcome once two more days have landed, with no manual
`build` or `ledger sync`."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime, timedelta

import duckdb

from apy_runway.cli.hourly import refresh
from apy_runway.landing.ingest import ingest
from apy_runway.warehouse.build import build
from apy_runway.warehouse.session import DbtSession
from inference import contracts

START = datetime(2026, 11, 1, tzinfo=UTC)
POOLS = ("pool-a", "pool-b", "pool-c")
BUCKET = "labels-mature"
HORIZON = 2


def hours_csv(path, first: datetime, hours: int):
    lines = ["timestamp,pool,chain,project,symbol,apy,tvlUsd"]
    for h in range(hours):
        at = first + timedelta(hours=h)
        lines += [
            f"{at:%Y-%m-%dT%H:%M:%SZ},{pool},Ethereum,proj,SYM,{3 + i - h / 500},{1e6 + h}"
            for i, pool in enumerate(POOLS)
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def serve(s3_client, feature_day: date, hour: datetime) -> None:
    """A ledger file as the Lambda writes it: one served prediction per pool."""
    rows = [
        {
            "source": "live",
            "pool_id": pool,
            "hour": f"{hour:%Y-%m-%dT%H:%M:%SZ}",
            "model_id": "m-test",
            "feature_date": feature_day.isoformat(),
            "p_keep": 0.8,
            "predicted_class": "keep",
            "binned_confidence": 2,
            "cutpoint_low": 60.0,
            "cutpoint_high": 90.0,
            "horizon_days": HORIZON,
            "apy_drop_threshold": -0.2,
            "apy_future_stat": "median",
            "min_future_coverage": 0.5,
            "dead_pool_is_dropped": True,
            "reasons": [],
        }
        for pool in POOLS
    ]
    body = gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode(), mtime=0)
    key = f"{contracts.LEDGER_PREFIX}date={hour:%Y-%m-%d}/{hour:%Y-%m-%dT%H}Z.json.gz"
    s3_client.put_object(Bucket=BUCKET, Key=key, Body=body)


def outcomes(paths) -> tuple[int, int]:
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        return con.execute(
            "select count(*), count(*) filter (where is_matured) from prediction_outcomes "
            "where source = 'live'"
        ).fetchone()


def test_prediction_outcomes_mature_with_no_manual_step(
    project_home, tmp_path, s3_client, moto_endpoint
):
    paths = project_home
    s3_client.create_bucket(Bucket=BUCKET)
    session = DbtSession()  # the hourly builds parse once, as `refresh --every 1h` does
    ingest([hours_csv(tmp_path / "history.csv", START, 24 * 10)], paths)
    build(paths, dbt_vars={"horizon_days": HORIZON}, command="run")  # the home's configuration
    # the newest feature day (11-10) is served: its future (11-11, 11-12) is not known yet
    served_day = date(2026, 11, 10)
    serve(s3_client, served_day, START + timedelta(days=10, hours=1))
    first = refresh(
        paths,
        bucket=BUCKET,
        endpoint_url=moto_endpoint,
        mature_labels=True,
        session=session,
        now=START + timedelta(days=10, hours=1),
    )
    assert "labels" in first.steps and "ledger synced (1 file(s))" in first.steps["labels"]
    assert outcomes(paths) == (3, 0)
    # the same day again: the labels are not rebuilt every hour
    hours_csv(paths.landing / "h" / "d11.csv", START + timedelta(days=10), 24)
    again = refresh(
        paths,
        bucket=BUCKET,
        endpoint_url=moto_endpoint,
        mature_labels=True,
        session=session,
        now=START + timedelta(days=10, hours=2),
    )
    assert "labels" not in again.steps
    # two more days land hour by hour as the loop goes on; the next day's
    # first refresh matures the served predictions
    hours_csv(paths.landing / "h" / "d12.csv", START + timedelta(days=11), 24)
    later = refresh(
        paths,
        bucket=BUCKET,
        endpoint_url=moto_endpoint,
        mature_labels=True,
        session=session,
        now=START + timedelta(days=12, hours=1),
    )
    assert "labels" in later.steps and "FAILED" not in later.steps["labels"]
    assert outcomes(paths) == (3, 3)
