"""Weak runs are named and refused (issue 22): an 11-pool export whose labels
carry no signal trains, is marked weak in metadata.json and the report's first
line, and `publish` / `promote` refuse it unless --allow-weak."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fixtures.synthetic import make_training_set

from apy_runway.cli.main import main as cli_main
from apy_runway.foundation.console import UserError
from apy_runway.foundation.paths import project_paths
from apy_runway.operations import promote, publish
from models_py import quality

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def weak_run(tmp_path_factory):
    paths = project_paths(tmp_path_factory.mktemp("weak") / "home").ensure()
    frame, contract = make_training_set(n_pools=11, n_days=200, seed=5)
    # labels drawn independently of every feature: nothing to learn
    frame["is_apy_kept"] = np.random.default_rng(0).integers(0, 2, len(frame))
    frame.to_parquet(paths.training_set)
    paths.feature_columns.write_text(json.dumps(contract))
    argv = ["--home", str(paths.home), "train", "--run-id", "weak", "--rf-trees", "10"]
    assert cli_main(argv) == 0
    return paths, paths.runs / "weak"


def test_an_11_pool_run_without_signal_is_marked_weak(weak_run):
    _, run_dir = weak_run
    metadata = json.loads((run_dir / "metadata.json").read_text())
    verdict = metadata["quality"]
    assert verdict["weak"] and verdict["basis"] == "backtest", verdict
    assert verdict["reasons"]
    first_line = (run_dir / "report.md").read_text().splitlines()[0]
    assert "WEAK MODEL" in first_line and verdict["reasons"][0] in first_line
    # a training set given directly: its provenance is unknown, and said so
    assert metadata["data_provenance"]["kind"] == "unknown"
    # the headline leads with the month-level figures, then the provenance
    report = (run_dir / "report.md").read_text()
    headline = report.split("## Headline", 1)[1].split("##", 1)[0].strip().splitlines()
    total = metadata["backtest"]["total"]
    assert headline[0].startswith("- **Month-level truth**")
    assert f"mean by-month AUC **{total['mean_month_auc']:.4f}**" in headline[0]
    assert f"by-month ECE **{total['month_ece_row_weighted']:.4f}**" in headline[0]
    aucs = [m["roc_auc"] for m in metadata["backtest"]["months"]]
    assert abs(total["mean_month_auc"] - np.mean(aucs)) < 1e-12
    assert any(line.startswith("- Data: provenance unknown") for line in headline)


def test_publish_and_promote_refuse_a_weak_run_unless_allowed(weak_run, s3_client):
    paths, run_dir = weak_run
    s3_client.create_bucket(Bucket="weak-models")
    with pytest.raises(UserError, match=r"WEAK model.*--allow-weak to publish"):
        publish.publish(s3_client, "weak-models", None, run_dir)
    assert "Contents" not in s3_client.list_objects_v2(Bucket="weak-models")
    with pytest.raises(UserError, match="--allow-weak to promote"):
        promote.promote(paths, run_dir)
    assert not (paths.runs / "champion").exists()
    assert cli_main(["--home", str(paths.home), "promote", "--run", "weak"]) == 2
    assert cli_main(["--home", str(paths.home), "promote", "--run", "weak", "--allow-weak"]) == 0
    assert (paths.runs / "champion").resolve() == run_dir.resolve()


def test_the_weak_rule_reads_the_interval_and_the_lift():
    ci = {"low": 0.55, "high": 0.70}
    assert not quality.verdict(0.62, ci, 0.60, "backtest")["weak"]
    assert quality.verdict(0.62, ci, 0.615, "backtest")["weak"]  # lift 0.005 <= 0.01
    assert quality.verdict(0.62, {"low": 0.49, "high": 0.7}, 0.5, "backtest")["weak"]
    assert not quality.verdict(0.62, ci, float("nan"), "backtest")["weak"]  # no heuristic
