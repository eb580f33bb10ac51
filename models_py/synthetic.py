"""A small synthetic training set with exactly the exported columns.

For tests and timing only (the real one comes from dbt's training_set mart).
APY follows a mean-reverting walk with occasional spikes; the label is computed
the way the dbt model defines it (median of days d+1..d+H vs today's APY), so
features carry real but noisy signal.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

CHAINS = ["Ethereum", "Arbitrum", "Base", "Polygon", "Optimism", "Solana"]
PROJECTS = [f"project-{i:02d}" for i in range(25)]


def make_training_set(n_pools: int = 40, n_days: int = 200, horizon_days: int = 30,
                      threshold: float = -0.2, extra_numeric: int = 0, seed: int = 0,
                      start: str = "2025-01-01") -> tuple[pd.DataFrame, dict]:
    """(training_set frame, feature_columns contract)."""
    rng = np.random.default_rng(seed)
    frames = []
    dates = pd.date_range(start, periods=n_days + horizon_days, freq="D")
    for p in range(n_pools):
        level = rng.lognormal(1.5, 0.6)
        reversion = rng.uniform(0.02, 0.2)
        apy = np.empty(len(dates))
        apy[0] = level
        for t in range(1, len(dates)):
            shock = rng.normal(0, 0.08 * level)
            if rng.random() < 0.02:
                shock += rng.exponential(2 * level)
            apy[t] = max(0.01, apy[t - 1] + reversion * (level - apy[t - 1]) + shock)
        tvl = rng.lognormal(15, 1.5) * np.exp(np.cumsum(rng.normal(0, 0.03, len(dates))))
        first = int(rng.integers(0, n_days // 3))
        frame = pd.DataFrame({
            "pool_id": f"pool-{p:04d}", "snapshot_date": dates, "apy": apy, "tvl_usd": tvl,
        }).iloc[first:].reset_index(drop=True)
        frame["symbol"] = f"SYM{p % 7}"
        frame["chain"] = CHAINS[p % len(CHAINS)] if p % 11 else None
        frame["project"] = PROJECTS[int(rng.integers(0, len(PROJECTS)))]
        series = frame["apy"]
        frame["observed_day_count"] = np.arange(1, len(frame) + 1)
        frame["apy_base"] = series * rng.uniform(0.5, 1.0)
        frame["apy_reward"] = series - frame["apy_base"]
        frame["apy_expanding_mean"] = series.expanding().mean()
        frame["apy_expanding_std"] = series.expanding().std()
        frame["apy_rolling_7d_mean"] = series.rolling(7, min_periods=1).mean()
        frame["apy_rolling_30d_mean"] = series.rolling(30, min_periods=1).mean()
        frame["apy_rolling_7d_std"] = series.rolling(7, min_periods=2).std()
        frame["apy_change_1d"] = series.pct_change(fill_method=None)
        frame["tvl_usd_rolling_7d_mean"] = frame["tvl_usd"].rolling(7, min_periods=1).mean()
        frame["tvl_usd_change_7d"] = frame["tvl_usd"].pct_change(7, fill_method=None)
        future = series[::-1].rolling(horizon_days, min_periods=horizon_days).median()[::-1]
        frame["apy_future"] = future.shift(-1)
        frame["future_coverage"] = 1.0
        frames.append(frame)
    data = pd.concat(frames, ignore_index=True)
    for k in range(extra_numeric):
        data[f"noise_{k:02d}"] = rng.normal(size=len(data))
    data.loc[rng.random(len(data)) < 0.02, "apy_rolling_7d_std"] = np.nan
    data = data[data["snapshot_date"] < dates[n_days]].dropna(subset=["apy_future"]).copy()
    data["is_apy_kept"] = (~(data["apy_future"] / data["apy"] - 1 < threshold)).astype(int)
    data["snapshot_date"] = data["snapshot_date"].dt.date
    data["label_window_end_date"] = (pd.to_datetime(data["snapshot_date"])
                                     + pd.Timedelta(days=horizon_days)).dt.date
    data["horizon_days"] = horizon_days
    data["apy_drop_threshold"] = threshold
    data["apy_future_stat"] = "median"
    data["min_future_coverage"] = 0.5
    data["dead_pool_is_dropped"] = True
    numeric = ["apy", "apy_base", "apy_reward", "tvl_usd", "apy_expanding_mean",
               "apy_expanding_std", "apy_rolling_7d_mean", "apy_rolling_30d_mean",
               "apy_rolling_7d_std", "apy_change_1d", "tvl_usd_rolling_7d_mean",
               "tvl_usd_change_7d"] + [f"noise_{k:02d}" for k in range(extra_numeric)]
    categorical = ["chain", "project"]
    contract = {"numeric": numeric, "categorical": categorical,
                "features": numeric + categorical, "key_columns": ["pool_id", "snapshot_date"],
                "label_column": "is_apy_kept"}
    return data.reset_index(drop=True), contract
