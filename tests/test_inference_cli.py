"""`apy-runway publish` and `apy-runway score` on a project home holding a tiny
run and a latest_features.parquet, against real S3 servers (moto)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fixtures.tiny_model import CATEGORICAL, FEATURES, NUMERIC, synthetic_rows, write_run

from apy_runway.cli.main import COMMANDS
from apy_runway.foundation.console import UserError
from inference import contracts, features

publish, score = COMMANDS["publish"], COMMANDS["score"]


def parse(command, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture
def home(project_home):
    """Project home with runs/latest -> a tiny run and 60 pools of latest features."""
    write_run(project_home.runs / "20250606T000000Z")
    (project_home.runs / "latest").symlink_to("20250606T000000Z")
    X, _ = synthetic_rows(60, seed=5)
    n = len(X)
    columns = {
        "pool_id": [f"pool-{i:03d}" for i in range(n)],
        "snapshot_date": [dt.date(2025, 6, 5)] * (n - 1) + [dt.date(2025, 5, 20)],
        "symbol": [f"USD{i}" for i in range(n)],
        "observed_day_count": [30] * (n - 1) + [2],
    }
    for j, name in enumerate(FEATURES):
        values = X[:, j].tolist()
        columns[name] = [float(v) for v in values] if name in NUMERIC else values
    columns["apy"][3] = -1.0
    table = pa.table(columns)
    pq.write_table(table, project_home.latest_features)
    project_home.feature_columns.write_text(
        json.dumps({"numeric": NUMERIC, "categorical": CATEGORICAL, "features": FEATURES})
    )
    return project_home


def test_publish_uploads_the_features_file_the_json_copy_and_the_run(
    home, s3_client, moto_endpoint
):
    args = parse(
        publish,
        [
            "--bucket",
            "publish-test",
            "--endpoint-url",
            moto_endpoint,
            "--create-bucket",
            "--run",
            "latest",
        ],
    )
    assert publish.run(args, home) == 0
    listed = s3_client.list_objects_v2(Bucket="publish-test")["Contents"]
    assert sorted(o["Key"] for o in listed) == [
        "features/latest_features.bin",
        "features/latest_features.json",
        "models/latest/metadata.json",
        "models/latest/model.joblib",
        "models/latest/model_arrays.npz",
        "models/latest/model_spec.json",
    ]
    binary = features.decode(
        s3_client.get_object(Bucket="publish-test", Key=contracts.FEATURES_KEY)["Body"].read()
    )
    assert binary.header["row_count"] == 60 and binary.header["feature_date"] == "2025-06-05"
    assert binary.header["allow_shrink"] is False
    assert binary.pool_ids == pq.read_table(home.latest_features).column("pool_id").to_pylist()
    payload = json.loads(
        s3_client.get_object(Bucket="publish-test", Key="features/latest_features.json")[
            "Body"
        ].read()
    )
    table = pq.read_table(home.latest_features).to_pydict()
    assert payload["row_count"] == 60 and payload["snapshot_date_max"] == "2025-06-05"
    assert payload["features"] == FEATURES
    assert payload["columns"]["pool_id"] == table["pool_id"]
    assert payload["columns"]["snapshot_date"][0] == "2025-06-05"
    for name in NUMERIC:  # NaN travels as JSON null
        assert [
            None if isinstance(v, float) and math.isnan(v) else v for v in table[name]
        ] == payload["columns"][name]
    assert payload["columns"]["chain"] == table["chain"]
    model = s3_client.get_object(Bucket="publish-test", Key="models/latest/model.joblib")[
        "Body"
    ].read()
    assert model == (home.runs / "latest" / "model.joblib").read_bytes()


def test_publish_needs_a_bucket_and_a_built_project(project_home, moto_endpoint):
    with pytest.raises(UserError, match="bucket"):
        publish.run(parse(publish, ["--bucket", ""]), project_home)
    with pytest.raises(UserError, match="apy-runway build"):
        publish.run(
            parse(
                publish,
                ["--bucket", "not-built", "--endpoint-url", moto_endpoint, "--create-bucket"],
            ),
            project_home,
        )


def test_score_runs_the_scheduled_handler_on_a_local_s3(home, capsys):
    assert score.run(parse(score, ["--top", "3"]), home) == 0
    out = capsys.readouterr().out
    published = json.loads((home.exports / "predictions_latest.json").read_text())
    assert published["event_time"] == "2025-06-06T00:00:00Z"  # day after the newest features
    counts = published["counts"]
    assert counts == {
        "pools": 60,
        "scored": counts["scored"],
        "not_scored": 60 - counts["scored"],
        # the pool with features of 2025-05-20 has been silent for 16 days
        "not_scored_by_reason": {"apy_not_positive": 1, "inactive": 1},
        "stale": 1,
        "unseen_category": 0,
    }
    assert counts["not_scored"] >= 2
    assert f"scored {counts['scored']}, not scored {counts['not_scored']}, stale 1" in out
    scored = sorted(
        (p for p in published["predictions"] if p["status"] == "scored"), key=lambda p: -p["p_keep"]
    )
    assert "highest runway probability (top 3)" in out
    assert "lowest runway probability (bottom 3)" in out
    top_lines = out.split("highest runway probability (top 3)")[1].splitlines()[2:5]
    assert [line.split()[1] for line in top_lines] == [p["pool_id"] for p in scored[:3]]
    assert "not scored: apy_not_positive: 1" in out
    assert "not scored: inactive: 1" in out
    assert "top reason" in out
    assert scored[0]["reasons"][0]["text"] in out  # the top pool's first reason is shown


def test_score_event_time_override_flags_stale_features(home):
    score.run(parse(score, ["--event-time", "2025-06-20T07:30:00Z"]), home)
    published = json.loads((home.exports / "predictions_latest.json").read_text())
    assert published["event_time"] == "2025-06-20T07:30:00Z"
    assert published["counts"]["stale"] == 60


def test_score_without_a_trained_run_is_a_user_error(project_home):
    with pytest.raises(UserError, match="apy-runway train"):
        score.run(parse(score, []), project_home)


def test_score_with_an_unknown_run_lists_the_runs_that_exist(home):
    write_run(home.runs / "20250101T000000Z")
    (home.runs / "champion").symlink_to("20250101T000000Z")
    (home.runs / "gone").symlink_to("no-such-folder")  # a dangling link is no run
    with pytest.raises(UserError) as raised:
        score.run(parse(score, ["--run", "nonexistent"]), home)
    message = str(raised.value)
    assert "no training run at" in message and "nonexistent" in message
    assert message.endswith("the runs are: latest, champion, 20250101T000000Z, 20250606T000000Z")
    assert "apy-runway train" not in message
