"""Date split with the label-window purge, and purged walk-forward folds, on hand-made dates."""

from __future__ import annotations

import numpy as np
import pytest

from models_py.splits import PurgedWalkForward, calibration_split, find_test_start, time_split


def days(start: str, n: int) -> np.ndarray:
    return np.datetime64(start, "D") + np.arange(n).astype("timedelta64[D]")


def D(n: int) -> np.timedelta64:
    return np.timedelta64(n, "D")


def panel(n_days: int, pools_per_day, horizon: int, start: str = "2025-01-01"):
    """Rows (date, label end) for a varying number of pools per day."""
    dates = np.repeat(days(start, n_days), pools_per_day)
    return dates, dates + D(horizon)


def test_split_on_hand_made_dates_purges_rows_whose_label_window_reaches_the_test():
    # 10 days, one pool, H = 3: test = last 30% of dates = days 7, 8, 9.
    dates = days("2025-01-01", 10)
    split = time_split(dates, dates + D(3), test_fraction=0.3)
    assert split.test_start == np.datetime64("2025-01-08")
    assert dates[split.test_index].tolist() == days("2025-01-08", 3).tolist()
    # d + 3 < Jan 8  <=>  d <= Jan 4: days 0..3 train; Jan 5, 6, 7 are purged
    assert dates[split.train_index].tolist() == days("2025-01-01", 4).tolist()
    assert split.purged_rows == 3


@pytest.mark.parametrize("horizon", [1, 5, 30])
def test_no_training_label_window_overlaps_the_test_period(horizon):
    rng = np.random.default_rng(horizon)
    dates, ends = panel(120, rng.integers(1, 9, 120), horizon)
    split = time_split(dates, ends, 0.3)
    assert ends[split.train_index].max() < split.test_start
    assert dates[split.test_index].min() >= split.test_start
    assert np.intersect1d(split.train_index, split.test_index).size == 0
    # every row before T whose window ends before T is kept (the purge removes only what it must)
    assert len(split.train_index) == int(np.sum(ends < split.test_start))
    assert split.purged_rows == int(np.sum((dates < split.test_start) & (ends >= split.test_start)))


def test_test_start_counts_dates_not_rows():
    # 9 pools/day in the first half, 1 pool/day in the second: by rows the last
    # 30% would start much later; by dates it is day 70 of 100.
    dates, ends = panel(100, np.r_[np.full(50, 9), np.full(50, 1)], 30)
    assert find_test_start(dates, 0.3) == days("2025-01-01", 100)[70]
    assert time_split(dates, ends, 0.3).test_start == days("2025-01-01", 100)[70]


@pytest.mark.parametrize("bad", [0, 1, -0.1, 1.5])
def test_bad_test_fraction_is_refused(bad):
    dates = days("2025-01-01", 10)
    with pytest.raises(ValueError, match="test_fraction"):
        time_split(dates, dates + D(1), bad)


def test_label_window_must_end_after_its_day():
    dates = days("2025-01-01", 10)
    with pytest.raises(ValueError, match="label window"):
        time_split(dates, dates, 0.3)


@pytest.mark.parametrize("horizon,n_splits", [(3, 5), (30, 5), (10, 3)])
def test_walk_forward_folds_are_purged_and_move_forward(horizon, n_splits):
    rng = np.random.default_rng(n_splits)
    dates, ends = panel(200, rng.integers(1, 6, 200), horizon)
    walk = PurgedWalkForward(dates, ends, n_splits=n_splits, validation_fraction=0.5)
    folds = list(walk.split())
    assert len(folds) == walk.get_n_splits() == n_splits
    previous_end = None
    covered = []
    for train, validation in folds:
        first = dates[validation].min()
        # the purge: every training label window ends before the validation block
        assert ends[train].max() < first
        assert len(train) == int(np.sum(ends < first))
        if previous_end is not None:
            assert first > previous_end  # blocks are consecutive, in time order
        previous_end = dates[validation].max()
        covered.append(validation)
    # the blocks tile the last half of the dates exactly once
    covered = np.concatenate(covered)
    assert len(np.unique(covered)) == len(covered)
    assert np.unique(dates[covered]).size == 100


def test_walk_forward_on_hand_made_dates():
    dates = days("2025-01-01", 20)  # one pool, H = 2, 4 folds over the last 10 days
    walk = PurgedWalkForward(dates, dates + D(2), n_splits=4, validation_fraction=0.5)
    folds = list(walk.split())
    first_train, first_validation = folds[0]
    assert dates[first_validation].tolist() == days("2025-01-11", 3).tolist()
    # d + 2 < Jan 11  <=>  d <= Jan 8
    assert dates[first_train].tolist() == days("2025-01-01", 8).tolist()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"n_splits": 1}, "n_splits"),
        ({"n_splits": 2.5}, "n_splits"),
        ({"validation_fraction": 0}, "validation_fraction"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
        ({"n_splits": 8, "validation_fraction": 0.5}, "too few"),
    ],
)
def test_walk_forward_refuses_bad_settings(kwargs, match):
    dates = days("2025-01-01", 12)
    with pytest.raises(ValueError, match=match):
        PurgedWalkForward(dates, dates + D(1), **kwargs)


def test_walk_forward_fold_without_purged_training_rows_is_an_error():
    dates = days("2025-01-01", 20)
    walk = PurgedWalkForward(dates, dates + D(15), n_splits=2, validation_fraction=0.5)
    with pytest.raises(ValueError, match="no purged training rows"):
        list(walk.split())


def test_calibration_split_is_purged():
    dates, ends = panel(50, 3, 7)
    rows = np.arange(len(dates))
    fit, calibrate = calibration_split(dates, ends, rows, fraction=0.2)
    assert ends[fit].max() < dates[calibrate].min()
    assert np.unique(dates[calibrate]).size == 10
