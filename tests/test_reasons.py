"""Reasons: the top contributions by size and their phrases."""

from __future__ import annotations

import json
import math

import golden
import numpy as np
import pytest

from inference import reasons

FEATURES = json.loads(golden.inputs()["feature_columns"].read_text())["features"]


def test_every_published_feature_has_its_own_phrase():
    generic = [name for name in FEATURES if not reasons.phrase_for(name)[1]]
    assert not generic, f"add a phrase rule in inference/reasons.py for {generic}"


@pytest.mark.parametrize(
    "feature, value, companions, text",
    [
        ("apy_relative_to_rolling_90d_mean", 1.4, (), "apy is 2.4x its 90-day mean"),
        ("apy_relative_to_expanding_mean", -0.79, (), "apy is 0.21x its all-time mean"),
        ("apy_reward_share", 0.85, (0.2,), "reward share 85%, up 20 points in 30 days"),
        ("apy_reward_share", 0.85, (None,), "reward share 85%"),
        ("apy_reward_share_change_7d", -0.1, (0.4,), "reward share 40%, down 10 points in 7 days"),
        ("tvl_usd_change_7d", -0.31, (), "TVL -31% in 7 days"),
        ("tvl_usd_change_1d", 0.034, (), "TVL +3% in 1 day"),
        ("apy_change_30d", -5.12, (), "APY -5.1 points in 30 days"),
        ("tvl_usd", 50_711_992.0, (), "TVL $50.7M"),
        ("tvl_usd_log", math.log1p(2.5e9), (), "TVL $2.5B"),
        ("apy", 5.713, (), "APY 5.7%"),
        ("apy_rolling_14d_max", 13.93, (), "14-day highest APY 13.9%"),
        ("apy_rolling_30d_std", 8.9, (), "30-day APY std 8.9 points"),
        ("observed_day_rolling_90d_share", 1.0, (), "observed 100% of the last 90 days"),
        ("apy_project_percent_rank", 0.75, (), "APY above 75% of its project's pools"),
        ("apy_chain_median_ratio", 0.58, (), "APY 0.58x its chain's median"),
        ("chain_pool_count", 15, (), "15 pools on its chain"),
        ("pool_age_days", 199, (), "pool 199 days old"),
        ("chain", "Optimism", (), "chain Optimism"),
        ("exposure", "multi", (), "multi-asset exposure"),
        ("apy_reward_share", math.nan, (None,), "reward share unknown"),
        ("apy_reward_share_change_30d", 0.05, (math.nan,), "reward share up 5 points in 30 days"),
        ("apy_reward_share_change_7d", math.nan, (0.3,), "reward share change over 7 days unknown"),
        ("tvl_usd_change_30d", math.nan, (), "TVL change over 30 days unknown"),
        ("project", None, (), "project unknown"),
        ("a_new_feature", 0.123456, (), "a_new_feature = 0.1235"),
    ],
)
def test_phrases_show_the_value(feature, value, companions, text):
    phrase, _ = reasons.phrase_for(feature)
    assert reasons.render(phrase, value, companions) == text


def test_top_takes_the_largest_by_size_largest_first():
    contributions = np.array(
        [
            [0.1, -0.5, 0.3, 0.0],
            [0.0, 0.0, 0.0, 0.2],
            [0.2, -0.2, 0.2, 0.1],  # ties: the earlier feature first
        ]
    )
    indices, values = reasons.top(contributions, 3)
    assert indices.tolist() == [[1, 2, 0], [3, 0, 1], [0, 1, 2]]
    assert values.tolist() == [[-0.5, 0.3, 0.1], [0.2, 0.0, 0.0], [0.2, -0.2, 0.2]]
    assert reasons.top(contributions[:, :2], 3)[0].shape == (3, 2)


def test_explain_renders_each_rows_reasons_and_leaves_out_zeros():
    features = [
        "apy",
        "tvl_usd_change_7d",
        "apy_reward_share",
        "apy_reward_share_change_30d",
        "chain",
    ]
    values = {
        "apy": np.array([5.0, 7.5]),
        "tvl_usd_change_7d": np.array([-0.31, np.nan]),
        "apy_reward_share": np.array([0.85, 0.1]),
        "apy_reward_share_change_30d": np.array([0.2, np.nan]),
        "chain": ["Base", None],
    }
    contributions = np.array([[0.01, -0.2, 0.05, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, -0.3]])
    explained, texts = reasons.explain(features, contributions, values.__getitem__)
    assert explained[0] == [
        {"feature": "tvl_usd_change_7d", "text": "TVL -31% in 7 days", "contribution": -0.2},
        {
            "feature": "apy_reward_share",
            "text": "reward share 85%, up 20 points in 30 days",
            "contribution": 0.05,
        },
        {"feature": "apy", "text": "APY 5.0%", "contribution": 0.01},
    ]
    assert explained[1] == [{"feature": "chain", "text": "chain unknown", "contribution": -0.3}]
    assert texts == [[r["text"] for r in row] for row in explained]  # the ledger's
