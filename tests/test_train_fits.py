"""Training fits each (model, rows) once (issue 24 item 3): sharing the fits
between settings choice, calibration choice, the evaluated fit and the
backtest gives the same results as fitting each again, within 1e-12."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures.synthetic import make_training_set
from sklearn.base import clone

from models_py.data import prepare
from models_py.fits import FitCache
from models_py.training import Settings, train_models

pytestmark = pytest.mark.slow
TOLERANCE = 1e-12


def _train(share: bool, calibration: str):
    frame, contract = make_training_set(n_pools=40, n_days=200, seed=11)
    settings = Settings(rf_trees=10, share_fits=share, calibration=calibration)
    return train_models(prepare(frame, contract), settings)


def _close(a, b) -> bool:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= TOLERANCE))


@pytest.mark.parametrize("calibration", ["auto", "isotonic"])
def test_shared_fits_give_the_unshared_results(calibration):
    shared, unshared = _train(True, calibration), _train(False, calibration)
    assert shared.production == unshared.production
    assert shared.recipe == unshared.recipe
    for name, result in unshared.results.items():
        other = shared.results[name]
        assert _close(other.cv["fold_auc"], result.cv["fold_auc"]), name
        assert _close(other.p_test, result.p_test), name
    assert [r["log_loss"] for r in shared.calibration.table] == pytest.approx(
        [r["log_loss"] for r in unshared.calibration.table], abs=TOLERANCE
    )
    assert [r["cv_auc_mean"] for r in shared.rf_selection] == pytest.approx(
        [r["cv_auc_mean"] for r in unshared.rf_selection], abs=TOLERANCE
    )
    X = shared.data.matrix(shared.recipe.features)
    for model in ("evaluated_model", "shipped_model"):
        assert _close(
            getattr(shared, model).predict_proba(X)[:, 1],
            getattr(unshared, model).predict_proba(X)[:, 1],
        ), model
    assert _close(shared.backtest.predictions["p_keep"], unshared.backtest.predictions["p_keep"])
    # (a forest's predict_proba sums its trees in threads: the last bit may differ)
    assert _same(shared.backtest.months, unshared.backtest.months)
    assert _same(shared.confidence, unshared.confidence)
    assert _same(shared.quality, unshared.quality)


def _same(a, b) -> bool:
    """Equal, numbers within TOLERANCE (NaN equals NaN), through dicts and lists."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and not isinstance(a, bool):
        return (np.isnan(a) and np.isnan(b)) or abs(a - b) <= TOLERANCE
    return a == b


def test_the_cache_shares_a_fit_only_for_the_same_model_and_rows():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    cache = FitCache()
    X = np.random.default_rng(0).normal(size=(100, 2))
    y = (X[:, 0] > 0).astype(int)
    pipeline = Pipeline([("classifier", LogisticRegression())])
    rows = np.arange(80)
    first = cache.fit("m", pipeline, rows, X, y, rows)
    assert cache.fit("m", pipeline, rows, X[:0], y[:0], rows[:0]) is first  # not refitted
    other = cache.fit("m", pipeline, rows[:70], X, y, rows[:70])
    assert other is not first
    stronger = Pipeline([("classifier", LogisticRegression(C=0.1))])
    assert cache.fit("m", stronger, rows, X, y, rows) is not first
    assert cache.fit("n", pipeline, rows, X, y, rows) is not first
    assert (cache.hits, cache.fits) == (1, 4)


def test_forests_on_the_same_rows_share_one_preprocessing_and_fit_as_the_pipeline_does():
    from models_py.pipelines import build_pipeline

    rng = np.random.default_rng(3)
    n = 400
    X = np.empty((n, 3), dtype=object)
    X[:, 0] = rng.normal(size=n)
    X[:, 1] = np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n))
    X[:, 2] = rng.choice(["ethereum", "arbitrum", "base"], n)
    y = (X[:, 0].astype(float) + rng.normal(scale=0.5, size=n) > 0).astype(int)
    features, categorical = ["a", "b", "chain"], ["chain"]
    rows = np.arange(300)
    cache = FitCache()
    for params in ({"min_samples_leaf": 5}, {"min_samples_leaf": 20, "max_depth": 4}):
        pipeline = build_pipeline("random_forest", features, categorical, params, 7)
        shared = cache.fit("m", pipeline, rows, X, y, rows)
        plain = clone(pipeline).fit(X[rows], y[rows])
        # (the forest sums its trees in thread order: equal to the last bits only)
        np.testing.assert_allclose(
            shared.predict_proba(X[300:]), plain.predict_proba(X[300:]), atol=1e-12
        )
    assert (cache.fits, cache.preprocess_hits) == (2, 1)
    logistic = build_pipeline("logistic", features, categorical)
    cache.fit("m", logistic, rows, X, y, rows)  # another preprocessing: not shared
    assert cache.preprocess_hits == 1
