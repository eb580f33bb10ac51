"""The pure serving core (inference/validation, scoring, publication, artefact), called
directly with a tiny real model served from its portable files."""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
import sys

import joblib
import numpy as np
import pytest
from fixtures.tiny_model import FEATURES, feature_file

from inference import contracts, features, publication, scoring, validation
from inference.model import artefact, portable


@pytest.fixture(scope="module")
def loaded(tiny_run):
    """(the portable model, the scikit-learn pipeline it was exported from)."""
    document = json.loads((tiny_run / "model_spec.json").read_text())
    arrays = portable.read_arrays((tiny_run / "model_arrays.npz").read_bytes())
    return portable.load(document, arrays), joblib.load(tiny_run / "model.joblib")


def table(n: int = 40, **kwargs) -> features.FeatureTable:
    return features.decode(feature_file(n, **kwargs))


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


def test_score_rows_matches_the_pipeline_and_derives_defillama_fields(loaded):
    model, pipeline = loaded
    rows = [
        good_row(),
        good_row(apy=20.0, apy_rolling_7d_mean=3.0, chain="Base"),
        dict(reversed(list(good_row(project="never-seen").items())), extra="ignored"),
        good_row(apy_expanding_std=None, chain=None, tvl_usd=3e38),
    ]
    body = scoring.score_rows(model, rows)
    X = np.array(
        [
            [np.nan if r[f] is None and f in ("apy_expanding_std",) else r[f] for f in FEATURES]
            for r in rows
        ],
        dtype=object,
    )
    np.testing.assert_allclose(body["predictions"], pipeline.predict_proba(X), rtol=0, atol=1e-9)
    for (p_down, p_keep), shown in zip(body["predictions"], body["rows"], strict=True):
        assert shown["predicted_class"] == ("Down" if p_down >= p_keep else "Stable/Up")
        assert shown["predicted_probability"] == pytest.approx(100 * max(p_down, p_keep), abs=1e-4)
        assert shown["binned_confidence"] == contracts.confidence_bin(
            shown["predicted_probability"], model.spec.cutpoints
        )


def test_null_numeric_is_missing_and_null_categorical_is_allowed(loaded):
    model, _ = loaded
    numeric, text = validation.rows_to_inputs(
        [good_row(apy_expanding_std=None, chain=None)], model.spec
    )
    assert math.isnan(numeric[0, model.numeric_features.index("apy_expanding_std")])
    assert text["chain"] == [None]
    codes = {name: column.codes(text[name]) for name, column in model.categorical.items()}
    assert codes["chain"][0] == model.categorical["chain"].missing_code
    assert scoring.score_inputs(model, numeric, codes).proba.shape == (1, 2)


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
    model, _ = loaded
    with pytest.raises(validation.InputError) as info:
        validation.rows_to_inputs(validation.parse_json_body(body), model.spec)
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
        ("tvl_usd", "1e39", "value_out_of_range"),
        ("apy", "-3.5e38", "value_out_of_range"),
    ],
)
def test_bad_values_name_row_and_field(loaded, field, raw, code):
    model, _ = loaded
    second = json.dumps(good_row(**{field: "__RAW__"})).replace('"__RAW__"', raw)
    body = f"[{json.dumps(good_row())}, {second}]"
    with pytest.raises(validation.InputError) as info:
        validation.rows_to_inputs(validation.parse_json_body(body), model.spec)
    assert (info.value.row, info.value.field, info.value.code) == (1, field, code)


def test_batch_over_the_limit_is_413(loaded):
    model, _ = loaded
    with pytest.raises(validation.InputError) as info:
        validation.rows_to_inputs([good_row()] * 4, model.spec, max_rows=3)
    assert info.value.status == 413


def test_sizes_sha256_and_signatures_are_checked_before_parsing(tiny_run):
    metadata = json.loads((tiny_run / "metadata.json").read_text())
    pointer = artefact.Pointer.from_metadata(metadata)
    spec = (tiny_run / pointer.spec_file).read_bytes()
    artefact.verify_bytes(spec, "spec", pointer.spec_sha256, pointer.spec_size_bytes, "meta")
    with pytest.raises(artefact.ModelIntegrityError, match="sha256 mismatch"):
        artefact.verify_bytes(spec[:-1] + b" ", "spec", pointer.spec_sha256, len(spec), "meta")
    with pytest.raises(artefact.ModelIntegrityError, match="size mismatch"):
        artefact.verify_bytes(spec + b" ", "spec", pointer.spec_sha256, len(spec), "meta")
    with pytest.raises(artefact.ModelIntegrityError, match="no sha256"):
        artefact.verify_bytes(spec, "spec", None, None, "meta")
    artefact.verify_signature(spec, pointer, None)  # no key configured: no check
    key = b"k" * 32
    signed = artefact.Pointer(
        pointer.spec_file, pointer.spec_sha256, len(spec), artefact.hmac_hex(key, spec)
    )
    artefact.verify_signature(spec, signed, key)
    with pytest.raises(artefact.ModelIntegrityError, match="HMAC-SHA256 mismatch"):
        artefact.verify_signature(spec, signed, b"x" * 32)
    with pytest.raises(artefact.ModelIntegrityError, match="unsigned"):
        artefact.verify_signature(spec, pointer, key)
    with pytest.raises(artefact.ModelIntegrityError, match="at least 16"):
        artefact.check_signing_key(b"short", "test")


@pytest.mark.parametrize(
    "portable_block, message",
    [
        (None, "no `portable` block"),
        ({"spec_file": "../evil.json"}, "not a plain file name"),
        ({"spec_file": "model_spec.json", "spec_sha256": "abc"}, "spec_sha256 is malformed"),
        (
            {"spec_file": "model_spec.json", "spec_sha256": "0" * 64, "spec_size_bytes": -1},
            "spec_size_bytes is malformed",
        ),
    ],
)
def test_a_malformed_pointer_is_refused(portable_block, message):
    with pytest.raises(artefact.ModelIntegrityError, match=message):
        artefact.Pointer.from_metadata({"portable": portable_block})


def test_score_published_eligibility_staleness_counts_and_reasons(loaded):
    model, pipeline = loaded

    def edit(columns, contract):
        columns["snapshot_date"][5] = dt.date(2025, 6, 1)

    published_table = table(40, snapshot_date="2025-06-05", edit=edit)
    event_time = dt.datetime(2025, 6, 6, 0, tzinfo=dt.UTC)
    result = publication.score_published(model, published_table, event_time, stale_after_hours=48)
    by_pool = {p["pool_id"]: p for p in result["predictions"]}
    assert len(by_pool) == 40
    assert by_pool["pool-00000"]["status"] == "not scored"
    assert by_pool["pool-00000"]["reason"] == "apy <= 0"
    assert by_pool["pool-00001"]["reason"] == "observed_day_count < 7"
    apy = published_table.numeric_column("apy")
    days = published_table.numeric_column("observed_day_count")
    expected_not_scored = int(np.sum((apy <= 0) | (days < 7)))
    assert result["counts"] == {
        "pools": 40,
        "scored": 40 - expected_not_scored,
        "not_scored": expected_not_scored,
        "not_scored_by_reason": {
            "apy_not_positive": int(np.sum(apy <= 0)),
            "too_few_observed_days": int(np.sum((apy > 0) & (days < 7))),
        },
        "stale": 1,
        "unseen_category": 0,
    }
    assert by_pool["pool-00005"]["is_stale"] and not by_pool["pool-00006"]["is_stale"]
    scored = [i for i, p in enumerate(result["predictions"]) if p["status"] == "scored"]
    X = np.empty((len(scored), len(FEATURES)), dtype=object)
    for j, name in enumerate(FEATURES):
        if name in model.spec.numeric_features:
            X[:, j] = published_table.numeric_column(name)[scored]
        else:
            X[:, j] = [published_table.text_column(name)[i] for i in scored]
    np.testing.assert_allclose(
        [result["predictions"][i]["p_keep"] for i in scored],
        pipeline.predict_proba(X)[:, 1],
        atol=5e-7,  # the document rounds to 6 decimals
    )
    # model id, event time and label settings once, at the top level
    assert result["model_id"] == model.spec.model_id
    assert result["event_time"] == "2025-06-06T00:00:00Z"
    assert set(result["label"]) == {"horizon_days", "apy_drop_threshold", "apy_future_stat"}
    assert not {"model_id", "scored_at"} & set(result["predictions"][0])
    assert all(result["predictions"][i]["reasons"] for i in scored)
    words = {1: "Low", 2: "Medium", 3: "High"}
    assert all(
        result["predictions"][i]["confidence_words"]
        == words[result["predictions"][i]["binned_confidence"]]
        for i in scored
    )


def test_inactive_pools_abstain_with_their_age_and_unseen_categories_are_flagged(loaded):
    model, _ = loaded

    def edit(columns, contract):
        columns["snapshot_date"][2] = dt.date(2025, 5, 28)  # 8 days before the event day
        columns["snapshot_date"][3] = dt.date(2025, 5, 29)  # 7 days: still active
        columns["observed_day_count"][2] = columns["observed_day_count"][3] = 100
        columns["apy"][2] = columns["apy"][3] = 5.0
        columns["chain"][4] = "NeverSeenChain"
        columns["observed_day_count"][4], columns["apy"][4] = 100, 5.0

    published_table = table(10, snapshot_date="2025-06-05", edit=edit)
    result = publication.score_published(
        model, published_table, dt.datetime(2025, 6, 6, 0, tzinfo=dt.UTC), stale_after_hours=999
    )
    by_pool = {p["pool_id"]: p for p in result["predictions"]}
    silent = by_pool["pool-00002"]
    assert silent["status"] == "not scored" and silent["reason_code"] == "inactive"
    assert silent["is_inactive"] and silent["inactive_days"] == 8 and silent["p_keep"] is None
    active = by_pool["pool-00003"]
    assert active["status"] == "scored" and not active["is_inactive"]
    assert active["inactive_days"] is None
    assert result["counts"]["not_scored_by_reason"]["inactive"] == 1
    new = by_pool["pool-00004"]
    assert new["status"] == "scored" and new["has_unseen_category"]
    assert result["counts"]["unseen_category"] == 1
    assert not any(p["has_unseen_category"] for k, p in by_pool.items() if k != "pool-00004")


def test_published_columns_must_cover_the_model_features(loaded):
    model, _ = loaded

    def drop(columns, contract):
        del columns["apy_expanding_std"]
        contract["features"].remove("apy_expanding_std")
        contract["numeric"].remove("apy_expanding_std")

    with pytest.raises(publication.FeatureContractError, match="apy_expanding_std"):
        publication.score_published(
            model, table(5, edit=drop), dt.datetime(2025, 6, 6, tzinfo=dt.UTC), 48
        )


def test_published_feature_types_must_match_the_model(loaded):
    model, _ = loaded

    def retype(columns, contract):
        contract["numeric"].remove("apy_expanding_std")
        contract["categorical"].append("apy_expanding_std")

    with pytest.raises(publication.FeatureContractError, match="apy_expanding_std"):
        publication.score_published(
            model, table(5, edit=retype), dt.datetime(2025, 6, 6, tzinfo=dt.UTC), 48
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


def test_the_core_imports_no_pandas_scikit_learn_scipy_or_joblib(tiny_run):
    """Scoring and explaining a run in a fresh interpreter loads none of them."""
    code = (
        "import sys, json, inference.handler, inference.service\n"
        "from inference import features, publication\nfrom inference.model import portable\n"
        f"run = {str(tiny_run)!r}\n"
        "doc = json.load(open(run + '/model_spec.json'))\n"
        "data = open(run + '/model_arrays.npz', 'rb').read()\n"
        "model = portable.load(doc, portable.read_arrays(data))\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'pandas', 'pyarrow', 'sklearn', 'scipy', 'joblib'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_binary_file_and_http_rows_give_the_same_probabilities(loaded):
    """Two input paths, one model: the features file (codes recoded into the
    model's vocabularies) and JSON rows (strings looked up) agree exactly."""
    model, _ = loaded
    published = table(120)
    numeric, codes = scoring.table_inputs(model, published)
    from_table = scoring.score_inputs(model, numeric, codes).proba
    rows = [
        {
            name: (None if isinstance(v, float) and math.isnan(v) else v)
            for name, v in (
                (
                    name,
                    published.numeric_column(name)[i].item()
                    if name in model.spec.numeric_features
                    else published.text_column(name)[i],
                )
                for name in FEATURES
            )
        }
        for i in range(published.row_count)
    ]
    assert any(r["chain"] is None for r in rows) and any(
        r["apy_expanding_std"] is None for r in rows
    )
    np.testing.assert_array_equal(
        np.asarray(scoring.score_rows(model, rows)["predictions"]), from_table
    )


def test_contributions_beyond_the_path_table_budget_are_the_same(tiny_run, monkeypatch):
    """A forest whose path tables would not fit PATH_TABLES_MAX_VALUES (a
    prototype-sized one) builds them per call and keeps none: same values."""
    document = json.loads((tiny_run / "model_spec.json").read_text())
    data = (tiny_run / "model_arrays.npz").read_bytes()
    model = portable.load(document, portable.read_arrays(data))
    assert model.kind == "forest"
    numeric, codes = scoring.table_inputs(model, table(60))
    kept = model.score(model.encode(numeric, codes), explain=True).contributions
    assert [key for key in model.path_tables if key != "values"]  # within the budget
    monkeypatch.setattr(portable, "PATH_TABLES_MAX_VALUES", 0)
    fresh = portable.load(document, portable.read_arrays(data))
    again = fresh.score(fresh.encode(numeric, codes), explain=True).contributions
    assert not [key for key in fresh.path_tables if key != "values"]
    assert np.array_equal(kept, again) and np.any(kept != 0)
