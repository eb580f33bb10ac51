"""Reasons for each prediction: the largest contributions (by size) and a
short phrase with the pool's value for each, e.g. ``apy is 2.4x its 90-day
mean``, ``reward share 85%, up 20 points in 30 days``, ``TVL -31% in 7 days``.

The contributions come from the portable model (inference/portable.py: tree
path contributions of a forest, coefficient x transformed value of a linear
model), already folded into source features. The phrases show the pool's own
(unimputed) value; a missing value reads "... unknown".

Phrases are chosen by the feature's name (the window conventions of
dbt_project/README.md); a feature no rule knows reads ``name = value``, and
tests/test_reasons.py fails on any published feature without its own phrase.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from inference import contracts


def _pct(v: float) -> str:
    return f"{v:,.1f}%"


def _points(v: float) -> str:
    return f"{v:+,.1f} points"


def _ratio(v: float) -> str:
    return f"{v:,.2g}x" if abs(v) < 10 else f"{v:,.0f}x"


def _share(v: float) -> str:
    return f"{100 * v:.0f}%"


def _change(v: float) -> str:
    return f"{100 * v:+,.0f}%"


def _money(v: float) -> str:
    size = abs(v)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if size >= limit:
            return f"${v / limit:,.1f}{suffix}"
    return f"${v:,.0f}"


def _days(n: str) -> str:
    return "1 day" if n == "1" else f"{n} days"


@dataclass(frozen=True)
class Phrase:
    """How one feature reads: `label` alone when the value is missing, else
    `render(value, companions)` (companions: the values of `needs`, or None)."""

    label: str
    render: Callable[[Any, tuple], str]
    needs: tuple[str, ...] = ()


def _reward_share(window: str | None) -> Callable[[Any, tuple], str]:
    def render(value: Any, companions: tuple) -> str:
        share, change = (value, companions[0]) if window is None else (companions[0], value)
        text = "reward share" if _missing(share) else f"reward share {_share(share)}"
        if window is not None or not _missing(change):
            days = _days(window or "30")
            direction = "up" if change >= 0 else "down"
            text += f", {direction} {abs(100 * change):.0f} points in {days}"
        return text

    return render


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


_GROUP = {"project": "its project's", "chain": "its chain's"}
_AGG = {"mean": "mean", "median": "median", "min": "lowest", "max": "highest"}

# (pattern on the feature name, phrase for the match)
RULES: tuple[tuple[str, Callable[[re.Match], Phrase]], ...] = (
    (r"apy", lambda m: Phrase("APY", lambda v, c: f"APY {_pct(v)}")),
    (r"apy_base", lambda m: Phrase("base APY", lambda v, c: f"base APY {_pct(v)}")),
    (r"apy_reward", lambda m: Phrase("reward APY", lambda v, c: f"reward APY {_pct(v)}")),
    (r"tvl_usd", lambda m: Phrase("TVL", lambda v, c: f"TVL {_money(v)}")),
    (r"tvl_usd_log", lambda m: Phrase("TVL", lambda v, c: f"TVL {_money(math.expm1(v))}")),
    (
        r"apy_expanding_mean",
        lambda m: Phrase("all-time mean APY", lambda v, c: f"all-time mean APY {_pct(v)}"),
    ),
    (
        r"apy_expanding_std",
        lambda m: Phrase("all-time APY spread", lambda v, c: f"all-time APY std {v:,.1f} points"),
    ),
    (
        r"apy_relative_to_expanding_mean",
        lambda m: Phrase(
            "apy vs its all-time mean", lambda v, c: f"apy is {_ratio(v + 1)} its all-time mean"
        ),
    ),
    (
        r"apy_relative_to_rolling_(\d+)d_mean",
        lambda m: Phrase(
            f"apy vs its {m[1]}-day mean",
            lambda v, c: f"apy is {_ratio(v + 1)} its {m[1]}-day mean",
        ),
    ),
    (
        r"apy_rolling_(\d+)d_(mean|median|min|max)",
        lambda m: Phrase(
            f"{m[1]}-day {_AGG[m[2]]} APY", lambda v, c: f"{m[1]}-day {_AGG[m[2]]} APY {_pct(v)}"
        ),
    ),
    (
        r"apy_rolling_(\d+)d_std",
        lambda m: Phrase(
            f"{m[1]}-day APY spread", lambda v, c: f"{m[1]}-day APY std {v:,.1f} points"
        ),
    ),
    (
        r"apy_base_rolling_(\d+)d_mean",
        lambda m: Phrase(
            f"{m[1]}-day mean base APY", lambda v, c: f"{m[1]}-day mean base APY {_pct(v)}"
        ),
    ),
    (
        r"apy_base_rolling_(\d+)d_std",
        lambda m: Phrase(
            f"{m[1]}-day base APY spread",
            lambda v, c: f"{m[1]}-day base APY std {v:,.1f} points",
        ),
    ),
    (
        r"apy_change_(\d+)d",
        lambda m: Phrase(
            f"APY change over {_days(m[1])}", lambda v, c: f"APY {_points(v)} in {_days(m[1])}"
        ),
    ),
    (
        r"tvl_usd_change_(\d+)d",
        lambda m: Phrase(
            f"TVL change over {_days(m[1])}", lambda v, c: f"TVL {_change(v)} in {_days(m[1])}"
        ),
    ),
    (
        r"apy_reward_share",
        lambda m: Phrase("reward share", _reward_share(None), ("apy_reward_share_change_30d",)),
    ),
    (
        r"apy_reward_share_change_(\d+)d",
        lambda m: Phrase(
            f"reward share change over {_days(m[1])}", _reward_share(m[1]), ("apy_reward_share",)
        ),
    ),
    (r"pool_age_days", lambda m: Phrase("pool age", lambda v, c: f"pool {v:,.0f} days old")),
    (
        r"observed_day_count",
        lambda m: Phrase("observed days", lambda v, c: f"{v:,.0f} observed days"),
    ),
    (
        r"observed_day_rolling_(\d+)d_share",
        lambda m: Phrase(
            f"days observed of the last {m[1]}",
            lambda v, c: f"observed {_share(v)} of the last {m[1]} days",
        ),
    ),
    (
        r"apy_(project|chain)_percent_rank",
        lambda m: Phrase(
            f"APY rank in {_GROUP[m[1]][:-2]}",
            lambda v, c: f"APY above {_share(v)} of {_GROUP[m[1]]} pools",
        ),
    ),
    (
        r"apy_(project|chain)_median_ratio",
        lambda m: Phrase(
            f"APY vs {_GROUP[m[1]]} median",
            lambda v, c: f"APY {_ratio(v)} {_GROUP[m[1]]} median",
        ),
    ),
    (
        r"(project|chain)_pool_count",
        lambda m: Phrase(f"pools on its {m[1]}", lambda v, c: f"{v:,.0f} pools on its {m[1]}"),
    ),
    (r"chain", lambda m: Phrase("chain", lambda v, c: f"chain {v}")),
    (r"project", lambda m: Phrase("project", lambda v, c: f"project {v}")),
    (
        r"il_risk",
        lambda m: Phrase("impermanent-loss risk", lambda v, c: f"impermanent-loss risk {v}"),
    ),
    (r"exposure", lambda m: Phrase("exposure", lambda v, c: f"{v}-asset exposure")),
    (r"stablecoin", lambda m: Phrase("stablecoin flag", lambda v, c: f"stablecoin: {v}")),
)


def _generic(name: str) -> Phrase:
    def render(value: Any, companions: tuple) -> str:
        return f"{name} = {value:.4g}" if isinstance(value, float) else f"{name} = {value}"

    return Phrase(name, render)


def phrase_for(name: str) -> tuple[Phrase, bool]:
    """(the phrase of a feature, whether a rule knows it)."""
    for pattern, make in RULES:
        match = re.fullmatch(pattern, name)
        if match:
            return make(match), True
    return _generic(name), False


def render(phrase: Phrase, value: Any, companions: tuple) -> str:
    if _missing(value):
        return f"{phrase.label} unknown"
    return phrase.render(value, companions)


def top(contributions: np.ndarray, k: int = contracts.REASONS_PER_PREDICTION) -> tuple:
    """(indices, values), each (n, k): the k largest contributions by size per
    row, largest first (ties: the earlier feature first)."""
    n, width = contributions.shape
    k = min(k, width)
    size = np.abs(contributions)
    if width > k:
        candidates = np.argpartition(-size, k - 1, axis=1)[:, :k]
    else:
        candidates = np.tile(np.arange(width), (n, 1))
    chosen = np.take_along_axis(size, candidates, axis=1)
    order = np.lexsort((candidates, -chosen), axis=1)
    indices = np.take_along_axis(candidates, order, axis=1)
    return indices, np.take_along_axis(contributions, indices, axis=1)


def explain(
    features: Sequence[str],
    contributions: np.ndarray,
    value_of: Callable[[str], Sequence],
    k: int = contracts.REASONS_PER_PREDICTION,
) -> list[list[dict]]:
    """The top-k reasons of every row: [{"feature", "text", "contribution"}].

    `value_of(name)` gives a feature's raw values for the same rows (floats
    with NaN for missing, or text with None). Zero contributions are left out.
    """
    indices, values = top(contributions, k)
    n = len(indices)
    texts = np.empty(indices.shape, dtype=object)
    phrases = [phrase_for(name)[0] for name in features]
    flat = indices.ravel()
    order = np.argsort(flat, kind="stable")
    bounds = np.flatnonzero(np.diff(flat[order])) + 1
    for group in np.split(order, bounds):
        if not len(group):
            continue
        j = int(flat[group[0]])
        rows = group // indices.shape[1]
        phrase = phrases[j]
        column = _values(value_of(features[j]), rows)
        needs = [
            _values(value_of(name), rows) if name in features else [None] * len(rows)
            for name in phrase.needs
        ]
        out = texts.reshape(-1)
        out[group] = [
            render(phrase, value, tuple(other[i] for other in needs))
            for i, value in enumerate(column)
        ]
    names = [features[j] for j in range(len(features))]
    rounded = np.round(values, 6).tolist()
    index_rows = indices.tolist()
    text_rows = texts.tolist()
    return [
        [
            {"feature": names[j], "text": text, "contribution": c}
            for j, text, c in zip(index_rows[i], text_rows[i], rounded[i], strict=True)
            if c != 0.0
        ]
        for i in range(n)
    ]


def _values(values: Sequence, rows: np.ndarray) -> list:
    if isinstance(values, np.ndarray):
        return values[rows].tolist()
    return [values[i] for i in rows.tolist()]
