"""The landing commands' flags: generate, ingest, fetch, collect (and the HTTP
client's flags, which fetch, collect and `refresh --collect` share)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from apy_runway.cli.common import Command, memory_size, percent
from apy_runway.foundation import defaults
from inference.contracts import SHRINK_MIN_RATIO, TIMESTAMP_UNITS

if TYPE_CHECKING:
    from apy_runway.foundation.paths import ProjectPaths

# --------------------------------------------------------------------------- generate

GENERATE_HELP = "write synthetic hourly DefiLlama pool snapshots (the embedded default data)"


def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pools",
        type=int,
        default=defaults.DEFAULT_POOLS,
        help=f"number of pools (default: {defaults.DEFAULT_POOLS})",
    )
    parser.add_argument(
        "--days",
        type=int,
        default=defaults.DEFAULT_DAYS,
        help=f"number of days (default: {defaults.DEFAULT_DAYS})",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=defaults.DEFAULT_SEED,
        help=f"random seed (default: {defaults.DEFAULT_SEED})",
    )
    parser.add_argument(
        "--start",
        default=defaults.DEFAULT_START.isoformat(),
        help=f"first UTC day, YYYY-MM-DD (default: {defaults.DEFAULT_START})",
    )
    parser.add_argument(
        "--freq",
        default="hourly",
        choices=defaults.FREQUENCIES,
        help="one snapshot per hour or per day (default: hourly)",
    )
    parser.add_argument(
        "--chunk-pools",
        type=int,
        default=defaults.DEFAULT_CHUNK_POOLS,
        help="pools generated and written at a time; bounds memory "
        f"(default: {defaults.DEFAULT_CHUNK_POOLS})",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="output parquet (default: data/landing/generated_snapshots.parquet)",
    )


def run_generate(args: argparse.Namespace, paths: ProjectPaths) -> int:
    from datetime import date

    from apy_runway.foundation.console import UserError
    from apy_runway.landing.generate import generate_snapshots

    try:
        start = date.fromisoformat(args.start)
    except ValueError:
        raise UserError(f"--start must be YYYY-MM-DD, got {args.start!r}") from None
    out = Path(args.out) if args.out else paths.generated_snapshots
    generate_snapshots(
        out,
        n_pools=args.pools,
        n_days=args.days,
        seed=args.seed,
        start_date=start,
        freq=args.freq,
        chunk_pools=args.chunk_pools,
    )
    return 0


GENERATE = Command(GENERATE_HELP, add_generate_arguments, run_generate)

# --------------------------------------------------------------------------- ingest

INGEST_HELP = (
    "land snapshot files (CSV/parquet exports, /chart JSON, collected /pools snapshots) "
    "in the append-only raw store; quarantine bad rows"
)


def add_ingest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs",
        nargs="*",
        type=Path,
        help="CSV / parquet / /chart JSON / collected /pools .json.gz files or folders of "
        "them (default: everything waiting in data/landing/)",
    )
    parser.add_argument(
        "--pools-json",
        type=Path,
        default=None,
        help="a saved DefiLlama /pools response (.json or .json.gz): chain, project, symbol, "
        "stablecoin, ilRisk, exposure, poolMeta per pool, joined to /chart rows by pool id "
        "(default without inputs: data/landing/defillama/pools.json or the newest collected "
        "snapshot)",
    )
    parser.add_argument(
        "--no-pool-metadata",
        action="store_true",
        help="land /chart files without --pools-json, their chain, project and symbol null "
        "(without this flag such an ingest is refused)",
    )
    parser.add_argument(
        "--replace",
        action="store_true",
        help="move the existing raw store and quarantine aside (data/replaced/<time>/) and "
        "start a new store with these inputs",
    )
    parser.add_argument(
        "--retry-refused",
        action="store_true",
        help="move the files set aside in data/landing/refused/ back to data/landing/ and "
        "ingest the landing folder again",
    )
    parser.add_argument(
        "--timestamp-unit",
        choices=sorted(TIMESTAMP_UNITS),
        default=None,
        help="the unit of numbers in the timestamp column (epoch seconds, milliseconds or "
        "microseconds); without it such rows are quarantined (epoch_timestamp_without_unit), "
        "since 20250319 or 1742342400000000 cannot be told apart from an epoch",
    )
    parser.add_argument(
        "--memory-limit",
        default=defaults.DEFAULT_MEMORY_LIMIT,
        type=memory_size,
        help=(
            "DuckDB memory limit while validating a file (spills to disk beyond it; "
            f"default {defaults.DEFAULT_MEMORY_LIMIT})"
        ),
    )


def run_ingest(args: argparse.Namespace, paths: ProjectPaths) -> int:
    from apy_runway.foundation.console import UserError
    from apy_runway.landing.ingest import ingest
    from apy_runway.landing.ingest.refused import retry_refused

    if args.retry_refused:
        if args.inputs:
            raise UserError("--retry-refused ingests the landing folder: name no inputs")
        retry_refused(paths)
    result = ingest(
        args.inputs,
        paths,
        pools_json=args.pools_json,
        memory_limit=args.memory_limit,
        replace=args.replace,
        timestamp_unit=args.timestamp_unit,
        no_pool_metadata=args.no_pool_metadata,
    )
    for name, why in result.set_aside:
        print(f"refused and set aside in data/landing/refused/: {name}: {why}")
    return 1 if result.set_aside else 0


INGEST = Command(INGEST_HELP, add_ingest_arguments, run_ingest)

# --------------------------------------------------------------------------- the HTTP client


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    """The client's flags (apy_runway/foundation/http.py), the same on every
    command that downloads."""
    parser.add_argument(
        "--delay",
        type=float,
        default=defaults.DEFAULT_DELAY,
        help=f"seconds to wait between requests (default {defaults.DEFAULT_DELAY:g})",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=defaults.DEFAULT_RETRIES,
        help=f"retries per request after the first attempt (default {defaults.DEFAULT_RETRIES})",
    )
    parser.add_argument(
        "--backoff",
        type=float,
        default=defaults.DEFAULT_BACKOFF,
        help=f"first retry wait in seconds, doubled each retry; a server's Retry-After "
        f"wins (at most {defaults.MAX_RETRY_AFTER:g} s) (default {defaults.DEFAULT_BACKOFF:g})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=defaults.DEFAULT_TIMEOUT,
        help=f"seconds one connect or read may wait (default {defaults.DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=defaults.DEFAULT_DEADLINE,
        help="seconds for a whole request: connect, headers, body and its retries, however "
        f"slowly the server sends (default {defaults.DEFAULT_DEADLINE:g})",
    )
    parser.add_argument(
        "--max-chart-mb",
        type=float,
        default=defaults.DEFAULT_MAX_CHART_MB,
        help="refuse a /chart body larger than this "
        f"(default {defaults.DEFAULT_MAX_CHART_MB:g} MB)",
    )
    parser.add_argument(
        "--max-pools-mb",
        type=float,
        default=defaults.DEFAULT_MAX_POOLS_MB,
        help="refuse a /pools body larger than this "
        f"(default {defaults.DEFAULT_MAX_POOLS_MB:g} MB)",
    )


def client_from_arguments(args: argparse.Namespace):
    """The HTTP client the client flags describe."""
    from apy_runway.foundation.http import Client

    return Client(
        args.delay,
        args.retries,
        args.backoff,
        args.timeout,
        args.deadline,
        args.max_chart_mb,
        args.max_pools_mb,
    )


def add_base_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base-url",
        default=defaults.DEFAULT_BASE_URL,
        help=f"yields API base URL (default: {defaults.DEFAULT_BASE_URL})",
    )


# --------------------------------------------------------------------------- fetch

FETCH_HELP = "download DefiLlama /pools and /chart/{pool} responses into data/landing/defillama/"


def add_fetch_arguments(parser: argparse.ArgumentParser) -> None:
    add_base_url(parser)
    parser.add_argument(
        "--pool",
        action="append",
        default=[],
        metavar="POOL_ID",
        help="fetch only this pool id (repeatable)",
    )
    parser.add_argument(
        "--project",
        action="append",
        default=[],
        help="only pools of this project, e.g. aave-v3 (repeatable)",
    )
    parser.add_argument(
        "--chain",
        action="append",
        default=[],
        help="only pools on this chain, e.g. Ethereum (repeatable)",
    )
    parser.add_argument(
        "--min-tvl",
        type=float,
        default=None,
        help="only pools whose current tvlUsd is at least this",
    )
    parser.add_argument(
        "--max-pools",
        type=int,
        default=None,
        help="at most this many pools, largest current TVL first",
    )
    add_client_arguments(parser)
    parser.add_argument(
        "--refresh-pools",
        action="store_true",
        help="download /pools again even if pools.json is saved",
    )


def run_fetch(args: argparse.Namespace, paths: ProjectPaths) -> int:
    from apy_runway.landing.fetch import fetch

    result = fetch(
        paths,
        base_url=args.base_url,
        pool_ids=args.pool,
        projects=args.project,
        chains=args.chain,
        min_tvl=args.min_tvl,
        max_pools=args.max_pools,
        delay=args.delay,
        retries=args.retries,
        backoff=args.backoff,
        timeout=args.timeout,
        refresh_pools=args.refresh_pools,
        deadline=args.deadline,
        max_chart_mb=args.max_chart_mb,
        max_pools_mb=args.max_pools_mb,
    )
    return 1 if result.failed else 0


FETCH = Command(FETCH_HELP, add_fetch_arguments, run_fetch)

# --------------------------------------------------------------------------- collect

COLLECT_HELP = (
    "GET DefiLlama's /pools once: land the hourly snapshot of every pool in data/landing/pools/, "
    "back-fill new pools' /chart history"
)


def add_collect_arguments(parser: argparse.ArgumentParser) -> None:
    """collect's flags (`refresh --collect` takes the same; a parser that
    already has --allow-shrink keeps its own)."""
    add_base_url(parser)
    parser.add_argument(
        "--backfill-max",
        type=int,
        default=defaults.DEFAULT_BACKFILL_MAX,
        help="pools never seen whose /chart history is back-filled per run; the rest wait in "
        "a queue for the next runs, a failed one 1 h, 2 h, 4 h... at most a day "
        f"(default {defaults.DEFAULT_BACKFILL_MAX}; 0 = queue only)",
    )
    add_client_arguments(parser)
    if not any(a.dest == "allow_shrink" for a in parser._actions):
        parser.add_argument(
            "--allow-shrink",
            action="store_true",
            help=f"accept a snapshot with fewer than {percent(SHRINK_MIN_RATIO)} of the "
            "previous one's pools",
        )


def run_collect(args: argparse.Namespace, paths: ProjectPaths) -> int:
    from apy_runway.landing.collect import collect

    result = collect(
        paths,
        base_url=args.base_url,
        client=client_from_arguments(args),
        backfill_max=args.backfill_max,
        allow_shrink=args.allow_shrink,
    )
    return 1 if result.backfill_failed else 0


COLLECT = Command(COLLECT_HELP, add_collect_arguments, run_collect)
