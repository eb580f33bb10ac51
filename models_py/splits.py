"""Date-based splits with a purge on the label window.

A row dated d carries a label computed from days d+1 .. d+H (label window end
= d+H). A training row may only be used to predict a later period starting at
T if its whole label window ends before T (d + H < T); otherwise its label
already contains day T's APY. Splits count calendar dates, never rows
(sklearn's TimeSeriesSplit(gap=...) counts rows, and many pools share a day).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterator

    from numpy.typing import ArrayLike

# One walk-forward fold: (training positions, validation positions).
Fold = tuple[np.ndarray, np.ndarray]


def _as_days(values: ArrayLike) -> np.ndarray:
    return np.asarray(values).astype("datetime64[D]")


def find_test_start(dates: ArrayLike, test_fraction: float) -> np.datetime64:
    """First date of the test period: the last `test_fraction` of the distinct dates."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    unique = np.unique(_as_days(dates))
    if len(unique) < 2:
        raise ValueError(f"need at least 2 distinct dates to split, got {len(unique)}")
    position = int(np.floor(len(unique) * (1 - test_fraction)))
    position = min(max(position, 1), len(unique) - 1)
    return unique[position]


@dataclass(frozen=True)
class DateSplit:
    train_index: np.ndarray
    test_index: np.ndarray
    test_start: np.datetime64
    purged_rows: int  # rows before T dropped because their label window reaches T


def time_split(
    dates: ArrayLike,
    label_end_dates: ArrayLike,
    test_fraction: float = 0.3,
    test_start: np.datetime64 | None = None,
) -> DateSplit:
    """Test = rows dated >= T; train = rows whose label window ends before T."""
    dates, ends = _as_days(dates), _as_days(label_end_dates)
    if dates.shape != ends.shape:
        raise ValueError(f"dates {dates.shape} and label_end_dates {ends.shape} differ in shape")
    if np.any(ends <= dates):
        raise ValueError("every label window must end after its row's date")
    start = (
        _as_days(test_start) if test_start is not None else find_test_start(dates, test_fraction)
    )
    test = np.flatnonzero(dates >= start)
    train = np.flatnonzero(ends < start)
    before = int(np.sum(dates < start))
    return DateSplit(train, test, start, before - len(train))


class PurgedWalkForward:
    """Walk-forward CV over dates with the same purge as the test split.

    The validation blocks cover the last `validation_fraction` of the distinct
    dates, cut into `n_splits` consecutive blocks of (nearly) equal numbers of
    dates. Fold k validates on block k and trains on every row whose label
    window ends before block k starts. Usable as `cv=` (split(X) yields
    positional indices into the arrays given to the constructor).
    """

    def __init__(
        self,
        dates: ArrayLike,
        label_end_dates: ArrayLike,
        n_splits: int = 5,
        validation_fraction: float = 0.5,
    ) -> None:
        if int(n_splits) != n_splits or n_splits < 2:
            raise ValueError(f"n_splits must be an integer >= 2, got {n_splits!r}")
        if not 0 < validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction!r}")
        self.dates, self.ends = _as_days(dates), _as_days(label_end_dates)
        if self.dates.shape != self.ends.shape:
            raise ValueError("dates and label_end_dates differ in shape")
        self.n_splits = int(n_splits)
        self.validation_fraction = validation_fraction
        unique = np.unique(self.dates)
        n_validation = round(len(unique) * validation_fraction)
        if n_validation < self.n_splits or len(unique) - n_validation < 1:
            raise ValueError(
                f"{len(unique)} distinct dates are too few for {self.n_splits} "
                f"walk-forward folds (validation_fraction={validation_fraction})"
            )
        blocks = np.array_split(unique[len(unique) - n_validation :], self.n_splits)
        self.blocks = [(block[0], block[-1]) for block in blocks]

    # X, y and groups are ignored: the folds come from the dates given to __init__
    def get_n_splits(
        self,
        X: ArrayLike | None = None,
        y: ArrayLike | None = None,
        groups: ArrayLike | None = None,
    ) -> int:
        return self.n_splits

    def split(
        self,
        X: ArrayLike | None = None,
        y: ArrayLike | None = None,
        groups: ArrayLike | None = None,
    ) -> Iterator[Fold]:
        for first, last in self.blocks:
            validation = np.flatnonzero((self.dates >= first) & (self.dates <= last))
            train = np.flatnonzero(self.ends < first)
            if len(train) == 0:
                raise ValueError(
                    f"walk-forward fold starting {first} has no purged "
                    "training rows: too few dates before it"
                )
            yield train, validation

    def describe(self) -> list[dict]:
        rows = []
        for (first, last), (train, validation) in zip(self.blocks, self.split(), strict=True):
            rows.append(
                {
                    "validation_start": str(first),
                    "validation_end": str(last),
                    "train_end": str(self.dates[train].max()),
                    "train_rows": len(train),
                    "validation_rows": len(validation),
                }
            )
        return rows


def calibration_split(
    dates: ArrayLike, label_end_dates: ArrayLike, rows: np.ndarray, fraction: float = 0.2
) -> tuple[np.ndarray, np.ndarray]:
    """Split `rows` into (fit, calibrate) by date with the purge.

    Calibrate on the last `fraction` of the distinct dates among `rows`; fit on
    the rows whose label window ends before that block starts. Returned arrays
    are positions into `rows`.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")
    dates, ends = _as_days(dates)[rows], _as_days(label_end_dates)[rows]
    unique = np.unique(dates)
    start = unique[min(len(unique) - 1, int(np.floor(len(unique) * (1 - fraction))))]
    return np.flatnonzero(ends < start), np.flatnonzero(dates >= start)
