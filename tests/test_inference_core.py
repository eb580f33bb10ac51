"""The pure serving core (inference/validation, scoring, publication, artefact), called
directly with a tiny real model."""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
import sys

import joblib
import numpy as np
import pytest
from fixtures.tiny_model import FEATURES, feature_columns

from inference import artefact, contracts, publication, scoring, validation


@pytest.fixture(scope="module")
def loaded(tiny_run):
    metadata = json.loads((tiny_run / "metadata.json").read_text())
    return (
        joblib.load(tiny_run / "model.joblib"),
        artefact.ModelSpec.from_metadata(metadata),
        metadata,
    )


def good_row(**overrides):
    row = {
        "apy": 5.0,
        "tvl_usd": 1e6,
        "apy_rolling_7d_mean": 4.5,
        "apy_expanding_std": 1.0,
        "chain": "Ethereum",
        "project": "aave-v3",
    }
    row.update(overrides)
    return row


def test_score_rows_matches_the_model_and_derives_defillama_fields(loaded):
    model, spec, _ = loaded
    rows = [
        good_row(),
        good_row(apy=20.0, apy_rolling_7d_mean=3.0, chain="Base"),
        dict(reversed(list(good_row(project="never-seen").items())), extra="ignored"),
    ]
    body = scoring.score_rows(model, spec, rows)
    X = np.array([[r[f] for f in FEATURES] for r in rows], dtype=object)
    expected = model.predict_proba(X)
    np.testing.assert_allclose(body["predictions"], expected)
    for (p_down, p_keep), shown in zip(body["predictions"], body["rows"], strict=True):
        assert shown["predicted_class"] == ("Down" if p_down >= p_keep else "Stable/Up")
        assert shown["predicted_probability"] == pytest.approx(100 * max(p_down, p_keep), abs=1e-4)
        assert shown["binned_confidence"] == contracts.confidence_bin(
            shown["predicted_probability"], spec.cutpoints
        )


def test_null_numeric_is_missing_and_null_categorical_is_allowed(loaded):
    model, spec, _ = loaded
    matrix = validation.rows_to_matrix([good_row(apy_expanding_std=None, chain=None)], spec)
    assert math.isnan(matrix[0, FEATURES.index("apy_expanding_std")])
    assert matrix[0, FEATURES.index("chain")] is None
    assert scoring.predict_proba(model, matrix).shape == (1, 2)


@pytest.mark.parametrize(
    "probability, expected",
    [
        (50.0, 1),
        (60.0, 1),
        (60.01, 2),
        (75.0, 2),
        (75.5, 3),
        (100.0, 3),
    ],
)
def test_binned_confidence_uses_the_metadata_cutpoints(probability, expected):
    assert contracts.confidence_bin(probability, (60.0, 75.0)) == expected


@pytest.mark.parametrize(
    "body, code, row, field",
    [
        ("", "empty_body", None, None),
        ("{not json", "invalid_json", None, None),
        ('{"apy": 1}', "not_a_list", None, None),
        ("[]", "empty_list", None, None),
        ('[{"apy": 1}]', "missing_feature", 0, "tvl_usd"),
        ("[1]", "unknown_type", 0, None),
    ],
)
def test_malformed_bodies_name_the_problem(loaded, body, code, row, field):
    _, spec, _ = loaded
    with pytest.raises(validation.InputError) as info:
        validation.rows_to_matrix(validation.parse_json_body(body), spec)
    assert (info.value.code, info.value.row, info.value.field, info.value.status) == (
        code,
        row,
        field,
        400,
    )


@pytest.mark.parametrize(
    "field, raw, code",
    [
        ("apy", '"5%"', "non_numeric_value"),
        ("apy", "true", "non_numeric_value"),
        ("tvl_usd", "NaN", "non_finite_value"),
        ("tvl_usd", "-Infinity", "non_finite_value"),
        ("tvl_usd", "1e999", "non_finite_value"),
        ("chain", "7", "unknown_type"),
        ("project", "NaN", "unknown_type"),
        ("chain", '["Ethereum"]', "unknown_type"),
    ],
)
def test_bad_values_name_row_and_field(loaded, field, raw, code):
    _, spec, _ = loaded
    second = json.dumps(good_row(**{field: "__RAW__"})).replace('"__RAW__"', raw)
    body = f"[{json.dumps(good_row())}, {second}]"
    with pytest.raises(validation.InputError) as info:
        validation.rows_to_matrix(validation.parse_json_body(body), spec)
    assert (info.value.row, info.value.field, info.value.code) == (1, field, code)


def test_batch_over_the_limit_is_413(loaded):
    _, spec, _ = loaded
    with pytest.raises(validation.InputError) as info:
        validation.rows_to_matrix([good_row()] * 4, spec, max_rows=3)
    assert info.value.status == 413


def test_sha256_and_version_checks(loaded, tiny_run):
    _, _, metadata = loaded
    data = (tiny_run / "model.joblib").read_bytes()
    artefact.verify_artefact(data, metadata)
    with pytest.raises(artefact.ModelIntegrityError, match="sha256 mismatch"):
        artefact.verify_artefact(data + b"\0", metadata)
    with pytest.raises(artefact.ModelIntegrityError, match="no model_sha256"):
        artefact.verify_artefact(data, {**metadata, "model_sha256": None})
    installed = dict(metadata["library_versions"])
    assert artefact.check_library_versions(metadata, installed) == []
    with pytest.raises(artefact.ModelIntegrityError, match="scikit-learn version mismatch"):
        artefact.check_library_versions(metadata, {**installed, "scikit-learn": "1.0.2"})
    assert artefact.check_library_versions(metadata, {**installed, "numpy": "1.26.4"})


def test_score_published_eligibility_staleness_and_counts(loaded):
    model, spec, _ = loaded
    payload = feature_columns(40, snapshot_date="2025-06-05")
    payload["columns"]["snapshot_date"][5] = "2025-06-01"
    event_time = dt.datetime(2025, 6, 6, 0, tzinfo=dt.UTC)
    result = publication.score_published(model, spec, payload, event_time, stale_after_hours=48)
    by_pool = {p["pool_id"]: p for p in result["predictions"]}
    assert len(by_pool) == 40
    assert by_pool["pool-00000"]["status"] == "not scored"
    assert by_pool["pool-00000"]["reason"] == "apy <= 0"
    assert by_pool["pool-00001"]["reason"] == "observed_day_count < 7"
    expected_not_scored = sum(
        1
        for a, d in zip(
            payload["columns"]["apy"], payload["columns"]["observed_day_count"], strict=True
        )
        if a <= 0 or d < 7
    )
    assert result["counts"] == {
        "pools": 40,
        "scored": 40 - expected_not_scored,
        "not_scored": expected_not_scored,
        "stale": 1,
    }
    assert by_pool["pool-00005"]["is_stale"] and not by_pool["pool-00006"]["is_stale"]
    scored = [i for i, p in enumerate(result["predictions"]) if p["status"] == "scored"]
    X = np.array([[payload["columns"][f][i] for f in FEATURES] for i in scored], dtype=object)
    X[:, :4] = X[:, :4].astype(float)
    np.testing.assert_allclose(
        [result["predictions"][i]["p_keep"] for i in scored],
        model.predict_proba(X)[:, 1],
        atol=1e-6,
    )
    assert all(
        p["model_id"] == spec.model_id and p["scored_at"] == "2025-06-06T00:00:00Z"
        for p in result["predictions"]
    )


def test_published_columns_must_cover_the_model_features(loaded):
    model, spec, _ = loaded
    payload = feature_columns(5)
    del payload["columns"]["apy_expanding_std"]
    with pytest.raises(publication.FeatureContractError, match="apy_expanding_std"):
        publication.score_published(
            model, spec, payload, dt.datetime(2025, 6, 6, tzinfo=dt.UTC), 48
        )


def test_published_feature_types_must_match_the_model(loaded):
    model, spec, _ = loaded
    payload = feature_columns(5)
    payload["numeric"].append("chain")
    payload["categorical"].remove("chain")
    with pytest.raises(publication.FeatureContractError, match="chain"):
        publication.score_published(
            model, spec, payload, dt.datetime(2025, 6, 6, tzinfo=dt.UTC), 48
        )


@pytest.mark.parametrize(
    "feature_date, event_time, stale",
    [
        ("2025-06-05", "2025-06-06T00:00:00Z", False),
        ("2025-06-05", "2025-06-08T00:00:00Z", False),  # 48 h after the day's end: not yet
        ("2025-06-05", "2025-06-08T01:00:00Z", True),
        (None, "2025-06-06T00:00:00Z", True),
    ],
)
def test_staleness_counts_from_the_end_of_the_feature_day(feature_date, event_time, stale):
    assert (
        publication.feature_is_stale(feature_date, publication.parse_event_time(event_time), 48)
        is stale
    )


def test_hour_key_comes_from_the_event_time():
    t = publication.parse_event_time("2025-06-06T13:59:59Z")
    assert (
        contracts.hourly_predictions_key("predictions/", t)
        == "predictions/hourly/2025-06-06T13Z.json"
    )
    with pytest.raises(ValueError):
        publication.parse_event_time("yesterday")


def test_core_and_handler_do_not_import_pandas():
    code = (
        "import sys, inference.handler, inference.service; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pandas', 'pyarrow')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_column_scoring_equals_the_object_matrix_path(loaded):
    """The typed-block fast path gives exactly the pipeline's own probabilities."""
    model, spec, _ = loaded
    payload = json.loads(json.dumps(feature_columns(300), default=str))
    columns = payload["columns"]
    assert any(v is None for v in columns["apy_expanding_std"])  # missing numerics ...
    assert any(v is None for v in columns["chain"])  # ... and categoricals
    rows = np.arange(1, 300, 2)
    assert scoring._dense_column_transformer(model) is not None  # the fast path is taken
    fast = scoring.predict_proba_columns(model, spec, columns, rows)
    generic = scoring.predict_proba(model, scoring.published_matrix(columns, spec, rows))
    np.testing.assert_array_equal(fast, generic)


def test_column_scoring_falls_back_for_other_model_shapes(loaded):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    model, spec, _ = loaded
    wrapped = make_pipeline(FunctionTransformer(), model)  # not ColumnTransformer-first
    assert scoring._dense_column_transformer(wrapped) is None
    payload = json.loads(json.dumps(feature_columns(50), default=str))
    rows = np.arange(50)
    np.testing.assert_array_equal(
        scoring.predict_proba_columns(wrapped, spec, payload["columns"], rows),
        scoring.predict_proba(model, scoring.published_matrix(payload["columns"], spec, rows)),
    )
