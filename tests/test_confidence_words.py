"""Confidence words (issue 22 item 2): levels chosen on a held-out block, each
date binned by its own quantiles at them (contracts.hour_cutpoints, as the
Lambda bins an hour); bins of at least the minimum share whose hit rates rise
from Low to High, else fewer words with the reason; one bin function."""

from __future__ import annotations

import numpy as np
import pytest

from inference import contracts
from inference.model.artefact import ModelIntegrityError, ModelSpec
from inference.scoring import binned_by_hour
from models_py import config
from models_py.confidence import ONE_WORD_CUTPOINTS, choose_cutpoints, hit_rate_table

DAYS = np.arange("2025-01-01", "2025-03-02", dtype="datetime64[D]")


def _block(n: int, signal: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.0, 1.0, n)
    y = (rng.uniform(0.0, 1.0, n) < p) if signal else rng.integers(0, 2, n)
    return np.asarray(y, dtype=int), p, rng.choice(DAYS, n)


def _rates(y, p, bins) -> list[float]:
    table = hit_rate_table(y, p, bins).set_index("confidence")
    assert min(table.loc[["Low", "Medium", "High"], "share"]) >= config.CONFIDENCE_MIN_SHARE
    return table.loc[["Low", "Medium", "High"], "hit_rate"].tolist()


def test_informative_probabilities_get_three_words_that_separate():
    y, p, days = _block(4000, signal=True)
    chosen = choose_cutpoints(y, p, days)
    assert chosen["words"] == ["Low", "Medium", "High"] and chosen["reason"] is None
    low_level, high_level = chosen["levels"]
    assert 0 < low_level < high_level < 1
    low, high = chosen["cutpoints"]  # the block-wide quantiles: a thin hour's fallback
    assert 50.0 <= low < high <= 100.0
    shown = contracts.predicted_probability(p)
    assert [low, high] == pytest.approx(np.quantile(shown, chosen["levels"]), abs=1e-9)
    bins, _, _ = binned_by_hour(p, days, chosen["levels"], chosen["cutpoints"])
    rates = _rates(y, p, bins)
    assert rates[0] < rates[1] < rates[2]
    assert rates == pytest.approx(chosen["held_out_hit_rates"])


def test_a_base_rate_that_moves_between_months_does_not_scramble_the_words():
    """Two months: the model ranks pools well within each, but its probabilities
    are far too low in the second (its share kept jumped). Fixed cut-points put
    the second month's confident 'Down' calls, mostly wrong, in High; each
    hour's own quantiles keep High the most right in both months."""
    rng = np.random.default_rng(7)
    n = 3000
    days = np.concatenate([rng.choice(DAYS[:28], n), rng.choice(DAYS[31:], n)])
    rank = rng.uniform(0, 1, 2 * n)
    p_true = np.concatenate([0.15 + 0.7 * rank[:n], 0.55 + 0.44 * rank[n:]])
    y = (rng.uniform(0, 1, 2 * n) < p_true).astype(int)
    p_model = np.concatenate([p_true[:n], p_true[n:] - 0.5])  # too low in month 2
    fixed = contracts.confidence_bin(contracts.predicted_probability(p_model), (70.0, 85.0))
    fixed_rates = hit_rate_table(y, p_model, fixed).set_index("confidence")["hit_rate"]
    assert fixed_rates["High"] < fixed_rates["Medium"]  # the scramble
    bins, low, high = binned_by_hour(p_model, days, (0.3, 0.7), (70.0, 85.0))
    rates = _rates(y, p_model, bins)
    assert rates[0] < rates[1] < rates[2]
    assert len(np.unique(low)) > 1 and np.all(low <= high)  # cut-points of each day


def test_noise_gets_fewer_words_and_says_why():
    y, p, days = _block(4000, signal=False, seed=1)
    chosen = choose_cutpoints(y, p, days)
    assert len(chosen["words"]) < 3 and "no two levels" in chosen["reason"]
    if chosen["words"] == ["Low", "High"]:
        assert chosen["levels"][0] == chosen["levels"][1]  # the middle bin is empty
        assert chosen["held_out_hit_rates"][0] < chosen["held_out_hit_rates"][1]
    else:
        assert chosen["levels"] is None


def test_a_block_too_small_gets_one_word_for_every_probability():
    y, p, days = _block(20, signal=True)
    chosen = choose_cutpoints(y, p, days)
    assert chosen["words"] == ["Medium"] and chosen["cutpoints"] == list(ONE_WORD_CUTPOINTS)
    assert chosen["levels"] is None
    shown = contracts.predicted_probability(np.clip(p, 0.01, 0.99))
    shown = shown[shown > 50.0]
    assert set(np.unique(contracts.confidence_bin(shown, chosen["cutpoints"]))) == {2}


def test_an_hours_cutpoints_are_its_quantiles_or_the_stored_ones_when_thin():
    shown = contracts.predicted_probability(np.random.default_rng(3).uniform(0, 1, 500))
    cut = contracts.hour_cutpoints(shown, (0.2, 0.9), (60.0, 80.0))
    assert cut == pytest.approx(tuple(np.quantile(shown, (0.2, 0.9))), abs=1e-12)
    assert contracts.hour_cutpoints(list(shown), (0.2, 0.9), (60.0, 80.0)) == cut
    few = shown[: contracts.CONFIDENCE_HOUR_MIN_POOLS - 1]
    assert contracts.hour_cutpoints(few, (0.2, 0.9), (60.0, 80.0)) == (60.0, 80.0)
    assert contracts.hour_cutpoints(shown, None, (60.0, 80.0)) == (60.0, 80.0)
    assert contracts.hour_cutpoints([], (0.2, 0.9), (60.0, 80.0)) == (60.0, 80.0)


def _spec(levels) -> dict:
    return {
        "model_id": "m",
        "features": ["apy"],
        "numeric_features": ["apy"],
        "categorical_features": [],
        "confidence_cutpoints": [60.0, 80.0],
        "confidence": {"words": ["Low", "Medium", "High"], "reason": None, "levels": levels},
    }


@pytest.mark.parametrize(
    "levels", [[0.9, 0.2], [0.2], [-0.1, 0.5], [0.2, 1.5], ["0.2", 0.8], [True, 0.8], 0.5]
)
def test_the_spec_refuses_levels_that_are_not_two_ascending_quantile_levels(levels):
    with pytest.raises(ModelIntegrityError, match=r"confidence\.levels"):
        ModelSpec.from_metadata(_spec(levels))


def test_a_spec_serves_each_hour_by_its_levels_or_by_the_stored_cutpoints():
    spec = ModelSpec.from_metadata(_spec([0.25, 0.75]))
    shown = np.linspace(50, 100, 101)
    assert spec.hour_cutpoints(shown) == pytest.approx((62.5, 87.5))
    assert spec.hour_cutpoints(shown[:5]) == (60.0, 80.0)
    old = ModelSpec.from_metadata({**_spec(None), "confidence": None})
    assert old.levels is None and old.hour_cutpoints(shown) == (60.0, 80.0)
