"""Predictions users can trust: calibration choice and the clip bound, the
production choice on recent folds, the monthly backtest, the ablation's
feature groups, degenerate training input, and retrain / promote."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures.synthetic import make_training_set

from apy_runway.cli import main as cli_main
from apy_runway.cli.main import COMMANDS
from apy_runway.foundation.paths import project_paths
from models_py import config
from models_py.ablation import feature_groups
from models_py.backtest import month_starts
from models_py.calibration import (
    binned_isotonic,
    choose_method,
    expected_calibration_error,
    fit_calibrator,
)
from models_py.data import prepare
from models_py.errors import TrainingError
from models_py.evaluate import metrics
from models_py.splits import PurgedWalkForward, find_test_start, time_split
from models_py.training import (
    ModelResult,
    Settings,
    choose_production,
    forest_seed_spread,
    train_models,
)

REPO = Path(__file__).resolve().parents[1]
GOLDEN_CONTRACT = REPO / "tests" / "fixtures" / "golden" / "inputs" / "feature_columns.json"


# --------------------------------------------------------------------------- calibration


def test_isotonic_steps_rest_on_at_least_the_minimum_bin():
    rng = np.random.default_rng(0)
    scores = rng.random(5000)
    y = (rng.random(5000) < scores).astype(int)
    iso, block_rows = binned_isotonic(scores, y, 200)
    assert block_rows.min() >= 200
    values = iso.predict(np.sort(scores))
    assert np.all(np.diff(values) >= 0)  # monotone


@pytest.mark.parametrize("method", config.CALIBRATION_METHODS)
def test_no_method_ships_exactly_zero_or_one(method):
    # a model so sure of itself that raw scores hit 0 and 1 exactly
    rng = np.random.default_rng(1)
    raw = np.concatenate([np.zeros(300), np.ones(300), rng.random(1400)])
    y = np.concatenate([np.zeros(300), np.ones(300), (rng.random(1400) < 0.5)]).astype(int)
    calibrator, low, high = fit_calibrator(method, raw, y)
    assert 0 < low < 0.01 and 0.99 < high < 1
    p = raw if calibrator is None else calibrator.predict(raw)
    shipped = np.clip(p, low, high)
    assert shipped.min() > 0 and shipped.max() < 1


def test_calibration_choice_prefers_the_simpler_method_on_a_tie():
    y = np.array([0, 1] * 50)
    p = np.where(y == 1, 0.7, 0.3)
    table = {m: [(y, p)] for m in config.CALIBRATION_METHODS}
    assert choose_method(table).method == "none"
    table["isotonic"] = [(y, np.where(y == 1, 0.9, 0.1))]  # clearly better log loss
    assert choose_method(table).method == "isotonic"


def test_a_calibration_must_win_on_every_checked_fold():
    y = np.array([0, 1] * 50)
    good, bad = np.where(y == 1, 0.9, 0.1), np.where(y == 1, 0.4, 0.6)
    plain = np.where(y == 1, 0.6, 0.4)
    # isotonic: a big gain on one fold, a loss on the other (a moved base rate)
    table = {"none": [(y, plain), (y, plain)], "isotonic": [(y, good), (y, bad)]}
    choice = choose_method(table)
    assert choice.method == "none"
    row = next(r for r in choice.table if r["method"] == "isotonic")
    assert not row["beats_none_on_every_fold"]


def test_expected_calibration_error_of_a_perfect_and_a_biased_forecast():
    y = np.array([1, 0, 1, 0, 1, 1, 1, 1, 0, 0])
    assert expected_calibration_error(y, np.full(10, 0.6)) == pytest.approx(0.0)
    assert expected_calibration_error(y, np.full(10, 0.9)) == pytest.approx(0.3)


# --------------------------------------------------------------------------- choices


def _result(name: str, fold_auc: list[float]) -> ModelResult:
    return ModelResult(
        name, None, {"fold_auc": fold_auc, "cv_auc_mean": np.mean(fold_auc)}, {}, np.empty(0)
    )


def test_a_challenger_within_the_forests_noise_keeps_the_forest():
    results = {
        "random_forest": _result("random_forest", [0.90, 0.90, 0.70, 0.71, 0.72]),
        # better by 0.015 on the recent three: above the 0.01 margin, but not
        # above twice the forest's seed spread (0.01)
        "logistic": _result("logistic", [0.60, 0.60, 0.715, 0.725, 0.735]),
        "heuristic": _result("heuristic", [0.99] * 5),  # a baseline never ships
    }
    measured = []
    chosen, table = choose_production(results, lambda: measured.append(1) or 0.01)
    assert chosen == "random_forest" and measured == [1]
    row = next(row for row in table if row["model"] == "logistic")
    assert abs(row["margin_vs_forest"] - 0.015) < 1e-12 and row["forest_seed_spread"] == 0.01
    # within the margin itself: the spread is not even measured
    results["logistic"] = _result("logistic", [0.6, 0.6, 0.705, 0.715, 0.725])
    chosen, _ = choose_production(results, lambda: pytest.fail("spread measured"))
    assert chosen == "random_forest"


def test_a_clearly_better_challenger_ships():
    results = {
        "random_forest": _result("random_forest", [0.90, 0.90, 0.70, 0.71, 0.72]),
        "logistic": _result("logistic", [0.60, 0.60, 0.75, 0.74, 0.73]),  # +0.03
        "anchor": _result("anchor", [0.60, 0.60, 0.72, 0.72, 0.73]),  # +0.013: less
    }
    chosen, table = choose_production(results, 0.004)
    assert chosen == "logistic"
    assert [row["model"] for row in table if row["chosen"]] == ["logistic"]


def test_the_forests_seed_spread_is_measured_on_the_last_folds():
    frame, contract = make_training_set(n_pools=40, n_days=200, seed=4)
    data = prepare(frame, contract)
    split = time_split(data.dates, data.label_end_dates, 0.3)
    walk = PurgedWalkForward(data.dates[split.train_index], data.label_end_dates[split.train_index])
    folds = list(walk.split())
    spread = forest_seed_spread(data, split.train_index, folds, {}, 10, [0.7] * 5)
    assert set(spread["by_seed"]) == set(config.SEED_SPREAD_SEEDS)
    assert abs(spread["by_seed"][0] - 0.7) < 1e-12  # the seed-0 fits already made
    assert spread["spread"] == max(spread["by_seed"].values()) - min(spread["by_seed"].values())
    assert spread["by_seed"][1] != spread["by_seed"][2]  # other seeds, other forests


def test_every_feature_is_in_exactly_one_ablation_group():
    contract = json.loads(GOLDEN_CONTRACT.read_text())
    groups = feature_groups(contract["numeric"] + contract["categorical"])
    assert sum(len(members) for members in groups.values()) == len(contract["features"])
    readme = (REPO / "dbt_project" / "README.md").read_text()
    table = readme.split("## Features")[1].split("Not features")[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert len(config.FEATURE_GROUPS) == len(rows)
    # the golden contract was recorded before the market regime existed
    assert sorted(groups) == sorted(
        name for name, _ in config.FEATURE_GROUPS if name not in config.CANDIDATE_GROUPS
    )
    market = ["market_apy_drop_share_30d", "market_apy_change_30d_median"]
    assert feature_groups(market) == {"market regime": market}
    with pytest.raises(ValueError, match="exactly one"):
        feature_groups(["a_feature_no_group_knows"])


def test_backtest_months_start_at_the_test_start_then_on_the_first():
    dates = np.arange("2024-08-20", "2024-11-15", dtype="datetime64[D]")
    starts = month_starts(dates, np.datetime64("2024-08-24"))
    assert [str(s) for s in starts] == ["2024-08-24", "2024-09-01", "2024-10-01", "2024-11-01"]


# --------------------------------------------------------------------------- degenerate input


def _frame(**kwargs) -> tuple[pd.DataFrame, dict]:
    return make_training_set(**{"n_pools": 12, "n_days": 120, **kwargs})


@pytest.mark.parametrize(
    ("column", "value", "kind"),
    [("apy", np.inf, "infinite"), ("tvl_usd", "12 million", "not a number")],
)
def test_values_training_cannot_use_are_named_with_column_and_row(column, value, kind):
    frame, contract = _frame()
    frame[column] = frame[column].astype(object)
    frame.loc[7, column] = value
    with pytest.raises(TrainingError, match=rf"column '{column}'.*{kind}: first at row 7 "):
        prepare(frame, contract)


def test_duplicate_keys_are_refused():
    frame, contract = _frame()
    frame = pd.concat([frame, frame.iloc[[3]]], ignore_index=True)
    with pytest.raises(TrainingError, match=r"2 rows sharing a \(pool_id, snapshot_date\)"):
        prepare(frame, contract)


def test_a_test_period_of_too_few_pools_or_dates_is_refused():
    frame, contract = _frame(n_pools=4)
    data = prepare(frame, contract)
    with pytest.raises(TrainingError, match=r"4 pools .* at least 5 pools"):
        train_models(data, Settings(models=("random_forest",), rf_trees=5))


def test_a_single_class_test_period_is_refused():
    frame, contract = _frame(n_days=200)
    start = find_test_start(pd.to_datetime(frame["snapshot_date"]).to_numpy(), 0.3)
    frame.loc[pd.to_datetime(frame["snapshot_date"]) >= pd.Timestamp(start), "is_apy_kept"] = 1
    with pytest.raises(TrainingError, match="single-class"):
        train_models(prepare(frame, contract), Settings(models=("random_forest",), rf_trees=5))


def test_a_single_pool_trains_with_a_warning_and_an_interval_that_says_so():
    frame, contract = _frame(n_pools=1, n_days=400)
    result = train_models(
        prepare(frame, contract),
        Settings(models=("random_forest",), rf_trees=5, backtest=False, ablation=False),
    )
    assert any("single pool" in warning for warning in result.warnings)
    ci = result.results["random_forest"].test["ci"]
    assert np.isnan(ci["low"]) and "single pool" in ci["note"]


# --------------------------------------------------------------------------- retrain / promote


retrain = COMMANDS["retrain"]


def _parse(command, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser.parse_args(list(argv))


FAST = ("--rf-trees", "10", "--no-report")


@pytest.fixture(scope="module")
def retrain_home(tmp_path_factory):
    paths = project_paths(tmp_path_factory.mktemp("retrain") / "home").ensure()
    frame, contract = make_training_set(n_pools=40, n_days=200, seed=3)
    frame.to_parquet(paths.training_set)
    paths.feature_columns.write_text(json.dumps(contract))
    return paths


@pytest.mark.slow
def test_retrain_promotes_the_first_run_then_a_challenger_within_bounds(
    retrain_home, moto_endpoint, s3_client
):
    paths = retrain_home
    s3_client.create_bucket(Bucket="champions")
    bucket = ("--bucket", "champions", "--endpoint-url", moto_endpoint)
    assert retrain.run(_parse(retrain, "--run-id", "r1", *FAST, *bucket), paths) == 0
    first = json.loads((paths.runs / "r1" / "retrain.json").read_text())
    assert first["promote"] and first["champion"] is None
    served = json.loads(
        s3_client.get_object(Bucket="champions", Key="models/latest/metadata.json")["Body"].read()
    )
    assert served["model_id"] == "r1"
    assert (paths.runs / "champion").resolve() == (paths.runs / "r1").resolve()

    assert retrain.run(_parse(retrain, "--run-id", "r2", *FAST, *bucket), paths) == 0
    second = json.loads((paths.runs / "r2" / "retrain.json").read_text())
    assert second["champion"] == "r1" and second["promote"], second
    for side in ("champion", "challenger"):
        assert len(second["scores"][side]["months"]) == config.RETRAIN_MONTHS
        assert 0.5 < second["scores"][side]["roc_auc"] <= 1
    served = json.loads(
        s3_client.get_object(Bucket="champions", Key="models/latest/metadata.json")["Body"].read()
    )
    assert served["model_id"] == "r2"


@pytest.mark.slow
def test_retrain_keeps_a_worse_challenger_and_promote_restores_a_run(retrain_home):
    paths = retrain_home
    local = project_paths(paths.home.parent / "local").ensure()
    for name in ("training_set", "feature_columns"):
        getattr(local, name).write_bytes(getattr(paths, name).read_bytes())
    assert retrain.run(_parse(retrain, "--run-id", "full", *FAST), local) == 0
    assert (local.runs / "champion").resolve().name == "full"
    # the challenger sees only the prototype's six features: clearly worse
    worse = ("--models", "anchor")
    assert retrain.run(_parse(retrain, "--run-id", "six", *FAST, *worse), local) == 0
    decision = json.loads((local.runs / "six" / "retrain.json").read_text())
    assert not decision["promote"], decision
    scores, limits = decision["scores"], decision["thresholds"]
    auc_drop = scores["champion"]["roc_auc"] - scores["challenger"]["roc_auc"]
    ece_rise = scores["challenger"]["ece"] - scores["champion"]["ece"]
    assert auc_drop > limits["max_auc_drop"] or ece_rise > limits["max_ece_rise"]
    assert decision["reason"].startswith("kept the champion: challenger ")
    assert (local.runs / "champion").resolve().name == "full"
    # by hand: roll forward to the kept challenger, then back
    assert cli_main(["--home", str(local.home), "promote", "--run", "six"]) == 0
    assert (local.runs / "champion").resolve().name == "six"
    assert cli_main(["--home", str(local.home), "promote", "--run", "full"]) == 0
    assert (local.runs / "champion").resolve().name == "full"
    assert cli_main(["--home", str(local.home), "promote", "--run", "nope"]) == 2


def test_metrics_clip_only_for_log_loss():
    assert metrics([0, 1], [0.0, 1.0])["roc_auc"] == 1.0
