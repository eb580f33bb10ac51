"""Confidence cut-points chosen on a held-out block (issue 22 item 2): bins of
at least the minimum share whose hit rates rise from Low to High, else fewer
words with the reason; binned by the one bin function."""

from __future__ import annotations

import numpy as np

from inference import contracts
from models_py import config
from models_py.confidence import ONE_WORD_CUTPOINTS, choose_cutpoints, hit_rate_table


def _block(n: int, signal: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.0, 1.0, n)
    y = (rng.uniform(0.0, 1.0, n) < p) if signal else rng.integers(0, 2, n)
    return np.asarray(y, dtype=int), p


def test_informative_probabilities_get_three_words_that_separate():
    y, p = _block(4000, signal=True)
    chosen = choose_cutpoints(y, p)
    assert chosen["words"] == ["Low", "Medium", "High"] and chosen["reason"] is None
    low, high = chosen["cutpoints"]
    assert 50.0 <= low < high <= 100.0
    bins = contracts.confidence_bin(contracts.predicted_probability(p), chosen["cutpoints"])
    table = hit_rate_table(y, p, bins).set_index("confidence")
    assert min(table.loc[["Low", "Medium", "High"], "share"]) >= config.CONFIDENCE_MIN_SHARE
    rates = table.loc[["Low", "Medium", "High"], "hit_rate"].tolist()
    assert rates[0] < rates[1] < rates[2]
    assert table.loc["all", "rows"] == len(y)
    assert abs(table.loc["all", "always_stable_up"] - y.mean()) < 1e-12


def test_noise_gets_fewer_words_and_says_why():
    y, p = _block(4000, signal=False, seed=1)
    chosen = choose_cutpoints(y, p)
    assert len(chosen["words"]) < 3 and "no two cut-points" in chosen["reason"]
    if chosen["words"] == ["Low", "High"]:
        low, high = chosen["cutpoints"]
        assert low == high  # the middle bin is empty
        assert chosen["held_out_hit_rates"][0] < chosen["held_out_hit_rates"][1]


def test_a_block_too_small_gets_one_word_for_every_probability():
    y, p = _block(20, signal=True)
    chosen = choose_cutpoints(y, p)
    assert chosen["words"] == ["Medium"] and chosen["cutpoints"] == list(ONE_WORD_CUTPOINTS)
    shown = contracts.predicted_probability(np.clip(p, 0.01, 0.99))
    shown = shown[shown > 50.0]
    assert set(np.unique(contracts.confidence_bin(shown, chosen["cutpoints"]))) == {2}
