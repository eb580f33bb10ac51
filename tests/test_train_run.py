"""`apy-runway train` end to end on a small synthetic training set: the run folder,
metadata.json, the hash check, the Lambda-facing model contract (the portable
model, signed with APY_RUNWAY_SIGNING_KEY) and the S3 upload."""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import shutil

import joblib
import numpy as np
import pandas as pd
import pytest
from fixtures.synthetic import make_training_set
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from apy_runway.cli.main import COMMANDS
from apy_runway.foundation.console import UserError
from apy_runway.foundation.paths import project_paths
from apy_runway.operations.train import upload_run_folder
from inference import contracts
from inference.model import portable
from models_py import config, evaluate, export
from models_py import run_folder as artefact
from models_py.calibration import CalibratedClassifier
from models_py.confidence import choose_cutpoints
from models_py.data import load_training_set
from models_py.errors import TrainingError
from models_py.recipe import Recipe, fit_recipe
from models_py.splits import calibration_split, time_split

pytestmark = pytest.mark.slow
RUN_ID = "20260101T000000Z"
SIGNING_KEY = "train-signing-key-0123456789abcdef"


train = COMMANDS["train"]  # the command: its flags and its run function


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    return parser.parse_args(list(argv))


def write_training_set(paths, **kwargs):
    frame, contract = make_training_set(**{"n_pools": 40, "n_days": 200, **kwargs})
    frame.to_parquet(paths.training_set)
    paths.feature_columns.write_text(json.dumps(contract))
    return frame, contract


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    paths = project_paths(tmp_path_factory.mktemp("train") / "home").ensure()
    frame, contract = write_training_set(paths)
    # the drift reference's rows, a label horizon newer than the labelled ones
    # (what dbt's drift_reference_features exports: features, no labels)
    features = frame.drop(columns=["is_apy_kept", "apy_future", "label_window_end_date"])
    features["snapshot_date"] = pd.to_datetime(features["snapshot_date"]) + pd.Timedelta(days=30)
    features.to_parquet(paths.drift_reference_features)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("APY_RUNWAY_SIGNING_KEY", SIGNING_KEY)
        assert train.run(parse("--run-id", RUN_ID, "--rf-trees", "15"), paths) == 0
    return paths, frame, contract, paths.runs / RUN_ID


def test_run_folder_holds_model_metadata_report_and_latest_link(trained):
    paths, _, _, run_dir = trained
    for name in (
        "model.joblib",
        "model_spec.json",
        "model_arrays.npz",
        "metadata.json",
        "report.md",
        "roc.png",
        "calibration.png",
        "permutation_importance.png",
        "auc_by_month.png",
    ):
        assert (run_dir / name).stat().st_size > 0, name
    latest = paths.runs / "latest"
    assert latest.is_symlink() and latest.resolve() == run_dir.resolve()
    text = (run_dir / "report.md").read_text()
    for needle in (
        "| anchor |",
        "lift vs anchor",
        "CV AUC mean",
        "hit_rate",
        "AUC by month",
        "Permutation importance",
        "optimistic",
    ):
        assert needle in text, needle


def test_metadata_is_complete_and_true_to_the_training_set(trained):
    _, _, contract, run_dir = trained

    def refuse(constant):
        raise AssertionError(f"metadata.json is not strict JSON: {constant}")

    meta = json.loads((run_dir / "metadata.json").read_text(), parse_constant=refuse)
    assert set(artefact.REQUIRED_METADATA) <= set(meta)
    assert meta["model_id"] == RUN_ID and meta["model_file"] == "model.joblib"
    assert meta["features"] == contract["numeric"] + contract["categorical"]
    assert meta["numeric_features"] == contract["numeric"]
    assert meta["categorical_features"] == contract["categorical"]
    assert meta["label"] == {
        "column": "is_apy_kept",
        "horizon_days": 30,
        "apy_drop_threshold": -0.2,
        "apy_future_stat": "median",
        "min_future_coverage": 0.5,
        "dead_pool_is_dropped": True,
    }
    assert meta["eligibility"] == {"min_apy_exclusive": 0, "min_observed_days": 7}
    q1, q2 = meta["confidence_cutpoints"]
    assert 50 <= q1 <= q2 <= 100
    assert meta["model_name"] in ("random_forest", "logistic", "anchor")
    assert set(meta["metrics"]) == {"prior", "heuristic", "logistic", "random_forest", "anchor"}
    for entry in meta["metrics"].values():
        assert 0 <= entry["test"]["roc_auc"] <= 1 and len(entry["cv"]["fold_auc"]) == 5
        assert entry["lift_over_anchor"]["test_roc_auc"] == pytest.approx(
            entry["test"]["roc_auc"] - meta["metrics"]["anchor"]["test"]["roc_auc"]
        )
    assert meta["metrics"]["prior"]["test"]["roc_auc"] == 0.5
    rf = meta["metrics"]["random_forest"]
    assert 0.5 < rf["oob_roc_auc"] <= 1 and 0 < rf["oob_accuracy"] <= 1
    assert "oob_roc_auc" not in meta["metrics"]["logistic"]
    versions = meta["library_versions"]
    assert versions["scikit-learn"] == __import__("sklearn").__version__
    assert set(versions) == {"python", "scikit-learn", "numpy", "scipy", "joblib", "pandas"}
    training = meta["training"]
    # the purge, as recorded: the last training day + H is before the test start
    last_train = np.datetime64(training["train_end"]) + np.timedelta64(30, "D")
    assert last_train < np.datetime64(training["test_start"])
    assert training["train_rows"] > 0 and training["test_rows"] > 0 and training["purged_rows"] > 0


def test_sha256_is_written_and_verifiable_and_tampering_is_detected(trained, tmp_path):
    _, _, _, run_dir = trained
    meta = artefact.verify_artefact(run_dir)
    assert meta["model_sha256"] == artefact.sha256_file(run_dir / "model.joblib")
    assert meta["model_size_bytes"] == (run_dir / "model.joblib").stat().st_size

    same_size = shutil.copytree(run_dir, tmp_path / "flipped")
    data = bytearray((same_size / "model.joblib").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (same_size / "model.joblib").write_bytes(bytes(data))
    with pytest.raises(TrainingError, match="sha256"):
        artefact.verify_artefact(same_size)

    longer = shutil.copytree(run_dir, tmp_path / "longer")
    with open(longer / "model.joblib", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(TrainingError, match="size"):
        artefact.verify_artefact(longer)

    arrays = shutil.copytree(run_dir, tmp_path / "arrays")
    data = bytearray((arrays / "model_arrays.npz").read_bytes())
    data[-100] ^= 0xFF
    (arrays / "model_arrays.npz").write_bytes(bytes(data))
    with pytest.raises(TrainingError, match=r"model_arrays\.npz: sha256"):
        artefact.verify_artefact(arrays)

    incomplete = shutil.copytree(run_dir, tmp_path / "incomplete")
    meta = json.loads((incomplete / "metadata.json").read_text())
    del meta["confidence_cutpoints"]
    (incomplete / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(TrainingError, match="confidence_cutpoints"):
        artefact.verify_artefact(incomplete)


def test_model_scores_an_object_array_the_way_the_lambda_builds_it(trained):
    _, frame, _, run_dir = trained
    meta = json.loads((run_dir / "metadata.json").read_text())
    model = joblib.load(run_dir / "model.joblib")
    assert isinstance(model, CalibratedClassifier)
    assert isinstance(model.estimator, Pipeline)
    preprocess = model.estimator.steps[0][1]
    assert isinstance(preprocess, ColumnTransformer)
    for _, _, columns in preprocess.transformers:
        if columns != "drop" and not isinstance(columns, str):
            assert all(isinstance(c, (int, np.integer)) for c in columns)
    # rows as the Lambda builds them: plain Python floats/None/str, no pandas
    features = meta["features"]
    rows = []
    for record in frame.head(5).to_dict("records"):
        rows.append(
            [float(record[f]) if f in meta["numeric_features"] else record[f] for f in features]
        )
    rows[0][features.index("chain")] = None  # missing category
    rows[1][features.index("project")] = "never-seen-project"  # unseen category
    rows[2][features.index("tvl_usd")] = float("nan")  # missing numeric
    X = np.array(rows, dtype=object)
    proba = model.predict_proba(X)
    assert proba.shape == (5, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert list(model.classes_) == [0, 1]  # [:, 0] = p_down, [:, 1] = p_keep


def test_the_portable_model_is_signed_and_scores_as_model_joblib(trained):
    paths, _, _, run_dir = trained
    meta = json.loads((run_dir / "metadata.json").read_text())
    block = meta["portable"]
    spec = (run_dir / block["spec_file"]).read_bytes()
    arrays = (run_dir / block["arrays_file"]).read_bytes()
    assert block["spec_sha256"] == hashlib.sha256(spec).hexdigest()
    assert block["spec_size_bytes"] == len(spec)
    expected = hmac.new(SIGNING_KEY.encode(), spec, hashlib.sha256).hexdigest()
    assert block["spec_hmac_sha256"] == expected
    document = json.loads(spec)
    assert document["arrays"]["sha256"] == hashlib.sha256(arrays).hexdigest()
    assert document["model_id"] == RUN_ID
    assert document["confidence_cutpoints"] == pytest.approx(meta["confidence_cutpoints"])
    assert block["max_abs_difference_vs_predict_proba"] <= 1e-9
    model = portable.load(document, portable.read_arrays(arrays))
    data = load_training_set(paths.training_set, paths.feature_columns)
    X = data.matrix()
    pipeline = joblib.load(run_dir / "model.joblib")
    assert export.check(pipeline, model, X) <= 1e-9  # every training row, not only the test rows


def test_saved_forest_drops_its_oob_arrays_but_reports_the_oob_score(trained):
    paths, _, _, _ = trained
    fast = ("--models", "random_forest", "--rf-trees", "5", "--no-report", "--no-backtest")
    assert train.run(parse("--run-id", "forest", *fast), paths) == 0
    run_dir = paths.runs / "forest"
    meta = json.loads((run_dir / "metadata.json").read_text())
    forest = joblib.load(run_dir / "model.joblib").estimator.steps[-1][1]
    assert hasattr(forest, "estimators_")
    assert not hasattr(forest, "oob_decision_function_")  # two floats per training row
    assert 0.5 < meta["metrics"]["random_forest"]["oob_roc_auc"] <= 1.0


def test_stored_cutpoints_are_chosen_on_the_shipped_fits_held_out_block(trained):
    paths, _, _, run_dir = trained
    meta = json.loads((run_dir / "metadata.json").read_text())
    data = load_training_set(paths.training_set, paths.feature_columns)
    split = time_split(data.dates, data.label_end_dates, 0.3)
    assert str(split.test_start) == meta["training"]["test_start"]
    recipe = Recipe.from_dict(meta["recipe"])
    X = data.matrix(recipe.features)
    evaluated = fit_recipe(recipe, X, data.y, data.dates, data.label_end_dates, split.train_index)
    p_keep = evaluated.predict_proba(X[split.test_index])[:, 1]
    assert meta["evaluated_fit"]["test"]["roc_auc"] == pytest.approx(
        evaluate.metrics(data.y[split.test_index], p_keep)["roc_auc"]
    )
    # the block is the last 20% of all dates; the backtest's months predicted
    # them out of sample, and the run says so (else a fit on the earlier rows)
    rows = np.arange(len(data.y))
    assert meta["confidence"]["held_out_scored_by"].startswith("walk-forward predictions")
    _, block_pos = calibration_split(
        data.dates, data.label_end_dates, rows, config.CONFIDENCE_HOLDOUT_FRACTION
    )
    keys = data.frame.iloc[rows[block_pos]][["pool_id", "snapshot_date"]].copy()
    keys["snapshot_date"] = pd.to_datetime(keys["snapshot_date"])
    backtest = pd.read_parquet(run_dir / "backtest_predictions.parquet")
    backtest["snapshot_date"] = pd.to_datetime(backtest["snapshot_date"])
    made = backtest.merge(keys, on=["pool_id", "snapshot_date"])
    assert len(made) >= len(keys) // 4
    chosen = choose_cutpoints(made["is_apy_kept"], made["p_keep"], made["snapshot_date"])
    assert meta["confidence_cutpoints"] == pytest.approx(chosen["cutpoints"])
    assert meta["confidence"]["words"] == chosen["words"]
    assert meta["confidence"]["levels"] == chosen["levels"]
    # the spec the Lambda reads carries them (hashed with it)
    spec = json.loads((run_dir / contracts.PORTABLE_SPEC_FILE).read_text())
    assert spec["confidence_cutpoints"] == meta["confidence_cutpoints"]
    assert spec["confidence"]["words"] == chosen["words"]
    assert spec["confidence"]["levels"] == chosen["levels"]
    # the report's table comes from the backtest: every day binned by its own
    # quantiles at its month's refit's levels, as the Lambda bins an hour
    assert meta["confidence"]["hit_rates_from"] == "the monthly backtest"
    predictions = pd.read_parquet(run_dir / artefact.BACKTEST_FILE)
    assert set(predictions["binned_confidence"].unique()) <= {1, 2, 3}
    shown = contracts.predicted_probability(predictions["p_keep"].to_numpy())
    rebinned = contracts.confidence_bin(
        shown, (predictions["cutpoint_low"].to_numpy(), predictions["cutpoint_high"].to_numpy())
    )
    assert (rebinned == predictions["binned_confidence"].to_numpy()).all()
    table = {row["confidence"]: row for row in meta["confidence"]["hit_rates"]}
    assert table["all"]["rows"] == len(predictions)
    assert table["all"]["always_stable_up"] == pytest.approx(predictions["is_apy_kept"].mean())


def test_the_shipped_fit_is_fresh_and_the_backtest_is_reported(trained):
    paths, _, _, run_dir = trained
    meta = json.loads((run_dir / "metadata.json").read_text())
    data = load_training_set(paths.training_set, paths.feature_columns)
    shipped, evaluated = meta["shipped_fit"], meta["evaluated_fit"]
    # the shipped model learned from every labelled row, up to the newest label
    assert shipped["train_rows"] == len(data.y) > evaluated["train_rows"]
    assert shipped["train_end"] == str(data.dates.max())
    assert shipped["label_window_end_max"] == str(data.label_end_dates.max())
    months = meta["backtest"]["months"]
    assert len(months) >= 2 and all(0 < m["roc_auc"] <= 1 for m in months)
    assert [m["month"] for m in months] == sorted(m["month"] for m in months)
    # each month trained only on rows whose label window ended before it
    for month in months:
        assert month["train_end"] < month["month"] + "-01" or month is months[0]
    assert meta["backtest"]["total"]["rows"] == sum(m["rows"] for m in months)
    predictions = pd.read_parquet(run_dir / meta["backtest"]["predictions_file"])
    assert len(predictions) == meta["backtest"]["total"]["rows"]
    report = (run_dir / "report.md").read_text()
    for needle in (
        "Monthly walk-forward backtest",
        "Evaluated fit",
        "Shipped fit",
        "Production choice",
        "ECE",
        "Feature-group ablation",
        "clipped to",
    ):
        assert needle in report, needle
    model = joblib.load(run_dir / "model.joblib")
    p = model.predict_proba(data.matrix(meta["features"]))[:, 1]
    assert p.min() >= meta["calibration"]["clip"]["low"] > 0
    assert p.max() <= meta["calibration"]["clip"]["high"] < 1
    assert meta["calibration"]["method"] in ("none", "sigmoid", "isotonic")


def test_the_drift_reference_describes_the_newest_feature_days_not_the_labelled_ones(trained):
    paths, _, _, run_dir = trained
    spec = json.loads((run_dir / "model_spec.json").read_text())
    meta = json.loads((run_dir / "metadata.json").read_text())
    reference = spec["monitoring"]["reference"]
    features = pd.read_parquet(paths.drift_reference_features)
    dates = pd.to_datetime(features["snapshot_date"])
    newest = dates.max()
    window = features[
        (dates > newest - pd.Timedelta(days=contracts.DRIFT_REFERENCE_DAYS))
        & (features["apy"] > 0)
        & (features["observed_day_count"] >= 7)
    ]
    assert reference["source"] == contracts.DRIFT_SOURCE_FEATURES
    assert reference["last_day"] == f"{newest:%Y-%m-%d}" > meta["shipped_fit"]["train_end"]
    assert reference["first_day"] == f"{newest - pd.Timedelta(days=29):%Y-%m-%d}"
    assert reference["features"]["apy"]["rows"] == len(window) < len(features)
    assert set(reference["features"]) == set(meta["features"])


def test_upload_to_s3_puts_the_run_folder_under_the_prefix(trained, s3_client, moto_endpoint):
    _, _, _, run_dir = trained
    s3_client.create_bucket(Bucket="models")
    keys = upload_run_folder(run_dir, "models", "apy-runway/runs", endpoint_url=moto_endpoint)
    assert keys[-1] == f"apy-runway/runs/{RUN_ID}/metadata.json"  # metadata last
    listed = {o["Key"] for o in s3_client.list_objects_v2(Bucket="models")["Contents"]}
    assert f"apy-runway/runs/{RUN_ID}/model.joblib" in listed
    assert f"apy-runway/runs/{RUN_ID}/report.md" in listed
    body = s3_client.get_object(Bucket="models", Key=f"apy-runway/runs/{RUN_ID}/model.joblib")[
        "Body"
    ].read()
    meta = json.loads((run_dir / "metadata.json").read_text())
    assert __import__("hashlib").sha256(body).hexdigest() == meta["model_sha256"]


def test_cli_refuses_bad_runs(trained):
    paths, _, _, _ = trained
    with pytest.raises(UserError, match="already exists"):
        train.run(parse("--run-id", RUN_ID), paths)
    with pytest.raises(UserError, match="unknown"):
        train.run(parse("--models", "random_forest,xgboost"), paths)
    with pytest.raises(UserError, match="s3://"):
        train.run(parse("--upload", "models/prefix"), paths)


def test_size_guard_grows_leaves_until_the_artefact_fits(tmp_path, moto_endpoint, s3_client):
    paths = project_paths(tmp_path / "home").ensure()
    write_training_set(paths, n_pools=30, n_days=150, seed=1)
    common = [
        "--models",
        "random_forest",
        "--rf-trees",
        "10",
        "--no-report",
        "--calibration",
        "none",
    ]
    assert train.run(parse("--run-id", "free", *common), paths) == 0
    free = json.loads((paths.runs / "free" / "metadata.json").read_text())
    limit_mb = 0.6 * free["model_size_bytes"] / 1e6
    s3_client.create_bucket(Bucket="guarded")
    assert (
        train.run(
            parse(
                "--run-id",
                "small",
                "--max-artefact-mb",
                f"{limit_mb:.6f}",
                "--upload",
                "s3://guarded/runs",
                "--endpoint-url",
                moto_endpoint,
                *common,
            ),
            paths,
        )
        == 0
    )
    small = json.loads((paths.runs / "small" / "metadata.json").read_text())
    guard = small["random_forest"]["size_guard"]
    assert len(guard) >= 2 and guard[-1]["size_mb"] <= limit_mb
    assert guard[-1]["cv_auc_mean"] is not None  # the AUC cost is recorded
    assert small["model_size_bytes"] / 1e6 <= limit_mb
    assert (
        small["random_forest"]["params"]["min_samples_leaf"]
        > free["random_forest"]["params"]["min_samples_leaf"]
    )
    assert not (paths.runs / "small" / "report.md").exists()
    assert small["calibration"]["method"] == "none"  # --calibration off
    assert small["calibration"]["chosen_on"] == "--calibration"
    assert guard[0]["cv_auc_mean"] == small["metrics"]["random_forest"]["cv"]["cv_auc_mean"]
    assert (paths.runs / "latest").resolve() == (paths.runs / "small").resolve()
    listed = {o["Key"] for o in s3_client.list_objects_v2(Bucket="guarded")["Contents"]}
    assert listed == {
        "runs/small/model.joblib",
        "runs/small/model_spec.json",
        "runs/small/model_arrays.npz",
        "runs/small/metadata.json",
        "runs/small/backtest_predictions.parquet",
    }
    assert small["portable"]["spec_hmac_sha256"] is None  # no key in the environment
    with pytest.raises(TrainingError, match="could not bring"):
        train.run(parse("--run-id", "tiny", "--max-artefact-mb", "0.0001", *common), paths)
