"""Confidence words that separate: levels chosen on a refit's held-out block.

Every refit (the shipped fit, each month of the backtest) chooses on the last
CONFIDENCE_HOLDOUT_FRACTION of its training dates, scored out of sample: by
the walk-forward predictions training already made for those rows (the
recipe's folds, the earlier backtest months: `HeldOut`), else by the recipe
fitted on the earlier rows (purged). The words are served by the hour's
quantiles of the shown probability (contracts.hour_cutpoints): the two levels
are the pair whose Low / Medium / High bins, each date binned by its own
quantiles, hold at least CONFIDENCE_MIN_SHARE of the block each with hit rates
rising from Low to High, the widest High - Low; else one level, else one word.
May import inference/ and libraries only.
"""

from __future__ import annotations

from itertools import combinations, pairwise
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from inference import contracts
from inference.scoring import hour_groups
from models_py import config
from models_py.recipe import Recipe, fit_recipe
from models_py.splits import calibration_split

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

# one word: every shown probability (50 < p <= 100) in the middle bin
ONE_WORD_CUTPOINTS = (50.0, 100.0)


def held_out_block(
    recipe: Recipe,
    X: np.ndarray,
    y: np.ndarray,
    dates: np.ndarray,
    ends: np.ndarray,
    rows: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, p_keep, dates) of the last CONFIDENCE_HOLDOUT_FRACTION of
    `rows`' dates, scored by the recipe fitted on the earlier rows whose label
    window ends before the block (empty when those rows hold a single class)."""
    fit_pos, block_pos = calibration_split(dates, ends, rows, config.CONFIDENCE_HOLDOUT_FRACTION)
    earlier, block = rows[fit_pos], rows[block_pos]
    if len(np.unique(y[earlier])) < 2 or len(block) == 0:
        return np.array([], dtype=int), np.array([], dtype=float), np.array([], dtype=dates.dtype)
    try:
        model = fit_recipe(recipe, X, y, dates, ends, earlier)
    except ValueError:  # too few rows to calibrate on the earlier part
        model = fit_recipe(recipe.with_changes(calibration="none"), X, y, dates, ends, earlier)
    return y[block], model.predict_proba(X[block])[:, 1], dates[block]


class HeldOut:
    """The walk-forward predictions a training run has already made, by row
    position of the training data: each made by a fit on earlier rows only
    (the recipe's folds, the backtest's months). A refit's held-out block reads
    them instead of fitting again; a block they cover too little is fitted."""

    def __init__(self, n_rows: int) -> None:
        self.p_keep = np.full(n_rows, np.nan)
        self.source = ""  # what scored the last block: for the run's metadata

    def add(self, rows: np.ndarray, p_keep: np.ndarray) -> None:
        self.p_keep[rows] = p_keep

    def block(
        self,
        recipe: Recipe,
        X: np.ndarray,
        y: np.ndarray,
        dates: np.ndarray,
        ends: np.ndarray,
        rows: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """held_out_block's (labels, p_keep, dates) of the refit on `rows`: the
        block's rows already predicted when they are at least a quarter of it and
        CONFIDENCE_MIN_ROWS, else held_out_block (one more fit)."""
        _, block_pos = calibration_split(dates, ends, rows, config.CONFIDENCE_HOLDOUT_FRACTION)
        block = rows[block_pos]
        made = block[np.isfinite(self.p_keep[block])]
        if len(made) >= max(config.CONFIDENCE_MIN_ROWS, (len(block) + 3) // 4):
            self.source = f"walk-forward predictions of {len(made)} of its {len(block)} rows"
            return y[made], self.p_keep[made], dates[made]
        self.source = "the recipe fitted on the earlier rows"
        return held_out_block(recipe, X, y, dates, ends, rows)


class _Block:
    """A held-out block's shown probabilities, class-call hits, and every
    date's cut-point at every level of the grid (contracts.hour_cutpoints)."""

    def __init__(self, y: np.ndarray, p_keep: np.ndarray, dates: np.ndarray) -> None:
        self.shown = np.asarray(contracts.predicted_probability(p_keep), dtype=float)
        self.correct = (~contracts.predicted_class_is_down(p_keep)).astype(int) == y
        grid = config.CONFIDENCE_QUANTILE_GRID
        # the block-wide quantiles: what an hour with too few pools is binned by
        self.stored = {q: contracts.hour_cutpoints(self.shown, (q, q), (50, 100))[0] for q in grid}
        self.at = {q: np.empty(len(y)) for q in grid}
        for rows in hour_groups(dates):
            for q in grid:
                self.at[q][rows] = contracts.hour_cutpoints(
                    self.shown[rows], (q, q), (self.stored[q], self.stored[q])
                )[0]

    def rates(self, levels: tuple[float, float], used: tuple[int, ...]) -> tuple[list, list]:
        bins = np.asarray(
            contracts.confidence_bin(self.shown, (self.at[levels[0]], self.at[levels[1]]))
        )
        shares = [float(np.mean(bins == b)) for b in used]
        rates = [
            float(self.correct[bins == b].mean()) if np.any(bins == b) else np.nan for b in used
        ]
        return shares, rates


def _best(block: _Block, candidates: list[tuple[float, float]], used: tuple) -> dict | None:
    """The candidate whose bins in `used` each hold the minimum share and whose
    hit rates strictly rise, with the widest last - first."""
    best = None
    for levels in candidates:
        shares, rates = block.rates(levels, used)
        if min(shares) < config.CONFIDENCE_MIN_SHARE or not all(a < b for a, b in pairwise(rates)):
            continue
        gap = rates[-1] - rates[0]
        if best is None or gap > best["gap"]:
            stored = (block.stored[levels[0]], block.stored[levels[1]])
            best = {"levels": levels, "cutpoints": stored, "shares": shares, "hit_rates": rates}
            best["gap"] = gap
    return best


def choose_cutpoints(y: ArrayLike, p_keep: ArrayLike, dates: ArrayLike) -> dict:
    """Confidence levels (and the block-wide cut-points an hour with too few
    pools uses) from a held-out block's labels, p_keep and dates."""
    y, p_keep = np.asarray(y, dtype=int), np.asarray(p_keep, dtype=float)
    if len(y) < config.CONFIDENCE_MIN_ROWS:
        return _one_word(f"the held-out block has {len(y)} rows (< {config.CONFIDENCE_MIN_ROWS})")
    block = _Block(y, p_keep, np.asarray(dates))
    grid = config.CONFIDENCE_QUANTILE_GRID
    three = _best(block, list(combinations(grid, 2)), (1, 2, 3))
    if three is not None:
        return _choice(three, ("Low", "Medium", "High"), None, len(y))
    two = _best(block, [(q, q) for q in grid], (1, 3))
    reason = (
        "no two levels give three bins of at least "
        f"{config.CONFIDENCE_MIN_SHARE:.0%} of the held-out rows with hit rates rising "
        "from Low to High"
    )
    if two is not None:
        return _choice(two, ("Low", "High"), reason + ": two words", len(y))
    return _one_word(reason + ", nor does one: one word")


def _choice(best: dict, words: tuple[str, ...], reason: str | None, rows: int) -> dict:
    return {
        "cutpoints": [float(best["cutpoints"][0]), float(best["cutpoints"][1])],
        "levels": [float(best["levels"][0]), float(best["levels"][1])],
        "words": list(words),
        "reason": reason,
        "held_out_rows": rows,
        "held_out_shares": best["shares"],
        "held_out_hit_rates": best["hit_rates"],
    }


def _one_word(reason: str) -> dict:
    return {
        "cutpoints": list(ONE_WORD_CUTPOINTS),
        "levels": None,
        "words": ["Medium"],
        "reason": reason,
        "held_out_rows": 0,
        "held_out_shares": [],
        "held_out_hit_rates": [],
    }


def hit_rate_table(y: ArrayLike, p_keep: ArrayLike, bins: ArrayLike) -> pd.DataFrame:
    """Per confidence word: rows, share, hit rate of the class call, and the
    hit rate of always saying Stable/Up on the same rows (the base rate)."""
    y, p_keep, bins = np.asarray(y), np.asarray(p_keep, dtype=float), np.asarray(bins)
    predicted_keep = (~contracts.predicted_class_is_down(p_keep)).astype(int)
    rows = []
    for b in (1, 2, 3):
        mask = bins == b
        if not mask.any():
            continue
        rows.append(
            {
                "confidence": contracts.CONFIDENCE_WORDS[b],
                "rows": int(mask.sum()),
                "share": float(mask.mean()),
                "hit_rate": float((predicted_keep[mask] == y[mask]).mean()),
                "always_stable_up": float(y[mask].mean()),
            }
        )
    rows.append(
        {
            "confidence": "all",
            "rows": len(y),
            "share": 1.0,
            "hit_rate": float((predicted_keep == y).mean()) if len(y) else float("nan"),
            "always_stable_up": float(y.mean()) if len(y) else float("nan"),
        }
    )
    return pd.DataFrame(rows)
