"""Candidate feature groups (issue 22 item 3: the market regime) ship only when
the run's own walk-forward folds show a gain: a group of noise is dropped from
every model of the run, a group that carries signal is kept, and the run's
metadata records both decisions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fixtures.synthetic import make_training_set

from models_py import config
from models_py.ablation import gate_candidate_groups
from models_py.data import prepare
from models_py.training import Settings, _split_and_folds, train_models

MARKET = ["market_apy_drop_share_30d", "market_apy_change_30d_median"]


def _data(informative: bool):
    frame, contract = make_training_set(n_pools=40, n_days=200, seed=5)
    days = pd.to_datetime(frame["snapshot_date"])
    rng = np.random.default_rng(1)
    regime = dict(zip(days.unique(), rng.uniform(0, 0.8, days.nunique()), strict=True))
    share = days.map(regime).to_numpy().copy()  # the same for every pool of the day
    if informative:  # on a day of a bad market, more pools lose their APY
        lost = rng.uniform(size=len(frame)) < share
        frame["is_apy_kept"] = np.where(lost, 0, frame["is_apy_kept"])
    else:  # the market moves, but the labels do not follow it
        rng.shuffle(share)
    frame[MARKET[0]] = share
    frame[MARKET[1]] = -share
    contract["numeric"] = [*contract["numeric"], *MARKET]
    return prepare(frame, contract)


@pytest.mark.parametrize("informative", [False, True])
def test_the_market_regime_ships_only_with_a_gain_on_the_folds(informative):
    data = _data(informative)
    settings = Settings(rf_trees=10)
    split, _, folds, _ = _split_and_folds(data, settings)
    gated, decisions = gate_candidate_groups(
        data, split.train_index, folds, settings.rf_candidates[0], settings.rf_trees
    )
    (decision,) = decisions
    assert decision["group"] == "market regime" and decision["features"] == MARKET
    assert decision["gain"] == pytest.approx(decision["auc_with"] - decision["auc_without"])
    assert decision["margin"] >= config.ABLATION_NO_COST
    assert decision["kept"] is informative
    assert decision["kept"] == (decision["gain"] > decision["margin"])
    if informative:
        assert gated is data and set(MARKET) <= set(gated.features)
    else:
        assert not set(MARKET) & set(gated.features)
        assert gated.features == [f for f in data.features if f not in MARKET]
        assert len(gated.y) == len(data.y)


def test_a_run_without_candidate_features_has_no_gate():
    frame, contract = make_training_set(n_pools=20, n_days=200, seed=2)
    data = prepare(frame, contract)
    settings = Settings(rf_trees=5)
    split, _, folds, _ = _split_and_folds(data, settings)
    gated, decisions = gate_candidate_groups(data, split.train_index, folds, {}, 5)
    assert gated is data and decisions == []


def test_a_dropped_group_is_left_out_of_every_model_of_the_run():
    result = train_models(
        _data(informative=False),
        Settings(rf_trees=5, models=("random_forest", "logistic"), backtest=False),
    )
    (decision,) = result.feature_gates
    assert decision["kept"] is False
    assert not set(MARKET) & set(result.recipe.features)
    assert not set(MARKET) & set(result.data.features)
    for name in ("random_forest", "logistic"):  # fitted on the gated columns only
        assert result.results[name].pipeline.n_features_in_ == len(result.data.features), name
    assert len(result.data.features) == len(_data(informative=False).features) - len(MARKET)
