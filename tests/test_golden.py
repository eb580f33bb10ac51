"""Today's code against the golden fixture: the same inputs give the same
predictions (to 1e-12) and the same AUCs as when the fixture was recorded.

The confidence bin may differ only where a probability sits exactly on a
cut-point (the tie rule is the one shared bin function's).
"""

from __future__ import annotations

import json

import golden
import numpy as np
import pytest

from inference import contracts

EXPECTED = json.loads((golden.GOLDEN / "expected.json").read_text())
TOLERANCE = 1e-12


@pytest.fixture(scope="module")
def served():
    return golden.serve(
        golden.GOLDEN / "run",
        golden.features_payload(),
        golden.features_file(),
        http_rows=EXPECTED["serving"]["http_rows"],
    )


def test_serving_gives_the_recorded_predictions(served):
    """Every pool scored when the fixture was recorded is scored alike today,
    except pools silent for more than a week: the trust issue made those
    abstain ("not scored", reason inactive), so they are checked for that."""
    want = EXPECTED["serving"]
    inactive = {
        p["pool_id"]
        for p in served["published"]["predictions"]
        if p["reason_code"] == contracts.NOT_SCORED_INACTIVE
    }
    assert all(
        p["inactive_days"] > contracts.POOL_INACTIVE_AFTER_DAYS
        for p in served["published"]["predictions"]
        if p["pool_id"] in inactive
    )
    assert served["counts"]["pools"] == want["counts"]["pools"]
    assert served["counts"]["scored"] == want["counts"]["scored"] - len(inactive)
    assert served["raw_p_keep"].keys() == want["raw_p_keep"].keys() - inactive
    worst = max(abs(served["raw_p_keep"][k] - want["raw_p_keep"][k]) for k in served["raw_p_keep"])
    assert worst <= TOLERANCE
    cutpoints = want["cutpoints"]
    for got, rec in zip(served["records"], want["records"], strict=True):
        if rec["pool_id"] in inactive:
            assert got["status"] == "not scored" and got["p_keep"] is None
            continue
        assert {k: got[k] for k in ("pool_id", "status", "reason", "predicted_class")} == {
            k: rec[k] for k in ("pool_id", "status", "reason", "predicted_class")
        }
        if rec["p_keep"] is None:
            assert got["p_keep"] is None
            continue
        assert abs(got["p_keep"] - rec["p_keep"]) <= TOLERANCE
        shown = 100 * max(rec["p_keep"], 1 - rec["p_keep"])
        if got["binned_confidence"] != rec["binned_confidence"]:
            assert any(abs(shown - c) < 1e-9 for c in cutpoints), rec


def test_the_served_document_names_its_cutpoints_words_and_provenance(served):
    """The hourly document carries the hour's confidence cut-points, the words
    and levels in use and where the training data came from (issue 22)."""
    assert served["document"] == EXPECTED["serving"]["document"]
    assert served["document"]["confidence_cutpoints"] == EXPECTED["serving"]["cutpoints"]
    assert served["document"]["data_provenance"]["kind"] == "generated"
    # the hour's cut-points: the spec's levels as quantiles of the hour's scored pools
    levels = served["document"]["confidence"]["levels"]
    shown = [
        p["predicted_probability"]
        for p in served["published"]["predictions"]
        if p["status"] == "scored"
    ]
    unrounded = [100 * max(p, 1 - p) for p in served["raw_p_keep"].values()]
    assert len(shown) >= contracts.CONFIDENCE_HOUR_MIN_POOLS
    assert served["document"]["confidence_cutpoints"] == pytest.approx(
        np.quantile(unrounded, levels).tolist(), abs=1e-9
    )
    bins = [p["binned_confidence"] for p in served["published"]["predictions"] if p["p_keep"]]
    assert sorted(set(bins)) == [1, 2, 3]


def test_http_scoring_gives_the_recorded_predictions(served):
    want = EXPECTED["serving"]
    for got, rec in zip(served["http_predictions"], want["http_predictions"], strict=True):
        assert abs(got[0] - rec[0]) <= TOLERANCE and abs(got[1] - rec[1]) <= TOLERANCE


@pytest.mark.slow
def test_training_gives_the_recorded_aucs():
    result = golden.train()
    got, want = golden.training_metrics(result), EXPECTED["training"]
    assert got["production"] == want["production"]
    assert got["models"].keys() == want["models"].keys()
    for name, metrics in want["models"].items():
        for key, value in metrics.items():
            assert abs(got["models"][name][key] - value) <= TOLERANCE * max(1, abs(value)), (
                name,
                key,
            )
