"""`apy-runway fetch`: save DefiLlama's yields API responses for `apy-runway
ingest`: data/landing/defillama/pools.json (GET /pools), chart/<pool>.json
(GET /chart/{pool}) and fetch_failures.json (pools that failed every retry).

Imports: the standard library, apy_runway/foundation and apy_runway/landing
(floor 4, landing). The HTTP client is apy_runway/foundation/http.py, shared
with `collect` so their limits and errors are the same. Resumable (a saved
chart is never fetched again) and every file is written under a temporary name
and renamed, so an interrupted run leaves no half-written JSON; a failing pool
is reported and never stops the others. A pool id the pool-id rule
(pools_snapshot.pool_id_problem) refuses is reported before any request.
How to use it: docs/operations.md#using-it.
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from apy_runway.foundation.console import UserError, log
from apy_runway.foundation.defaults import (
    DEFAULT_BACKOFF,
    DEFAULT_BASE_URL,
    DEFAULT_DEADLINE,
    DEFAULT_DELAY,
    DEFAULT_MAX_CHART_MB,
    DEFAULT_MAX_POOLS_MB,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
)
from apy_runway.foundation.http import Client, FetchError, parse_json
from apy_runway.foundation.lock import locked
from apy_runway.foundation.paths import ProjectPaths
from apy_runway.landing.ingest.pools_snapshot import pool_id_of, pool_id_problem


@dataclass
class FetchResult:
    selected: int = 0
    saved: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already on disk
    failed: dict[str, str] = field(default_factory=dict)  # pool -> last error
    requests: int = 0


def landing_dir(paths: ProjectPaths) -> Path:
    return paths.landing / "defillama"


# --------------------------------------------------------------------------- files


def _write_json_atomically(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w") as handle:
            json.dump(payload, handle, separators=(",", ":"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- selection


def select_pools(
    pools: list[dict],
    pool_ids: list[str] | None = None,
    projects: list[str] | None = None,
    chains: list[str] | None = None,
    min_tvl: float | None = None,
    max_pools: int | None = None,
) -> list[str]:
    """Pool ids from a /pools `data` list, filtered, largest current TVL first."""
    if max_pools is not None and max_pools < 1:
        raise ValueError(f"max_pools must be >= 1, got {max_pools}")
    wanted_ids = set(pool_ids or [])
    wanted_projects = {p.lower() for p in projects or []}
    wanted_chains = {c.lower() for c in chains or []}

    def tvl(item: dict) -> float:
        value = item.get("tvlUsd")
        return float(value) if isinstance(value, (int, float)) else 0.0

    chosen: dict[str, float] = {}
    for item in pools:
        pool = pool_id_of(item.get("pool")) if isinstance(item, dict) else None
        if pool is None:
            continue
        if wanted_ids and pool not in wanted_ids:
            continue
        if wanted_projects and str(item.get("project", "")).lower() not in wanted_projects:
            continue
        if wanted_chains and str(item.get("chain", "")).lower() not in wanted_chains:
            continue
        if min_tvl is not None and tvl(item) < min_tvl:
            continue
        chosen.setdefault(pool, tvl(item))
    # explicit ids DefiLlama no longer lists are still worth asking for
    if not (wanted_projects or wanted_chains or min_tvl is not None):
        for pool in wanted_ids - chosen.keys():
            chosen[pool] = 0.0
    ordered = sorted(chosen, key=lambda pool: (-chosen[pool], pool))
    return ordered[:max_pools] if max_pools is not None else ordered


# --------------------------------------------------------------------------- fetch


def chart_path(chart_dir: Path, pool: str) -> Path:
    return chart_dir / f"{pool}.json"


def download_charts(
    client: Client, base: str, pools: list[str], chart_dir: Path, result: FetchResult
) -> None:
    """GET /chart/{pool} for each pool (safe ids only), saved atomically as
    <chart_dir>/<pool>.json; a pool that fails is recorded and never stops the
    others. Used by `fetch` and by `collect`'s back-fill."""
    chart_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    for number, pool in enumerate(pools, start=1):
        problem = pool_id_problem(pool)
        if problem:
            result.failed[pool] = problem
            continue
        url = f"{base}/chart/{urllib.parse.quote(pool, safe='')}"
        try:
            payload = client.get(url, pool, client.max_chart_bytes).payload
        except FetchError as error:
            result.failed[pool] = str(error)
            log(f"  {pool}: failed: {error}")
        else:
            _write_json_atomically(chart_path(chart_dir, pool), payload)
            result.saved.append(pool)
        if number % 50 == 0 or number == len(pools):
            elapsed = time.monotonic() - started
            log(
                f"  {number:,}/{len(pools):,} pools ({len(result.failed):,} failed, "
                f"{elapsed:.0f} s, ~{elapsed / number * (len(pools) - number):.0f} s left)"
            )


@locked("fetch")
def fetch(
    paths: ProjectPaths,
    base_url: str = DEFAULT_BASE_URL,
    pool_ids: list[str] | None = None,
    projects: list[str] | None = None,
    chains: list[str] | None = None,
    min_tvl: float | None = None,
    max_pools: int | None = None,
    delay: float = DEFAULT_DELAY,
    retries: int = DEFAULT_RETRIES,
    backoff: float = DEFAULT_BACKOFF,
    timeout: float = DEFAULT_TIMEOUT,
    refresh_pools: bool = False,
    deadline: float = DEFAULT_DEADLINE,
    max_chart_mb: float = DEFAULT_MAX_CHART_MB,
    max_pools_mb: float = DEFAULT_MAX_POOLS_MB,
) -> FetchResult:
    """Save /pools and the selected pools' /chart responses under landing/defillama/."""
    if max_pools is not None and max_pools < 1:
        raise ValueError(f"max_pools must be >= 1, got {max_pools}")
    client = Client(delay, retries, backoff, timeout, deadline, max_chart_mb, max_pools_mb)
    base = base_url.rstrip("/")
    folder = landing_dir(paths)
    pools_path = folder / "pools.json"
    chart_dir = folder / "chart"
    chart_dir.mkdir(parents=True, exist_ok=True)

    if pools_path.exists() and not refresh_pools:
        try:
            pools_payload = parse_json(pools_path.read_bytes())
            pools = pools_payload["data"]
        except (ValueError, KeyError, TypeError):
            raise UserError(
                f"{pools_path}: not a saved /pools response; delete it or pass --refresh-pools"
            ) from None
        log(f"reusing {pools_path} ({len(pools):,} pools; --refresh-pools to download again)")
    else:
        log(f"GET {base}/pools")
        try:
            pools_payload = client.get(f"{base}/pools", "/pools", client.max_pools_bytes).payload
        except FetchError as error:
            raise UserError(f"cannot download {base}/pools: {error}") from None
        _write_json_atomically(pools_path, pools_payload)
        pools = pools_payload["data"]
        log(f"saved {pools_path} ({len(pools):,} pools)")

    selected = select_pools(pools, pool_ids, projects, chains, min_tvl, max_pools)
    result = FetchResult(selected=len(selected))
    todo = []
    for pool in selected:
        problem = pool_id_problem(pool)
        if problem:
            result.failed[pool] = problem
            log(f"  {pool[:120]!r}: refused before any request: {problem}")
        elif chart_path(chart_dir, pool).exists():
            result.skipped.append(pool)
        else:
            todo.append(pool)
    log(
        f"{len(selected):,} pools selected: {len(result.skipped):,} already saved, "
        f"{len(todo):,} to fetch (delay {delay:g} s, ~{len(todo) * delay / 60:.0f} min at least)"
    )

    download_charts(client, base, todo, chart_dir, result)

    result.requests = client.requests
    failures_path = folder / "fetch_failures.json"
    if result.failed:
        _write_json_atomically(failures_path, {"failed": result.failed})
        log(
            f"{len(result.failed):,} pools failed (listed in {failures_path}); "
            "run fetch again to retry them"
        )
    else:
        failures_path.unlink(missing_ok=True)
    log(
        f"fetch: {len(result.saved):,} saved, {len(result.skipped):,} already saved, "
        f"{len(result.failed):,} failed; next: apy-runway ingest {chart_dir} "
        f"--pools-json {pools_path}"
    )
    return result
