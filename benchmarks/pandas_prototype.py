"""The anchor: the prototype's pandas approach to the same job, at scale.

Reads the raw snapshots parquet, sorts, keeps the last snapshot per pool per
UTC day, then computes per-pool calendar-day rolling stats (7/14/30/90 days:
mean, std, median, min, max of apy), expanding mean/std of apy, tvl changes and
the forward 30-day median label (threshold -0.2), like the prototype did in
pandas, and writes the result to parquet. It computes fewer features than the
dbt project (about a third), so ratios against it are conservative.

    python -m benchmarks.pandas_prototype RAW.parquet OUT.parquet
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd

WINDOWS = (7, 14, 30, 90)
HORIZON = 30
THRESHOLD = -0.2


def daily_last(raw: pd.DataFrame) -> pd.DataFrame:
    raw = raw.sort_values(["pool", "timestamp"], kind="stable")
    stamps = raw["timestamp"]
    stamps = stamps.dt.tz_localize("UTC") if stamps.dt.tz is None else stamps.dt.tz_convert("UTC")
    raw["snapshot_date"] = stamps.dt.floor("D")
    return raw.groupby(["pool", "snapshot_date"], sort=False).tail(1).reset_index(drop=True)


def features_and_label(daily: pd.DataFrame) -> pd.DataFrame:
    daily = daily.sort_values(["pool", "snapshot_date"]).set_index("snapshot_date")
    grouped = daily.groupby("pool", sort=False)["apy"]
    out = daily[["pool", "chain", "project", "apy", "tvlUsd"]].copy()
    for window in WINDOWS:
        rolling = grouped.rolling(f"{window}D")
        for stat in ("mean", "std", "median", "min", "max"):
            out[f"apy_rolling_{window}d_{stat}"] = getattr(rolling, stat)().to_numpy()
    expanding = grouped.expanding()
    out["apy_expanding_mean"] = expanding.mean().to_numpy()
    out["apy_expanding_std"] = expanding.std().to_numpy()
    out = out.reset_index()

    # densify each pool's calendar so shifts count days, not rows
    spans = out.groupby("pool")["snapshot_date"].agg(["min", "max"])
    calendar = pd.concat(
        pd.DataFrame({"pool": pool, "snapshot_date": pd.date_range(lo, hi, freq="D")})
        for pool, (lo, hi) in spans.iterrows()
    )
    dense = calendar.merge(
        out[["pool", "snapshot_date", "apy", "tvlUsd"]], on=["pool", "snapshot_date"], how="left"
    )
    by_pool = dense.groupby("pool", sort=False)
    for days in (1, 7, 30):
        dense[f"tvl_change_{days}d"] = dense["tvlUsd"] / by_pool["tvlUsd"].shift(days) - 1
    # forward window d+1..d+H = the backward H-day window ending at d+H
    backward_median = by_pool["apy"].rolling(HORIZON, min_periods=HORIZON // 2).median()
    dense["apy_future"] = backward_median.groupby(level=0).shift(-HORIZON).to_numpy()
    out = out.merge(dense.drop(columns=["apy", "tvlUsd"]), on=["pool", "snapshot_date"], how="left")
    ratio = out["apy_future"] / out["apy"] - 1
    out["is_apy_kept"] = np.where(
        out["apy_future"].isna() | (out["apy"] <= 0), np.nan, (ratio >= THRESHOLD).astype(float)
    )
    return out


def main(argv: list[str]) -> int:
    raw_path, out_path = argv
    started = time.perf_counter()
    raw = pd.read_parquet(
        raw_path, columns=["timestamp", "pool", "chain", "project", "tvlUsd", "apy"]
    )
    daily = daily_last(raw)
    del raw
    result = features_and_label(daily)
    result.to_parquet(out_path, index=False)
    print(
        f"pandas prototype: {len(daily):,} daily rows, {len(result.columns)} columns, "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
