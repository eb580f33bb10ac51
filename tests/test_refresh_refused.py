"""A bad hour is set aside, not a wall (issue 20, items 2 and 6): a landing
file ingest refuses moves to data/landing/refused/ beside its reason, the same
refresh goes on and publishes, its features header names the file (health:
refused_input), the next hour's refresh is ok, `ingest --retry-refused` offers
the files again and nothing is deleted. The export's shrink rule compares with
the largest export of the last 24 hours and never lets 0 pools through."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from apy_runway.cli import main as cli_main
from apy_runway.cli.hourly import _accept, _checked_export, accepted_pools, refresh
from apy_runway.foundation.console import UserError
from apy_runway.landing.ingest import ingest
from inference import contracts, features, health

START = datetime(2026, 11, 1, tzinfo=UTC)
POOLS = ("pool-a", "pool-b", "pool-c")
BUCKET = "refused-inputs"


def hours_csv(path, first: datetime, hours: int):
    lines = ["timestamp,pool,chain,project,symbol,apy,tvlUsd"]
    for h in range(hours):
        at = first + timedelta(hours=h)
        lines += [
            f"{at:%Y-%m-%dT%H:%M:%SZ},{pool},Ethereum,proj,SYM,{3 + i + h / 100},{1e6 + h}"
            for i, pool in enumerate(POOLS)
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def pools_file(path, body: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(body, mtime=0))
    return path


def published_header(s3_client) -> dict:
    data = s3_client.get_object(Bucket=BUCKET, Key=contracts.FEATURES_KEY)["Body"].read()
    return features.read_header(data)[0]


@pytest.fixture
def loop_home(project_home, tmp_path, s3_client):
    """A home with 3 pools x 10 days of hourly rows, refreshed and published once."""
    s3_client.create_bucket(Bucket=BUCKET)
    ingest([hours_csv(tmp_path / "history.csv", START, 240)], project_home)
    return project_home


def test_a_refused_reply_is_set_aside_and_does_not_stop_the_refresh(
    loop_home, moto_endpoint, s3_client, capsys
):
    paths = loop_home
    now = START + timedelta(days=10, minutes=5)
    # this hour: a /pools reply whose every apy is text, one that is no JSON,
    # and a good file beside them
    all_text = json.dumps(
        {"status": "success", "data": [{"pool": p, "apy": "n/a", "tvlUsd": 1} for p in POOLS]}
    ).encode()
    pools_file(paths.landed_pools / "2026-11-11T00Z.json.gz", all_text)
    pools_file(paths.landed_pools / "2026-11-11T01Z.json.gz", b"{not json")
    hours_csv(paths.landing / "hours" / "h1.csv", START + timedelta(days=10), 1)
    summary = refresh(paths, bucket=BUCKET, endpoint_url=moto_endpoint, now=now)
    refused = ["pools/2026-11-11T00Z.json.gz", "pools/2026-11-11T01Z.json.gz"]
    assert sorted(summary.refused_inputs) == refused
    assert "publish" in summary.steps and "set aside 2 refused file(s)" in summary.line()
    for name in refused:
        assert not (paths.landing / name).exists()
        assert (paths.landing_refused / name).is_file()
        reason = (paths.landing_refused / f"{name}.reason.txt").read_text()
        assert name in reason
    assert "non_numeric_apy" in (paths.landing_refused / f"{refused[0]}.reason.txt").read_text()
    # the good file landed; the published header names the refused files
    names = [json.loads(line)["name"] for line in paths.manifest.read_text().splitlines()]
    assert "data/landing/hours/h1.csv" in names
    header = published_header(s3_client)
    assert sorted(header[contracts.FEATURES_REFUSED_INPUTS_FIELD]) == refused
    assert header[contracts.FEATURES_REFRESHED_HOUR_FIELD] == f"{now:%Y-%m-%dT%H}:00:00Z"
    scored = health.health(header["feature_date"], now, refresh=header)
    assert scored["status"] == "degraded" and scored["reasons"] == [health.REFUSED_INPUT]
    assert sorted(scored["refused_inputs"]) == refused
    # scored an hour later, the same file says the later hour's refresh did not publish
    later = health.health(header["feature_date"], now + timedelta(hours=1), refresh=header)
    assert later["reasons"] == [health.REFRESH_MISSED, health.REFUSED_INPUT]

    # the next hour: the refused files are not offered again, the refresh is clean
    hours_csv(paths.landing / "hours" / "h2.csv", START + timedelta(days=10, hours=1), 1)
    summary = refresh(paths, bucket=BUCKET, endpoint_url=moto_endpoint, now=now)
    assert summary.refused_inputs == [] and "landed 1 file(s)" in summary.steps["ingest"]
    assert contracts.FEATURES_REFUSED_INPUTS_FIELD not in published_header(s3_client)

    # --retry-refused offers them again; still bad, they are set aside again
    capsys.readouterr()
    assert cli_main(["--home", str(paths.home), "ingest", "--retry-refused"]) == 1
    out = capsys.readouterr().out
    assert all(name in out for name in refused)
    for name in refused:
        assert (paths.landing_refused / name).is_file()
    retried = list((paths.landing_refused / "retried").rglob("*.reason.txt"))
    assert len(retried) == 2  # the first reasons kept, nothing deleted


def test_the_export_shrink_rule_uses_the_largest_of_24_hours_and_never_0_pools(project_home):
    paths = project_paths_with_export(project_home, pools=4)
    at = START
    for count in (10, 6):
        _accept(paths, count, "2026-11-01", at)
        at += timedelta(hours=1)
    assert accepted_pools(paths) == 10  # the largest, not the last
    with pytest.raises(UserError, match=r"4 pools, below 50% of the 10 of the largest"):
        _checked_export(paths, allow_shrink=False)
    assert _checked_export(paths, allow_shrink=True)[0] == 4
    # 24 hours on, the 10 has left the window
    _accept(paths, 6, "2026-11-02", START + timedelta(hours=25))
    assert accepted_pools(paths) == 6
    assert _checked_export(paths, allow_shrink=False)[0] == 4
    # a 0-pool export is never accepted, not even with --allow-shrink or on a fresh home
    paths.exports.joinpath("refresh_state.json").unlink()
    project_paths_with_export(paths, pools=0)
    for allow in (False, True):
        with pytest.raises(UserError, match="0 pools"):
            _checked_export(paths, allow_shrink=allow)


def project_paths_with_export(paths, pools: int):
    dates = [datetime(2026, 11, 1).date()] * pools
    pq.write_table(
        pa.table(
            {
                "pool_id": [f"p{i}" for i in range(pools)],
                "snapshot_date": pa.array(dates, pa.date32()),
            }
        ),
        paths.latest_features,
    )
    return paths


def test_the_scorer_refuses_a_0_pool_file_on_a_fresh_bucket():
    assert health.shrink_refusal(0, None, allow_shrink=True)
    assert health.shrink_refusal(3, None, allow_shrink=False) is None


def test_pools_unseen_for_the_inactive_limit_leave_the_document_logged_once(project_home, capsys):
    from apy_runway.cli.hourly import _log_newly_inactive
    from apy_runway.operations.publish import active_rows

    days = {"pool-a": 20, "pool-b": 10, "pool-c": 13, "pool-d": 12}
    pq.write_table(
        pa.table(
            {
                "pool_id": list(days),
                "snapshot_date": pa.array(
                    [datetime(2026, 11, d).date() for d in days.values()], pa.date32()
                ),
            }
        ),
        project_home.latest_features,
    )
    table = pq.read_table(project_home.latest_features)
    kept, left_out = active_rows(table, contracts.POOL_INACTIVE_AFTER_DAYS)
    # 7 days before 11-20 is 11-13: pool-c stays, pool-b and pool-d leave
    assert kept["pool_id"].to_pylist() == ["pool-a", "pool-c"]
    assert left_out == ["pool-b", "pool-d"]
    capsys.readouterr()
    for _ in range(3):  # every hour the same: logged once
        _log_newly_inactive(project_home, left_out)
    logged = [line for line in capsys.readouterr().err.splitlines() if "leave" in line]
    assert len(logged) == 1 and "pool-b, pool-d" in logged[0]
    # pool-b returns, then goes quiet again: logged again (pool-d is not)
    _log_newly_inactive(project_home, ["pool-d"])
    _log_newly_inactive(project_home, left_out)
    logged = [line for line in capsys.readouterr().err.splitlines() if "leave" in line]
    assert len(logged) == 1 and "pool-b" in logged[0] and "pool-d" not in logged[0]
