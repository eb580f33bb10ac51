"""The model pipelines: integer selectors over the ordered object matrix,
missing/unseen categories, the anchor's ordinal encoding, the calibrated recipe."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures.synthetic import make_training_set

from inference.contracts import confidence_bin, predicted_probability
from models_py import config
from models_py.data import prepare
from models_py.evaluate import confidence_cutpoints, hit_rate_by_confidence
from models_py.pipelines import build_pipeline, heuristic_score
from models_py.recipe import Recipe, fit_recipe
from models_py.splits import calibration_split


@pytest.fixture(scope="module")
def data():
    frame, contract = make_training_set(n_pools=20, n_days=90, seed=5)
    return prepare(frame, contract)


@pytest.mark.parametrize("name", config.MODEL_NAMES)
def test_every_model_scores_missing_and_unseen_categories(data, name):
    X, y = data.matrix(), data.y
    model = build_pipeline(
        name, data.features, data.categorical, {"min_samples_leaf": 5}, n_estimators=5
    ).fit(X, y)
    odd = X[:3].copy()
    odd[0, data.features.index("chain")] = None
    odd[1, data.features.index("project")] = "brand-new-project"
    odd[2, data.features.index("chain")] = np.nan
    odd[2, data.features.index("apy_expanding_std")] = np.nan
    proba = model.predict_proba(odd)
    assert proba.shape == (3, 2) and np.all((proba >= 0) & (proba <= 1))
    assert list(model.classes_) == [0, 1]


def test_anchor_uses_six_features_and_codes_unseen_categories_as_minus_one(data):
    X, y = data.matrix(), data.y
    anchor = build_pipeline("anchor", data.features, data.categorical, n_estimators=5).fit(X, y)
    preprocess = anchor.named_steps["preprocess"]
    used = [c for name, _, cols in preprocess.transformers_ if name != "remainder" for c in cols]
    assert sorted(data.features[i] for i in used) == sorted(config.ANCHOR_FEATURES)
    row = X[:1].copy()
    row[0, data.features.index("project")] = "brand-new-project"
    encoded = preprocess.transform(row)
    assert encoded.shape == (1, 6)
    assert encoded[0, -1] == -1  # project is the last anchor column
    assert encoded[0, -2] >= 0  # a seen chain keeps its code


def test_anchor_needs_its_features():
    with pytest.raises(ValueError, match="tvl_usd"):
        build_pipeline(
            "anchor",
            ["apy", "apy_expanding_mean", "apy_expanding_std", "chain", "project"],
            ["chain", "project"],
        )
    with pytest.raises(ValueError, match="unknown model"):
        build_pipeline("xgboost", ["apy"], [])


def test_heuristic_scores_apy_above_its_history_higher():
    X = np.array([[10.0, 5.0], [5.0, 5.0], [2.0, 5.0], [np.nan, 5.0], [3.0, 0.0]], dtype=object)
    score = heuristic_score(X).ravel()
    assert score[0] > score[1] == 0 > score[2]
    assert score[3] == 0 and score[4] == 0  # missing / undefined -> at its mean


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_a_calibrated_recipe_trains_before_and_calibrates_on_its_last_dates(data, method):
    recipe = Recipe(
        "random_forest",
        tuple(data.numeric),
        tuple(data.categorical),
        {"min_samples_leaf": 5},
        rf_trees=5,
        calibration=method,
    )
    X, y, rows = data.matrix(), data.y, np.arange(len(data.y))
    model = fit_recipe(recipe, X, y, data.dates, data.label_end_dates, rows)
    fit_pos, cal_pos = calibration_split(data.dates, data.label_end_dates, rows, 0.2)
    forest = model.estimator.named_steps["classifier"]
    assert forest.n_features_in_ == model.estimator[:-1].transform(X[:1]).shape[1]
    # the forest saw only the purged rows before the calibration block
    assert data.label_end_dates[fit_pos].max() < data.dates[cal_pos].min()
    assert model.method == method and model.calibrator is not None
    p = model.predict_proba(X[:50])[:, 1]
    assert np.all((p >= model.low) & (p <= model.high)) and 0 < model.low < model.high < 1


def test_confidence_bins_follow_the_stored_cutpoints():
    p_keep = np.array([0.5, 0.4, 0.7, 0.2, 0.95, 0.05])
    np.testing.assert_allclose(predicted_probability(p_keep), [50, 60, 70, 80, 95, 95])
    cut = confidence_cutpoints(p_keep)
    assert cut == pytest.approx(np.quantile([50, 60, 70, 80, 95, 95], [1 / 3, 2 / 3]))
    np.testing.assert_array_equal(
        confidence_bin(predicted_probability(p_keep), [65, 85]), [1, 1, 2, 2, 3, 3]
    )
    y = np.array([1, 0, 1, 1, 1, 0])
    table = hit_rate_by_confidence(y, p_keep, [65, 85])
    # bin 1: 0.5 -> Down (p_down >= p_keep) wrong, 0.4 -> Down right; bin 3: both right
    assert table["hit_rate"].tolist() == [0.5, 0.5, 1.0]
