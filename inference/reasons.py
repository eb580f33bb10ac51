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


def _days(n: str) -> str:
    return "1 day" if n == "1" else f"{n} days"


def _money(v: float) -> str:
    size = abs(v)
    if size >= 1e9:
        return f"${v / 1e9:,.1f}B"
    if size >= 1e6:
        return f"${v / 1e6:,.1f}M"
    if size >= 1e3:
        return f"${v / 1e3:,.1f}K"
    return f"${v:,.0f}"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


Values = list  # one feature's values for the rows to phrase (floats with NaN, or text with None)


@dataclass(frozen=True)
class Phrase:
    """How one feature reads: `label` + " unknown" where the value is missing,
    else `many(values, companions)` (companions: the values of `needs`, per
    name; None where a needed feature is not published). `many` phrases a
    whole column at once: one format call per value."""

    label: str
    many: Callable[[Values, tuple], list[str]]
    needs: tuple[str, ...] = ()


def _ratio_of(template: str, offset: float = 0.0) -> Callable:
    """`template` filled with (value + offset) as a ratio: 2.4x, 0.21x, 12x
    (the offset added over the whole column, one format call per value)."""
    small = template.replace("{}", "{:,.2g}x")
    large = template.replace("{}", "{:,.0f}x")

    def many(values: Values, companions: tuple) -> list[str]:
        shifted = (np.asarray(values, dtype=np.float64) + offset).tolist()
        return [small.format(x) if -10 < x < 10 else large.format(x) for x in shifted]

    return many


def _formatted(
    template: str, transform: Callable[[float], Any] | None = None, scale: float | None = None
) -> Callable:
    """`template.format(transform(value))` for each present value; `scale`
    multiplies the whole column first (a percentage: 100)."""
    fill = template.format

    def many(values: Values, companions: tuple) -> list[str]:
        if scale is not None:
            values = (np.asarray(values, dtype=np.float64) * scale).tolist()
        if transform is None:
            return [fill(v) for v in values]
        return [fill(transform(v)) for v in values]

    return many


def _text(template: str) -> Callable:
    fill = template.format

    def many(values: Values, companions: tuple) -> list[str]:
        return [fill(v) for v in values]

    return many


def _reward_share(window: str | None, label: str) -> Callable:
    """reward share 85%, up 20 points in 30 days: the share and its change,
    whichever of the two features is explained (a missing part is left out;
    the explained feature missing reads "<label> unknown")."""
    days = _days(window or "30")

    def many(values: Values, companions: tuple) -> list[str]:
        out = []
        for value, other in zip(values, companions[0], strict=True):
            if _missing(value):
                out.append(f"{label} unknown")
                continue
            share, change = (value, other) if window is None else (other, value)
            parts = [] if _missing(share) else [f"{100 * share:.0f}%"]
            if not _missing(change):
                direction = "up" if change >= 0 else "down"
                parts.append(f"{direction} {abs(100 * change):.0f} points in {days}")
            out.append("reward share " + ", ".join(parts))
        return out

    return many


_GROUP = {"project": "its project's", "chain": "its chain's"}
_AGG = {"mean": "mean", "median": "median", "min": "lowest", "max": "highest"}

# (pattern on the feature name, phrase for the match)
RULES: tuple[tuple[str, Callable[[re.Match], Phrase]], ...] = (
    (r"apy", lambda m: Phrase("APY", _formatted("APY {:,.1f}%"))),
    (r"apy_base", lambda m: Phrase("base APY", _formatted("base APY {:,.1f}%"))),
    (r"apy_reward", lambda m: Phrase("reward APY", _formatted("reward APY {:,.1f}%"))),
    (r"tvl_usd", lambda m: Phrase("TVL", _formatted("TVL {}", _money))),
    (
        r"tvl_usd_log",
        lambda m: Phrase("TVL", _formatted("TVL {}", lambda v: _money(math.expm1(v)))),
    ),
    (
        r"apy_expanding_mean",
        lambda m: Phrase("all-time mean APY", _formatted("all-time mean APY {:,.1f}%")),
    ),
    (
        r"apy_expanding_std",
        lambda m: Phrase("all-time APY spread", _formatted("all-time APY std {:,.1f} points")),
    ),
    (
        r"apy_relative_to_expanding_mean",
        lambda m: Phrase(
            "apy vs its all-time mean",
            _ratio_of("apy is {} its all-time mean", 1.0),
        ),
    ),
    (
        r"apy_relative_to_rolling_(\d+)d_mean",
        lambda m: Phrase(
            f"apy vs its {m[1]}-day mean",
            _ratio_of(f"apy is {{}} its {m[1]}-day mean", 1.0),
        ),
    ),
    (
        r"apy_rolling_(\d+)d_(mean|median|min|max)",
        lambda m: Phrase(
            f"{m[1]}-day {_AGG[m[2]]} APY", _formatted(f"{m[1]}-day {_AGG[m[2]]} APY {{:,.1f}}%")
        ),
    ),
    (
        r"apy_rolling_(\d+)d_std",
        lambda m: Phrase(
            f"{m[1]}-day APY spread", _formatted(f"{m[1]}-day APY std {{:,.1f}} points")
        ),
    ),
    (
        r"apy_base_rolling_(\d+)d_mean",
        lambda m: Phrase(
            f"{m[1]}-day mean base APY", _formatted(f"{m[1]}-day mean base APY {{:,.1f}}%")
        ),
    ),
    (
        r"apy_base_rolling_(\d+)d_std",
        lambda m: Phrase(
            f"{m[1]}-day base APY spread",
            _formatted(f"{m[1]}-day base APY std {{:,.1f}} points"),
        ),
    ),
    (
        r"apy_change_(\d+)d",
        lambda m: Phrase(
            f"APY change over {_days(m[1])}",
            _formatted(f"APY {{:+,.1f}} points in {_days(m[1])}"),
        ),
    ),
    (
        r"tvl_usd_change_(\d+)d",
        lambda m: Phrase(
            f"TVL change over {_days(m[1])}",
            _formatted(f"TVL {{:+,.0f}}% in {_days(m[1])}", scale=100),
        ),
    ),
    (
        r"apy_reward_share",
        lambda m: Phrase(
            "reward share", _reward_share(None, "reward share"), ("apy_reward_share_change_30d",)
        ),
    ),
    (
        r"apy_reward_share_change_(\d+)d",
        lambda m: Phrase(
            f"reward share change over {_days(m[1])}",
            _reward_share(m[1], f"reward share change over {_days(m[1])}"),
            ("apy_reward_share",),
        ),
    ),
    (r"pool_age_days", lambda m: Phrase("pool age", _formatted("pool {:,.0f} days old"))),
    (
        r"observed_day_count",
        lambda m: Phrase("observed days", _formatted("{:,.0f} observed days")),
    ),
    (
        r"observed_day_rolling_(\d+)d_share",
        lambda m: Phrase(
            f"days observed of the last {m[1]}",
            _formatted(f"observed {{:.0f}}% of the last {m[1]} days", scale=100),
        ),
    ),
    (
        r"apy_(project|chain)_percent_rank",
        lambda m: Phrase(
            f"APY rank in {_GROUP[m[1]][:-2]}",
            _formatted(f"APY above {{:.0f}}% of {_GROUP[m[1]]} pools", scale=100),
        ),
    ),
    (
        r"apy_(project|chain)_median_ratio",
        lambda m: Phrase(
            f"APY vs {_GROUP[m[1]]} median",
            _ratio_of(f"APY {{}} {_GROUP[m[1]]} median"),
        ),
    ),
    (
        r"(project|chain)_pool_count",
        lambda m: Phrase(f"pools on its {m[1]}", _formatted(f"{{:,.0f}} pools on its {m[1]}")),
    ),
    (
        r"market_apy_drop_share_(\d+)d",
        lambda m: Phrase(
            f"pools whose APY fell in {_days(m[1])}",
            _formatted(f"market: {{:.0f}}% of pools' APY fell sharply in {_days(m[1])}", scale=100),
        ),
    ),
    (
        r"market_apy_change_(\d+)d_median",
        lambda m: Phrase(
            f"median pool's APY change over {_days(m[1])}",
            _formatted(f"market: median pool APY {{:+,.0f}}% in {_days(m[1])}", scale=100),
        ),
    ),
    (r"chain", lambda m: Phrase("chain", _text("chain {}"))),
    (r"project", lambda m: Phrase("project", _text("project {}"))),
    (r"il_risk", lambda m: Phrase("impermanent-loss risk", _text("impermanent-loss risk {}"))),
    (r"exposure", lambda m: Phrase("exposure", _text("{}-asset exposure"))),
    (r"stablecoin", lambda m: Phrase("stablecoin flag", _text("stablecoin: {}"))),
)


def _generic(name: str) -> Phrase:
    def many(values: Values, companions: tuple) -> list[str]:
        return [f"{name} = {v:.4g}" if isinstance(v, float) else f"{name} = {v}" for v in values]

    return Phrase(name, many)


def phrase_for(name: str) -> tuple[Phrase, bool]:
    """(the phrase of a feature, whether a rule knows it)."""
    for pattern, make in RULES:
        match = re.fullmatch(pattern, name)
        if match:
            return make(match), True
    return _generic(name), False


def render_many(phrase: Phrase, values: Values, companions: tuple) -> list[str]:
    """Phrases for a column of values; a missing value reads "<label> unknown"
    (phrases with companions handle missing values themselves)."""
    if phrase.needs:
        return phrase.many(values, companions)
    present = [i for i, v in enumerate(values) if not (v is None or v != v)]
    if len(present) == len(values):
        return phrase.many(values, companions)
    out = [f"{phrase.label} unknown"] * len(values)
    for i, text in zip(present, phrase.many([values[i] for i in present], ()), strict=True):
        out[i] = text
    return out


def render(phrase: Phrase, value: Any, companions: tuple) -> str:
    return render_many(phrase, [value], tuple([c] for c in companions))[0]


def top(contributions: np.ndarray, k: int = contracts.REASONS_PER_PREDICTION) -> tuple:
    """(indices, values), each (n, k): the k largest contributions by size per
    row, largest first (ties: the earlier feature first)."""
    n, width = contributions.shape
    k = min(k, width)
    size = np.abs(contributions)
    rows = np.arange(n)
    indices = np.empty((n, k), dtype=np.intp)
    for slot in range(k):
        chosen = size.argmax(axis=1)  # the first of equal sizes
        indices[:, slot] = chosen
        size[rows, chosen] = -1.0
    return indices, np.take_along_axis(contributions, indices, axis=1)


def explain(
    features: Sequence[str],
    contributions: np.ndarray,
    value_of: Callable[[str], Sequence],
    k: int = contracts.REASONS_PER_PREDICTION,
) -> tuple[list[list[dict]], list[list[str]]]:
    """The top-k reasons of every row, [{"feature", "text", "contribution"}],
    and their texts alone (the ledger's), row by row.

    `value_of(name)` gives a feature's raw values for the same rows (floats
    with NaN for missing, or text with None). Zero contributions are left out,
    and so are the calendar features (contracts.REASON_EXCLUDED_FEATURES).
    """
    excluded = [j for j, name in enumerate(features) if name in contracts.REASON_EXCLUDED_FEATURES]
    if excluded:
        contributions = np.array(contributions, dtype=float, copy=True)
        contributions[:, excluded] = 0.0
    indices, values = top(contributions, k)
    n, width = indices.shape
    texts = np.empty(n * width, dtype=object)
    flat = indices.ravel()
    order = np.argsort(flat, kind="stable")
    bounds = np.flatnonzero(np.diff(flat[order])) + 1
    phrases = phrases_of(features)
    for group in np.split(order, bounds):
        if not len(group):
            continue
        j = int(flat[group[0]])
        rows = group // width
        phrase = phrases[j]
        companions = tuple(
            _values(value_of(name), rows) if name in features else [None] * len(rows)
            for name in phrase.needs
        )
        texts[group] = render_many(phrase, _values(value_of(features[j]), rows), companions)
    names = np.array(list(features), dtype=object)[indices].tolist()
    text_rows = texts.reshape(n, width).tolist()
    rounded = np.round(values, 6)
    if width == 3 and np.all(rounded):  # the usual case, unrolled: half the time
        return [
            [
                {"feature": f0, "text": t0, "contribution": c0},
                {"feature": f1, "text": t1, "contribution": c1},
                {"feature": f2, "text": t2, "contribution": c2},
            ]
            for (f0, f1, f2), (t0, t1, t2), (c0, c1, c2) in zip(
                names, text_rows, rounded.tolist(), strict=True
            )
        ], text_rows
    kept = rounded != 0.0
    return [
        [
            {"feature": f, "text": t, "contribution": c}
            for f, t, c in zip(feature_row, text_row, value_row, strict=True)
            if c != 0.0
        ]
        for feature_row, text_row, value_row in zip(names, text_rows, rounded.tolist(), strict=True)
    ], [
        [t for t, keep in zip(text_row, keep_row, strict=True) if keep]
        for text_row, keep_row in zip(text_rows, kept.tolist(), strict=True)
    ]


_PHRASES: dict[tuple[str, ...], list[Phrase]] = {}


def phrases_of(features: Sequence[str]) -> list[Phrase]:
    """The phrases of a feature list, built once per list."""
    key = tuple(features)
    if key not in _PHRASES:
        _PHRASES[key] = [phrase_for(name)[0] for name in key]
    return _PHRASES[key]


def _values(values: Sequence, rows: np.ndarray) -> list:
    if isinstance(values, np.ndarray):
        return values[rows].tolist()
    return [values[i] for i in rows.tolist()]
