"""`apy-runway generate`: the embedded default data, synthetic DefiLlama pool
snapshots in DefiLlama's long-export format (one parquet file).

Imports: numpy, scipy, pyarrow, the standard library, apy_runway/foundation and
inference/ (floor 4, landing). Deterministic: the same seed and arguments give
the same rows whatever ``chunk_pools`` is (pool attributes come from one seeded
stream, each pool's noise from its own stream ``(seed, pool index)``).

What it simulates (regimes, lending curves, reward programmes that stop, TVL
chasing yield, a market factor, pool births and deaths, gaps and spikes) and
why each makes the label hard or gives it away: docs/data.md#the-generated-data.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from apy_runway.foundation.console import log
from apy_runway.foundation.defaults import (
    DEFAULT_CHUNK_POOLS,
    DEFAULT_DAYS,
    DEFAULT_POOLS,
    DEFAULT_SEED,
    DEFAULT_START,
    FREQUENCIES,
)
from inference.contracts import RAW_CONTRACT

# The raw contract (inference/contracts.py) in arrow types: the generated file
# is exactly what ingest stages.
ARROW_TYPES = {
    "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
    "VARCHAR": pa.string(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
}
# parquet key-value metadata of a generated file: {"seed", "pools", "days"}
GENERATED_METADATA_KEY = "apy_runway.generated"
SCHEMA = pa.schema([(name, ARROW_TYPES[kind]) for name, kind in RAW_CONTRACT])

# --------------------------------------------------------------------------- regimes

# name: (share of pools, volatility multiplier, TVL multiplier, death multiplier,
#        end of the chain-wide incentive programme as a share of the period or None)
CHAINS = {
    "Ethereum": (0.30, 0.8, 3.0, 0.6, None),
    "Arbitrum": (0.14, 1.1, 0.8, 1.0, 0.45),
    "Base": (0.13, 1.2, 0.7, 1.1, None),
    "BSC": (0.10, 1.2, 0.6, 1.3, None),
    "Polygon": (0.08, 1.1, 0.4, 1.6, None),
    "Optimism": (0.08, 1.1, 0.5, 1.2, 0.65),
    "Solana": (0.10, 1.3, 0.8, 1.1, None),
    "Avalanche": (0.07, 1.2, 0.4, 1.4, 0.3),
}
NATIVE_TOKEN = {
    "Ethereum": "WETH",
    "Arbitrum": "ARB",
    "Base": "AERO",
    "BSC": "WBNB",
    "Polygon": "WPOL",
    "Optimism": "OP",
    "Solana": "SOL",
    "Avalanche": "WAVAX",
}


@dataclass(frozen=True)
class Category:
    base_apy: float  # median base APY of volatile pools, percent
    stable_base_apy: float  # median base APY of stablecoin pools, percent
    ou_kappa: float  # daily mean reversion of the log-APY deviation
    ou_sigma: float  # daily volatility of the log-APY deviation
    market_beta: float  # loading on the common market factor
    dilution: float  # elasticity of base APY to TVL above its slow trend
    hourly_sigma: float  # hour-to-hour noise of the log base APY
    stable_share: float
    reward_prob: float
    reward_apy: float  # median reward APY when a programme starts, percent
    reward_half_life: float  # median emission half-life, days
    cliff_prob: float  # share of programmes that stop on a date
    death_prob: float  # share of pools that die during a 365-day period
    late_launch_prob: float
    tvl_median: float  # median TVL at launch, USD
    flow: float  # TVL response to APY above the category norm, per day
    spike_rate: float  # one-hour APY spikes per hour


CATEGORIES = {
    "lending": Category(
        1.6,
        5.0,
        0.04,
        0.10,
        0.35,
        0.0,
        0.015,
        0.55,
        0.45,
        3.0,
        90,
        0.5,
        0.05,
        0.15,
        2e7,
        0.03,
        1 / 4000,
    ),
    "dex-lp": Category(
        14.0,
        5.0,
        0.12,
        0.22,
        0.6,
        0.8,
        0.10,
        0.3,
        0.6,
        18.0,
        40,
        0.6,
        0.14,
        0.3,
        3e6,
        0.05,
        1 / 900,
    ),
    "yield-vault": Category(
        7.0,
        7.0,
        0.06,
        0.12,
        0.4,
        0.3,
        0.03,
        0.4,
        0.35,
        5.0,
        60,
        0.5,
        0.09,
        0.25,
        5e6,
        0.03,
        1 / 2500,
    ),
    "staking": Category(
        3.2,
        3.2,
        0.03,
        0.025,
        0.1,
        0.0,
        0.005,
        0.0,
        0.1,
        1.0,
        365,
        0.3,
        0.01,
        0.1,
        3e8,
        0.01,
        1 / 10000,
    ),
    "farm": Category(
        4.0,
        2.5,
        0.15,
        0.3,
        0.6,
        0.6,
        0.08,
        0.25,
        1.0,
        45.0,
        20,
        0.75,
        0.3,
        0.45,
        1e6,
        0.07,
        1 / 600,
    ),
}
CATEGORY_NAMES = tuple(CATEGORIES)

# slug: (category, chains, share weight, APY multiplier, volatility multiplier,
#        reward multiplier, death multiplier, stable share or None)
PROJECTS = {
    "aave-v3": (
        "lending",
        ["Ethereum", "Arbitrum", "Base", "Optimism", "Polygon", "Avalanche"],
        6,
        1.0,
        0.8,
        0.6,
        0.3,
        None,
    ),
    "aave-v2": ("lending", ["Ethereum", "Polygon", "Avalanche"], 2, 0.6, 0.8, 0.5, 2.0, None),
    "compound-v3": (
        "lending",
        ["Ethereum", "Arbitrum", "Base", "Polygon", "Optimism"],
        3,
        1.0,
        0.9,
        1.2,
        0.5,
        None,
    ),
    "morpho-blue": ("lending", ["Ethereum", "Base"], 6, 1.3, 1.6, 1.2, 1.5, None),
    "spark": ("lending", ["Ethereum"], 1, 1.1, 0.6, 0.3, 0.3, None),
    "euler-v2": ("lending", ["Ethereum", "Base"], 2, 1.4, 1.6, 1.8, 1.5, None),
    "fluid-lending": ("lending", ["Ethereum", "Arbitrum", "Base"], 2, 1.3, 1.0, 1.0, 0.5, None),
    "venus-core-pool": ("lending", ["BSC"], 3, 1.0, 1.3, 1.3, 1.0, None),
    "kamino-lend": ("lending", ["Solana"], 3, 1.4, 1.4, 1.5, 1.0, None),
    "radiant-v2": ("lending", ["Arbitrum", "BSC"], 2, 1.2, 1.5, 3.0, 4.0, None),
    "uniswap-v3": (
        "dex-lp",
        ["Ethereum", "Arbitrum", "Base", "Optimism", "Polygon", "BSC"],
        8,
        1.0,
        1.0,
        0.2,
        0.8,
        None,
    ),
    "curve-dex": (
        "dex-lp",
        ["Ethereum", "Arbitrum", "Polygon", "Optimism"],
        4,
        0.4,
        0.7,
        0.8,
        0.6,
        0.7,
    ),
    "balancer-v2": (
        "dex-lp",
        ["Ethereum", "Arbitrum", "Polygon", "Avalanche"],
        2,
        0.7,
        1.0,
        1.0,
        1.2,
        None,
    ),
    "aerodrome-slipstream": ("dex-lp", ["Base"], 4, 1.2, 1.2, 2.0, 1.0, None),
    "velodrome-v2": ("dex-lp", ["Optimism"], 3, 1.0, 1.2, 2.0, 1.2, None),
    "pancakeswap-amm-v3": (
        "dex-lp",
        ["BSC", "Ethereum", "Arbitrum", "Base"],
        4,
        1.0,
        1.1,
        1.0,
        1.0,
        None,
    ),
    "raydium-amm": ("dex-lp", ["Solana"], 3, 1.6, 1.5, 0.8, 1.5, None),
    "yearn-finance": (
        "yield-vault",
        ["Ethereum", "Arbitrum", "Polygon"],
        2,
        0.9,
        0.8,
        0.5,
        0.8,
        None,
    ),
    "beefy": (
        "yield-vault",
        ["Arbitrum", "Base", "BSC", "Polygon", "Optimism", "Avalanche"],
        5,
        1.2,
        1.3,
        1.0,
        1.3,
        None,
    ),
    "convex-finance": ("yield-vault", ["Ethereum", "Arbitrum"], 2, 1.0, 0.9, 1.5, 0.8, 0.6),
    "pendle": ("yield-vault", ["Ethereum", "Arbitrum", "BSC"], 3, 1.6, 1.6, 1.5, 1.0, None),
    "lido": ("staking", ["Ethereum"], 1, 1.0, 1.0, 0.0, 0.0, 0.0),
    "rocket-pool": ("staking", ["Ethereum"], 1, 0.9, 1.0, 0.0, 0.0, 0.0),
    "jito": ("staking", ["Solana"], 1, 2.3, 1.5, 1.0, 0.0, 0.0),
    "ethena-usde": ("staking", ["Ethereum"], 1, 3.5, 10.0, 0.0, 0.0, 1.0),
    "sushiswap": (
        "farm",
        ["Ethereum", "Arbitrum", "Polygon", "BSC", "Avalanche"],
        3,
        1.0,
        1.0,
        1.0,
        1.3,
        None,
    ),
    "trader-joe-dex": ("farm", ["Avalanche", "Arbitrum", "BSC"], 2, 1.0, 1.1, 1.0, 1.2, None),
    "stargate-v2": (
        "farm",
        ["Ethereum", "Arbitrum", "Base", "BSC", "Polygon", "Optimism", "Avalanche"],
        2,
        1.0,
        0.7,
        0.6,
        0.8,
        0.9,
    ),
}

STABLE_SINGLE = ["USDC", "USDT", "DAI", "USDE", "FRAX", "GHO", "PYUSD", "USDS", "CRVUSD"]
VOLATILE_SINGLE = ["WETH", "WBTC", "WSTETH", "CBBTC", "LINK", "WEETH", "{native}"]
STABLE_PAIRS = ["USDC-USDT", "DAI-USDC", "USDE-USDC", "FRAX-USDC", "USDC-USDS"]
VOLATILE_PAIRS = [
    "WETH-USDC",
    "WBTC-WETH",
    "WSTETH-WETH",
    "{native}-USDC",
    "{native}-WETH",
    "PEPE-WETH",
    "LINK-WETH",
    "{native}-USDT",
]
STAKING_SYMBOLS = {
    "lido": "STETH",
    "rocket-pool": "RETH",
    "jito": "JITOSOL",
    "ethena-usde": "SUSDE",
}
FEE_TIERS = ["0.01%", "0.05%", "0.3%", "1%"]


# --------------------------------------------------------------------------- API


def generate_snapshots(
    out_path: str | Path,
    n_pools: int = DEFAULT_POOLS,
    n_days: int = DEFAULT_DAYS,
    seed: int = DEFAULT_SEED,
    start_date: date = DEFAULT_START,
    freq: str = "hourly",
    chunk_pools: int = DEFAULT_CHUNK_POOLS,
) -> dict:
    """Write synthetic snapshots to ``out_path`` (parquet); return rows, pools, seconds."""
    if n_pools < 1:
        raise ValueError(f"n_pools must be >= 1, got {n_pools}")
    if n_days < 2:
        raise ValueError(f"n_days must be >= 2, got {n_days}")
    if freq not in FREQUENCIES:
        raise ValueError(f"freq must be one of {FREQUENCIES}, got {freq!r}")
    if chunk_pools < 1:
        raise ValueError(f"chunk_pools must be >= 1, got {chunk_pools}")
    started = time.perf_counter()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = out_path.with_name(out_path.name + ".tmp")

    pools = _pool_attributes(n_pools, n_days, seed)
    market = _market_factor(n_days, seed)
    start_us = (
        int(datetime(start_date.year, start_date.month, start_date.day, tzinfo=UTC).timestamp())
        * 1_000_000
    )
    outage_days = _outage_days(n_days, seed)

    rows = 0
    log(f"generating {n_pools} pools x {n_days} days ({freq}) -> {out_path}")
    # the file says it is generated, and from which seed (train's data_provenance)
    schema = SCHEMA.with_metadata(
        {GENERATED_METADATA_KEY: json.dumps({"seed": seed, "pools": n_pools, "days": n_days})}
    )
    with pq.ParquetWriter(tmp_path, schema, compression="zstd") as writer:
        for first in range(0, n_pools, chunk_pools):
            index = np.arange(first, min(first + chunk_pools, n_pools))
            table = _chunk_table(pools, index, market, outage_days, seed, n_days, freq, start_us)
            writer.write_table(table, row_group_size=1 << 20)
            rows += table.num_rows
            log(
                f"  pools {first + 1}-{index[-1] + 1} of {n_pools}: {rows:,} rows so far "
                f"({time.perf_counter() - started:.1f} s)"
            )
    tmp_path.replace(out_path)
    seconds = time.perf_counter() - started
    log(f"wrote {rows:,} rows for {n_pools} pools to {out_path} in {seconds:.1f} s")
    return {"rows": rows, "pools": n_pools, "seconds": seconds, "path": str(out_path)}


# --------------------------------------------------------------------------- internals


def _market_factor(n_days: int, seed: int) -> np.ndarray:
    """Common daily market factor: AR(1) with occasional regime jumps."""
    from scipy.signal import lfilter  # scipy.signal costs ~1 s to import: only when generating

    rng = np.random.default_rng([seed, 2])
    shocks = rng.normal(0.0, 0.12, n_days)
    jumps = (rng.random(n_days) < 1 / 60) * rng.normal(0.0, 0.6, n_days)
    return lfilter([1.0], [1.0, -0.97], shocks + jumps)


def _outage_days(n_days: int, seed: int) -> np.ndarray:
    """Days on which DefiLlama stored nothing for any pool (about 1 in 100)."""
    rng = np.random.default_rng([seed, 3])
    days = rng.random(n_days) < 0.01
    days[0] = days[-1] = False
    return days


def _choice(rng: np.random.Generator, options: list, size: int, weights=None) -> np.ndarray:
    probabilities = None
    if weights is not None:
        probabilities = np.asarray(weights, dtype=float) / np.sum(weights)
    return rng.choice(len(options), size=size, p=probabilities)


def _pool_names(project_id: np.ndarray, u: np.ndarray) -> tuple:
    """Each pool's chain, category, stablecoin flag, symbol and poolMeta, from the
    project draws and the per-pool uniforms `u` (no random draws of its own)."""
    n_pools = len(project_id)
    project_names = list(PROJECTS)
    chain_names = list(CHAINS)
    chain_id = np.empty(n_pools, dtype=np.int64)
    category_id = np.empty(n_pools, dtype=np.int64)
    symbols, metas = [], []
    stable = np.empty(n_pools, dtype=bool)
    for i in range(n_pools):  # per pool, scalar bookkeeping only
        name = project_names[project_id[i]]
        category, chains, _, _, _, _, _, stable_share = PROJECTS[name]
        category_id[i] = CATEGORY_NAMES.index(category)
        weights = np.array([CHAINS[c][0] for c in chains])
        pick = int(np.searchsorted(np.cumsum(weights / weights.sum()), u[i, 0], side="right"))
        chain = chains[min(pick, len(chains) - 1)]
        chain_id[i] = chain_names.index(chain)
        if stable_share is None:
            stable_share = CATEGORIES[category].stable_share
        stable[i] = u[i, 1] < stable_share
        if category == "staking":
            symbol = STAKING_SYMBOLS[name]
        else:
            pairs = category in ("dex-lp", "farm") or (category == "yield-vault" and u[i, 2] < 0.4)
            pool_list = (
                (STABLE_PAIRS if pairs else STABLE_SINGLE)
                if stable[i]
                else (VOLATILE_PAIRS if pairs else VOLATILE_SINGLE)
            )
            symbol = pool_list[int(u[i, 3] * len(pool_list))].format(native=NATIVE_TOKEN[chain])
        symbols.append(symbol)
        if name in ("uniswap-v3", "pancakeswap-amm-v3"):
            meta = FEE_TIERS[int(u[i, 4] * 2) if stable[i] else 1 + int(u[i, 4] * 3)]
        elif name == "pendle":
            meta = f"for {int(30 + u[i, 4] * 300)} days"
        elif u[i, 4] < 0.03:
            meta = "isolated" if category == "lending" else "boosted"
        else:
            meta = None
        metas.append(meta)
    return chain_id, category_id, stable, symbols, metas


def _pool_attributes(n_pools: int, n_days: int, seed: int) -> dict:
    """Static attributes of every pool (arrays of length n_pools)."""
    rng = np.random.default_rng([seed, 0])
    project_names = list(PROJECTS)
    chain_names = list(CHAINS)
    project_id = _choice(rng, project_names, n_pools, [PROJECTS[name][2] for name in project_names])
    u = rng.random((n_pools, 16))  # uniforms for the per-pool draws below
    z = rng.normal(size=(n_pools, 8))

    chain_id, category_id, stable, symbols, metas = _pool_names(project_id, u)

    proj = [PROJECTS[project_names[p]] for p in project_id]
    apy_mult = np.array([p[3] for p in proj])
    vol_mult = np.array([p[4] for p in proj])
    reward_mult = np.array([p[5] for p in proj])
    death_mult = np.array([p[6] for p in proj])
    cats = [CATEGORIES[CATEGORY_NAMES[c]] for c in category_id]

    def per_category(field: str) -> np.ndarray:
        return np.array([getattr(c, field) for c in cats], dtype=float)

    chain_vol = np.array([CHAINS[chain_names[c]][1] for c in chain_id])
    chain_tvl = np.array([CHAINS[chain_names[c]][2] for c in chain_id])
    chain_death = np.array([CHAINS[chain_names[c]][3] for c in chain_id])
    chain_end = np.array([CHAINS[chain_names[c]][4] or np.inf for c in chain_id]) * n_days

    stable_f = stable.astype(float)
    vol = vol_mult * chain_vol * np.where(stable, 0.6, 1.0)
    base_level = np.where(stable, per_category("stable_base_apy"), per_category("base_apy"))
    base_level = base_level * apy_mult * np.exp(0.35 * z[:, 0])

    late = u[:, 5] < per_category("late_launch_prob")
    launch_day = np.where(late, np.floor(u[:, 6] * (n_days - 30)), 0).astype(np.int64)

    has_reward = u[:, 7] < np.clip(per_category("reward_prob") * reward_mult, 0, 1)
    reward_apy0 = (
        per_category("reward_apy")
        * np.exp(0.6 * z[:, 1])
        * np.where(stable, 0.5, 1.0)
        * np.maximum(reward_mult, 0.3)
    )
    reward_apy0 = np.where(late, reward_apy0 * (1.5 + 2.5 * u[:, 8]), reward_apy0)
    half_life = per_category("reward_half_life") * np.exp(0.5 * z[:, 2])
    program_start = np.where(late, launch_day, -np.floor(u[:, 9] * 200)).astype(float)
    program_length = np.array([30, 60, 90, 120, 180, 270])[(u[:, 10] * 6).astype(int)] * (
        0.8 + 0.4 * u[:, 11]
    )
    cliff_day = np.where(
        u[:, 12] < per_category("cliff_prob"), program_start + program_length, np.inf
    )
    chain_funded = u[:, 13] < 0.5
    cliff_day = np.where(chain_funded, np.minimum(cliff_day, chain_end), cliff_day)
    cliff_day = np.where(has_reward, cliff_day, np.inf)

    death_p = np.clip(
        per_category("death_prob")
        * death_mult
        * chain_death
        * np.where(late, 1.5, 1.0)
        * 2.5
        * n_days
        / 365,
        0,
        0.9,
    )
    dies = u[:, 14] < death_p
    earliest = launch_day + 30
    death_day = np.where(
        dies, earliest + np.floor(u[:, 15] * np.maximum(n_days - earliest, 1)), np.inf
    )
    dies = dies & (death_day < n_days - 1)
    death_day = np.where(dies, death_day, np.inf)
    drain_start = death_day - np.floor(10 + 35 * rng.random(n_pools))
    cliff_day = np.where(dies & has_reward, np.minimum(cliff_day, drain_start), cliff_day)

    tvl0 = per_category("tvl_median") * chain_tvl * np.exp(1.3 * z[:, 3])
    tvl0 = np.where(late, tvl0 * 0.15, tvl0)

    pool_ids = [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(n_pools)]
    return {
        "pool": np.array(pool_ids, dtype=object),
        "project": np.array([project_names[p] for p in project_id], dtype=object),
        "chain": np.array([chain_names[c] for c in chain_id], dtype=object),
        "symbol": np.array(symbols, dtype=object),
        "poolMeta": np.array(metas, dtype=object),
        "stablecoin": stable,
        "category_id": category_id,
        "base_level": base_level,
        "ou_kappa": per_category("ou_kappa"),
        "ou_sigma": per_category("ou_sigma") * vol,
        "market_beta": per_category("market_beta") * np.where(stable, 0.7, 1.0) * vol_mult,
        "dilution": per_category("dilution"),
        # long-run pull of the APY level: equilibrium at level_drift / 0.01 in log
        # APY (yields compress or recover over months)
        "level_drift": per_category("ou_sigma") * vol * (-0.012 + 0.01 * z[:, 4]),
        "hourly_sigma": per_category("hourly_sigma") * vol,
        "spike_rate": per_category("spike_rate") * vol_mult,
        "flow": per_category("flow"),
        "u_bar": 0.55 + 0.3 * rng.random(n_pools),
        "kink": 0.88 + 0.07 * rng.random(n_pools),
        "has_reward": has_reward,
        "reward_null_after": rng.random(n_pools) < 0.5,
        "reward_apy0": reward_apy0,
        "reward_lambda": np.log(2) / half_life,
        "program_start": np.maximum(program_start, launch_day),
        "cliff_day": cliff_day,
        "launch_day": launch_day,
        "death_day": death_day,
        "drain_start": drain_start,
        "drain_rate": 0.05 + 0.1 * rng.random(n_pools),
        "tvl0": tvl0,
        "tvl_drift": -0.0005 + 0.0015 * rng.normal(size=n_pools),
        "tvl_sigma": 0.02 + 0.02 * vol_mult * (1 - 0.4 * stable_f),
        "missing_hour_rate": np.exp(rng.uniform(np.log(0.003), np.log(0.06), n_pools)),
        "missing_day_rate": np.exp(rng.uniform(np.log(0.001), np.log(0.03), n_pools)),
        "base_unknown": (category_id == CATEGORY_NAMES.index("farm")) & (rng.random(n_pools) < 0.1),
    }


def _rate_curve(util: np.ndarray, kink: np.ndarray) -> np.ndarray:
    """Supply APY shape of a kinked lending rate model (unscaled)."""
    borrow = (
        0.02 + 0.8 * np.minimum(util, kink) / kink + 12.0 * np.maximum(util - kink, 0) / (1 - kink)
    )
    return borrow * util


def _simulate_daily(pools: dict, index: np.ndarray, market: np.ndarray, noise: dict, n_days: int):
    """Daily base APY, reward emissions and TVL for the pools in ``index``."""
    p = {key: value[index] for key, value in pools.items()}
    n = len(index)
    lending = p["category_id"] == CATEGORY_NAMES.index("lending")
    base_ref = _rate_curve(p["u_bar"], p["kink"])
    reward_ref = p["reward_apy0"] / 100 * p["tvl0"]  # emissions, USD / year
    norm = p["base_level"] + np.where(p["has_reward"], 0.4 * p["reward_apy0"], 0)

    x = np.zeros(n)
    level = np.zeros(n)
    slope = np.zeros(n)
    borrow = np.zeros(n)
    log_tvl = np.log(p["tvl0"])
    slow_tvl = log_tvl.copy()
    ema_apy = norm.copy()
    base = np.empty((n, n_days))
    emission = np.empty((n, n_days))
    tvl = np.empty((n, n_days))
    market_change = np.diff(market, prepend=market[0])
    for d in range(n_days):
        x += -p["ou_kappa"] * x + p["ou_sigma"] * noise["x"][:, d]
        # trends that persist for weeks: an integrated OU around a slowly
        # compressing (or recovering) pool-specific level
        slope += -0.05 * slope + 0.012 * p["ou_sigma"] * noise["level"][:, d]
        level += slope - 0.01 * level + p["level_drift"]
        borrow += (
            -0.06 * borrow
            + 0.05 * noise["borrow"][:, d]
            + 0.3 * p["market_beta"] * market_change[d]
        )
        dilution = log_tvl - slow_tvl
        util = np.clip(p["u_bar"] * np.exp(borrow - dilution), 0.01, 0.995)
        lending_base = (
            p["base_level"] * _rate_curve(util, p["kink"]) / base_ref * np.exp(0.5 * x + level)
        )
        other_base = p["base_level"] * np.exp(
            x + level + p["market_beta"] * market[d] - p["dilution"] * dilution
        )
        draining = d >= p["drain_start"]
        days_draining = np.maximum(d - p["drain_start"], 0)
        today_base = np.where(lending, lending_base, other_base) * np.where(
            draining, np.exp(-0.04 * days_draining), 1.0
        )
        age = d - p["program_start"]
        rewarding = p["has_reward"] & (age >= 0) & (d < p["cliff_day"])
        today_emission = np.where(
            rewarding, reward_ref * np.exp(-p["reward_lambda"] * np.maximum(age, 0)), 0.0
        )
        base[:, d] = today_base
        emission[:, d] = today_emission
        tvl[:, d] = np.exp(log_tvl)

        apy = today_base + 100 * today_emission / np.exp(log_tvl)
        ema_apy += 0.08 * (apy - ema_apy)  # capital arrives over weeks
        live = d >= p["launch_day"]
        pull = np.clip(np.log(ema_apy / norm), -1.5, 1.5)
        pull = np.where(pull > 0, pull, 0.3 * pull)  # capital is sticky on the way out
        step = (
            p["tvl_drift"]
            + p["flow"] * pull
            + p["tvl_sigma"] * noise["tvl"][:, d]
            + 0.15 * market_change[d]
            - np.where(draining, p["drain_rate"], 0.0)
        )
        log_tvl = log_tvl + np.where(live, step, 0.0)
        slow_tvl += 0.05 * (log_tvl - slow_tvl)
    return base, emission, tvl


def _pool_noise(index: np.ndarray, seed: int, n_days: int, n_steps: int) -> tuple:
    """The per-pool random draws of one chunk: one seeded stream per pool, so the
    output does not depend on how pools are chunked."""
    n = len(index)
    noise = {key: np.empty((n, n_days)) for key in ("x", "borrow", "tvl", "level")}
    hour_noise = np.empty((n, n_steps))
    tvl_noise = np.empty((n, n_steps))
    gaps = np.empty((n, n_steps))
    spikes = np.empty((n, n_steps))
    jitter = np.empty((n, n_steps), dtype=np.int64)
    day_gaps = np.empty((n, n_days))
    cliff_hour = np.empty(n)
    for row, pool in enumerate(index):  # one seeded stream per pool: chunking-invariant
        rng = np.random.default_rng([seed, 1, int(pool)])
        for key in noise:
            noise[key][row] = rng.standard_normal(n_days)
        hour_noise[row] = rng.standard_normal(n_steps)
        tvl_noise[row] = rng.standard_normal(n_steps)
        gaps[row] = rng.random(n_steps)
        spikes[row] = rng.random(n_steps)
        jitter[row] = rng.integers(20_000_000, 300_000_000, n_steps)
        day_gaps[row] = rng.random(n_days)
        cliff_hour[row] = rng.integers(0, 24)
    return noise, hour_noise, tvl_noise, gaps, spikes, jitter, day_gaps, cliff_hour


def _chunk_table(
    pools: dict,
    index: np.ndarray,
    market: np.ndarray,
    outage_days: np.ndarray,
    seed: int,
    n_days: int,
    freq: str,
    start_us: int,
) -> pa.Table:
    hourly = freq == "hourly"
    n_steps = n_days * 24 if hourly else n_days
    hours = np.arange(n_steps) if hourly else np.arange(n_days) * 24 + 23

    noise, hour_noise, tvl_noise, gaps, spikes, jitter, day_gaps, cliff_hour = _pool_noise(
        index, seed, n_days, n_steps
    )

    base_d, emission_d, tvl_d = _simulate_daily(pools, index, market, noise, n_days)
    p = {key: value[index] for key, value in pools.items()}

    # daily values are end-of-day states: within day d, move from the end of
    # day d-1 to the end of day d
    position = hours / 24.0
    lower = np.floor(position).astype(np.int64)
    weight = position - lower
    previous = np.maximum(lower - 1, 0)

    def hourly_path(daily: np.ndarray) -> np.ndarray:
        return daily[:, previous] * (1 - weight) + daily[:, lower] * weight

    log_base = np.log(hourly_path(base_d))
    phi = 0.9 if hourly else 0.3
    from scipy.signal import lfilter  # see _market_factor

    ar = lfilter([1.0], [1.0, -phi], hour_noise, axis=1) * np.sqrt(1 - phi**2)
    sigma = p["hourly_sigma"][:, None] * (1.0 if hourly else 2.0)
    base = np.exp(log_base + sigma * ar)
    spike_rate = p["spike_rate"][:, None] * (1.0 if hourly else 6.0)
    is_spike = spikes < spike_rate
    size = np.minimum(spikes / spike_rate, 1.0)
    base = np.where(is_spike, base * np.exp(1.0 + 2.5 * size), base)
    tvl = hourly_path(tvl_d) * np.exp(0.004 * tvl_noise)

    emission = hourly_path(emission_d)
    cliff_at = p["cliff_day"] * 24 + cliff_hour  # cliffs land on an hour
    after_cliff = p["has_reward"][:, None] & (hours[None, :] >= cliff_at[:, None])
    emission = np.where(after_cliff, 0.0, emission)
    reward = 100 * emission / np.maximum(tvl, 1.0)
    reward = np.where(p["has_reward"][:, None], reward, np.nan)
    reward = np.where(after_cliff & p["reward_null_after"][:, None], np.nan, reward)
    base = np.where(p["base_unknown"][:, None], np.nan, base)

    day_of_step = hours // 24
    keep = (day_of_step[None, :] >= p["launch_day"][:, None]) & (
        day_of_step[None, :] < p["death_day"][:, None]
    )
    keep &= ~outage_days[day_of_step][None, :]
    keep &= ~(day_gaps[:, day_of_step] < p["missing_day_rate"][:, None])
    if hourly:
        keep &= gaps >= p["missing_hour_rate"][:, None]
    pool_row, step = np.nonzero(keep)

    base_v = np.round(base[pool_row, step], 5)
    reward_v = np.round(reward[pool_row, step], 5)
    apy_v = np.round(
        np.where(np.isnan(base_v), 0, base_v) + np.where(np.isnan(reward_v), 0, reward_v), 5
    )
    tvl_v = np.round(tvl[pool_row, step])
    ts = start_us + hours[step] * 3_600_000_000 + jitter[pool_row, step]
    stable_v = p["stablecoin"][pool_row]
    pair = np.array(["-" in s for s in p["symbol"]])
    il_risk = np.where(pair & ~p["stablecoin"], "yes", "no").astype(object)
    exposure = np.where(pair, "multi", "single").astype(object)

    def strings(values: np.ndarray) -> pa.Array:
        """Per-pool strings repeated per row, built as a dictionary then decoded."""
        dictionary = pa.array(list(values), type=pa.string())
        return pa.DictionaryArray.from_arrays(pa.array(pool_row, type=pa.int32()), dictionary).cast(
            pa.string()
        )

    columns = [
        pa.array(ts, type=pa.timestamp("us", tz="UTC")),
        strings(p["pool"]),
        strings(p["chain"]),
        strings(p["project"]),
        strings(p["symbol"]),
        strings(p["poolMeta"]),
        pa.array(tvl_v, type=pa.float64()),
        pa.array(apy_v, type=pa.float64()),
        pa.array(base_v, type=pa.float64(), from_pandas=True),
        pa.array(reward_v, type=pa.float64(), from_pandas=True),
        pa.array(stable_v, type=pa.bool_()),
        strings(il_risk),
        strings(exposure),
    ]
    return pa.Table.from_arrays(columns, schema=SCHEMA)
