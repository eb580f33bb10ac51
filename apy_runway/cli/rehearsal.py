"""The rehearsal (`apy-runway rehearse --hours N`): the live hourly loop for N
simulated hours on a scratch copy of a trained home (data/rehearsal/ by default),
against a DefiLlama stand-in (apy_runway/landing/standin.py) and a local S3
(moto's server), both on 127.0.0.1, started and stopped here. Each hour the
stand-in serves the next /pools snapshot dated that hour; the real refresh
(cli/hourly.py: collect ... publish), then the scheduled Lambda's core
(inference.service.score_hour) run with the simulated hour as their clock.
Ends with `ledger sync` and its dbt models; the report gives a line per hour,
the last hour's health and the ledger's counts.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apy_runway.foundation.console import UserError, log
from apy_runway.foundation.paths import ProjectPaths, project_paths
from apy_runway.warehouse.session import DbtSession

if TYPE_CHECKING:
    from apy_runway.landing.standin import Reply

BUCKET = "apy-runway-rehearsal"
# a pool with no row in the store's last ALIVE_HOURS is dead: the stand-in drops it
ALIVE_HOURS = 48
CHART_DAYS = 30  # the /chart history a new pool brings


# --------------------------------------------------------------------------- the stand-in's world


class World:
    """The pools the stand-in lists: the home's live pools as of its newest
    hour, their APY and TVL a seeded random walk per hour, plus `new_pools`
    that appear one after the other from the second hour with a /chart
    history of CHART_DAYS days."""

    def __init__(self, last_rows: list[dict], start: datetime, new_pools: int, seed: int):
        self.rng = random.Random(seed)
        self.pools = {row["pool"]: dict(row) for row in last_rows}
        self.start = start
        self.charts: dict[str, dict] = {}
        self.arrivals: dict[int, dict] = {}
        for number in range(new_pools):
            pool = f"5ea1c0de-0000-4000-8000-{seed:06d}{number:06d}"
            row = {
                "pool": pool,
                "chain": "Ethereum",
                "project": "rehearsal-finance",
                "symbol": f"REH{number}",
                "tvlUsd": 2_000_000.0,
                "apy": 4.0 + number,
                "stablecoin": True,
                "ilRisk": "no",
                "exposure": "single",
            }
            self.arrivals[1 + number] = row
            self.charts[pool] = self._history(row, start)

    def _history(self, row: dict, start: datetime) -> dict:
        days = [start.date() - timedelta(days=d) for d in range(CHART_DAYS, 0, -1)]
        return {
            "status": "success",
            "data": [
                {
                    "timestamp": f"{day.isoformat()}T23:01:13.171Z",
                    "tvlUsd": row["tvlUsd"] * (1 + 0.01 * i),
                    "apy": row["apy"] * (1 + 0.005 * math.sin(i)),
                    "apyBase": row["apy"],
                    "apyReward": None,
                }
                for i, day in enumerate(days)
            ],
        }

    def reply(self, index: int, hour: datetime) -> Reply:
        from apy_runway.landing.standin import pools_item, pools_reply

        if index in self.arrivals:
            row = self.arrivals[index]
            self.pools[row["pool"]] = dict(row)
        items = []
        for pool, row in self.pools.items():
            row["apy"] = max(row["apy"] * math.exp(self.rng.gauss(0, 0.02)), 0.0)
            row["tvlUsd"] = max(row["tvlUsd"] * math.exp(self.rng.gauss(0, 0.01)), 0.0)
            fields = {k: v for k, v in row.items() if k != "pool"}
            items.append(pools_item(pool, **fields, apyBase=row["apy"]))
        return pools_reply(items, hour + timedelta(minutes=3, seconds=self.rng.randrange(60)))


def last_rows(paths: ProjectPaths) -> tuple[list[dict], datetime]:
    """The newest row of every pool alive in the store's last ALIVE_HOURS, and
    the store's newest hour."""
    import duckdb

    from apy_runway.landing.ingest.store import sql_str

    columns = ("pool", "chain", "project", "symbol", "tvlUsd", "apy")
    flags = ("stablecoin", "ilRisk", "exposure")
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        rows = con.execute(f"""
            with stored as (
                select * from read_parquet({sql_str(paths.raw_store / "*" / "*.parquet")})
            ),
            newest as (select max("timestamp") as newest from stored)
            select {", ".join(f'"{c}"' for c in (*columns, *flags))}, newest
            from stored, newest
            where "timestamp" > newest - interval {ALIVE_HOURS} hours
                and apy is not null and tvlUsd is not null
            qualify row_number() over (partition by pool order by "timestamp" desc) = 1
            order by pool
        """).fetchall()
    if not rows:
        raise UserError(f"{paths.raw_store} holds no live pool to rehearse with")
    newest = rows[0][-1].astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    names = (*columns, *flags)
    return [dict(zip(names, row[:-1], strict=True)) for row in rows], newest


# --------------------------------------------------------------------------- the scratch home


def scratch_home(source: ProjectPaths, target: Path) -> ProjectPaths:
    """A copy of `source` to rehearse on: the raw store and quarantine
    hard-linked (their files are replaced, never rewritten), the warehouse,
    build state, exports, ledger and latest run copied; no landing folder."""
    from apy_runway.operations.runs import resolve_run

    run_dir = resolve_run(source, "latest")
    if not source.warehouse.exists() or not source.manifest.exists():
        raise UserError(
            f"{source.home} has no warehouse or raw store: run `make run` "
            "(apy-runway run-all) first"
        )
    target = target.resolve()
    if target == source.home or source.home.is_relative_to(target):
        raise UserError(f"--into {target} would hold the home itself")
    shutil.rmtree(target, ignore_errors=True)
    paths = project_paths(target).ensure()
    for folder in (source.raw, source.quarantine):
        shutil.rmtree(paths.data / folder.name, ignore_errors=True)
        shutil.copytree(folder, paths.data / folder.name, copy_function=_link_or_copy)
    shutil.copy2(source.warehouse, paths.warehouse)
    if source.build_state.exists():
        shutil.copy2(source.build_state, paths.build_state)
    shutil.copytree(source.exports, paths.exports, dirs_exist_ok=True)
    ledger = source.data / "ledger"
    if ledger.is_dir():
        shutil.copytree(ledger, paths.data / "ledger")
    shutil.copytree(run_dir, paths.runs / run_dir.name)
    (paths.runs / "latest").symlink_to(run_dir.name)
    return paths


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


# --------------------------------------------------------------------------- the rehearsal


@dataclass
class Rehearsal:
    home: Path
    hours: list[str] = field(default_factory=list)  # one line per hour
    failed: list[str] = field(default_factory=list)
    health: dict = field(default_factory=dict)
    ledger: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> list[str]:
        """The lines after the hours': the last health, the ledger, the verdict."""
        status = "green" if self.ok else f"{len(self.failed)} hour(s) failed"
        reasons = ", ".join(self.health.get("reasons", [])) or "none"
        return [
            f"health of the last hour: {self.health.get('status')} (reasons: {reasons})",
            *self.ledger,
            f"rehearsal {status}: {len(self.hours)} hour(s) in {self.seconds:.0f} s, "
            f"home {self.home}",
        ]


def rehearse(
    paths: ProjectPaths,
    hours: int = 24,
    into: Path | None = None,
    new_pools: int = 2,
    seed: int = 7,
    echo: Callable[[str], None] | None = None,
) -> Rehearsal:
    """Run the loop for `hours` simulated hours (see the module); `echo` gets
    each hour's line as soon as the hour is done."""
    from apy_runway.foundation.s3 import ensure_bucket, local_s3_server, s3_client
    from apy_runway.landing.standin import PoolsServer

    if hours < 1 or new_pools < 0:
        raise UserError(f"--hours must be >= 1 and --new-pools >= 0, got {hours}, {new_pools}")
    started = time.perf_counter()
    home = scratch_home(paths, into or paths.data / "rehearsal")
    rows, newest = last_rows(home)
    first = newest + timedelta(hours=1)
    world = World(rows, first, new_pools, seed)
    result = Rehearsal(home.home)
    log(
        f"rehearsal in {home.home}: {hours} hour(s) from {first:%Y-%m-%dT%H}Z, "
        f"{len(rows):,} pools (+{new_pools} new)"
    )
    session = DbtSession()  # the hourly builds parse once, as `refresh --every 1h`
    with PoolsServer(world.charts) as server, local_s3_server() as endpoint:
        s3 = s3_client(endpoint, local=True)
        ensure_bucket(s3, BUCKET)
        scorer = _Scorer(home, s3, endpoint)
        for index in range(hours):
            hour = first + timedelta(hours=index)
            server.queue(world.reply(index, hour))
            line = _hour(home, server.url, s3, endpoint, session, scorer, hour, result)
            result.hours.append(line)
            if echo:
                echo(result.hours[-1])
        result.health = scorer.health
        result.ledger = _ledger(home, s3, [first + timedelta(hours=i) for i in range(hours)])
    result.seconds = time.perf_counter() - started
    return result


class _Scorer:
    """The scheduled Lambda's core on the local S3: the latest run uploaded,
    the model loaded once, one hour scored per call."""

    def __init__(self, home: ProjectPaths, s3: Any, endpoint: str):
        from apy_runway.foundation.s3 import upload_run
        from apy_runway.operations.runs import resolve_run
        from inference import contracts, service
        from inference.settings import Settings

        self.settings = Settings(
            bucket=BUCKET,
            endpoint_url=endpoint,
            signing_key=os.environ.get(contracts.ENVIRONMENT["signing_key"]) or None,
        )
        self.s3 = s3
        upload_run(s3, BUCKET, self.settings.model_prefix, resolve_run(home, "latest"))
        self.loaded = service.load_model(self.settings, s3, service.signing_key(self.settings))
        self.health: dict = {}
        self.failed = False

    def score(self, hour: datetime) -> str:
        from inference import service

        try:
            summary, document = service.score_hour(self.settings, self.s3, self.loaded, hour)
        except Exception as error:  # a failed invocation, as the Lambda's
            self.failed = True  # the next hour's schedule runs again
            return f"scoring FAILED: {type(error).__name__}: {error}"
        self.failed = False
        self.health = document["health"]
        reasons = ", ".join(summary["health_reasons"])
        return (
            f"scored {summary['scored']:,} of {summary['pools']:,} pools, health "
            f"{summary['health']}" + (f" ({reasons})" if reasons else "")
        )


def _hour(
    home: ProjectPaths,
    url: str,
    s3: Any,
    endpoint: str,
    session: DbtSession,
    scorer: _Scorer,
    hour: datetime,
    result: Rehearsal,
) -> str:
    """One simulated hour: the refresh as deployed (labels matured once a UTC
    day), then the scorer (which runs on its schedule even when the refresh
    failed, as EventBridge's would); dbt runs on the rehearsal's warm session."""
    from apy_runway.cli.hourly import refresh
    from apy_runway.foundation.http import Client

    label = f"{hour:%Y-%m-%dT%H}Z"
    try:
        summary = refresh(
            home,
            collect_from=url,
            client=Client(delay=0, retries=1, backoff=0.1, timeout=10, deadline=20),
            bucket=BUCKET,
            endpoint_url=endpoint,
            now=hour + timedelta(minutes=5),
            s3=s3,
            session=session,
            mature_labels=True,
        )
        refreshed = summary.line()
    except UserError as error:
        result.failed.append(label)
        refreshed = f"refresh FAILED: {error}"
    scored = scorer.score(hour)
    if scorer.failed and label not in result.failed:
        result.failed.append(label)
    return f"{label}  {refreshed}  |  {scored}"


def _ledger(home: ProjectPaths, s3: Any, hours: list[datetime]) -> list[str]:
    """`ledger sync` from the local S3 and its dbt models; the counts."""
    import duckdb

    from apy_runway.operations.ledger import build_ledger_models, default_folder, sync_bucket
    from inference import contracts

    report = sync_bucket(s3, BUCKET, contracts.LEDGER_PREFIX, default_folder(home))
    names = {f"date={h:%Y-%m-%d}/{h:%Y-%m-%dT%H}Z.json.gz" for h in hours}
    served = sorted(name for name in report.copied if name in names)
    build_ledger_models(home)
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        counts = con.execute(
            "select source, count(*), count(distinct scored_hour), "
            "count(*) filter (where is_matured) from prediction_outcomes group by all order by 1"
        ).fetchall()
    lines = [
        f"ledger: {len(served)} of {len(hours)} rehearsed hour(s) served, "
        f"{report.rows:,} row(s) synced, {len(report.corrupt)} corrupt file(s)"
    ]
    lines += [
        f"  prediction_outcomes {source}: {rows:,} row(s) over {scored:,} hour(s), "
        f"{matured:,} matured"
        for source, rows, scored, matured in counts
    ]
    return lines
