"""The hourly refresh (`apy-runway refresh`, the one command a scheduler runs every hour).

    [collect] -> ingest new files -> compact completed days -> incremental build
    of the serving models -> export -> [publish to S3] -> one summary line

Idempotent: with nothing new landed, the build is skipped and the same
features are exported (and published) again. The home's writer lock
(foundation/lock.py) makes it wait `wait` seconds for another writer, then
refuse naming the holder. A failure at any step
publishes nothing and says which step failed and why; the next run starts
again from the raw store's state (an interrupted ingest is cleaned up, an
unfinished build is redone from its last recorded state).

Export checks the shrink rule against the last accepted export
(data/exports/refresh_state.json): a build with fewer than half its pools is
refused unless --allow-shrink. Training builds its own path (`apy-runway
train`), not every hour.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from apy_runway.foundation.console import UserError, log
from apy_runway.foundation.defaults import DEFAULT_BACKFILL_MAX, DEFAULT_MEMORY_LIMIT
from apy_runway.foundation.lock import writer_lock
from apy_runway.foundation.paths import ProjectPaths
from inference import contracts

STEPS = ("collect", "ingest", "compact", "build", "export", "publish")


class RefreshFailed(UserError):
    """A step failed: the message names it; nothing was published."""


@dataclass
class RefreshSummary:
    steps: dict[str, str] = field(default_factory=dict)  # step -> what it did
    seconds: dict[str, float] = field(default_factory=dict)
    total_seconds: float = 0.0

    def line(self) -> str:
        done = "; ".join(
            f"{step} {self.steps[step]} ({self.seconds[step]:.1f} s)"
            for step in STEPS
            if step in self.steps
        )
        return f"refresh ok in {self.total_seconds:.1f} s: {done}"


# --------------------------------------------------------------------------- state


def state_path(paths: ProjectPaths) -> Path:
    return paths.exports / "refresh_state.json"


def accepted_pools(paths: ProjectPaths) -> int | None:
    path = state_path(paths)
    if not path.exists():
        return None
    try:
        return int(json.loads(path.read_text())["pools"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def _accept(paths: ProjectPaths, pools: int, feature_date_max: str | None) -> None:
    path = state_path(paths)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(
        json.dumps(
            {
                "pools": pools,
                "feature_date_max": feature_date_max,
                "accepted_at": datetime.now(UTC).isoformat(),
            }
        )
        + "\n"
    )
    os.replace(tmp, path)


# --------------------------------------------------------------------------- refresh


def refresh(
    paths: ProjectPaths,
    collect_from: str | None = None,
    client=None,
    backfill_max: int | None = None,
    bucket: str | None = None,
    endpoint_url: str | None = None,
    allow_shrink: bool = False,
    full_refresh: bool = False,
    memory_limit: str | None = None,
    board: bool = False,
    now: datetime | None = None,
    s3: Any = None,
    wait: float = 0.0,
) -> RefreshSummary:
    """Run the hourly sequence under the writer lock (see the module); with
    `board`, rebuild the runway board at the end (after the lock's work).
    `now` stands in for the clock (collect's hour, the completed days to
    compact): `apy-runway rehearse` passes its simulated hour, and `s3`, the
    client of its local S3 (default: s3_client(endpoint_url))."""
    started = time.perf_counter()
    paths.ensure()
    summary = RefreshSummary()
    with writer_lock(paths.writer_lock, "refresh", wait):

        @contextlib.contextmanager
        def step(name: str) -> Iterator[None]:
            log(f"refresh step {name}")
            began = time.perf_counter()
            try:
                yield
            except RefreshFailed:
                raise
            except (UserError, FileNotFoundError, ValueError, OSError) as error:
                raise RefreshFailed(
                    f"refresh failed at step {name}: {error}; nothing was published"
                ) from error
            except Exception as error:  # an unexpected fault: still one clear line
                raise RefreshFailed(
                    f"refresh failed at step {name}: {type(error).__name__}: {error}; "
                    "nothing was published"
                ) from error
            finally:
                summary.seconds[name] = time.perf_counter() - began

        if collect_from:
            from apy_runway.landing.collect import collect

            with step("collect"):
                collected = collect(
                    paths,
                    base_url=collect_from,
                    client=client,
                    backfill_max=DEFAULT_BACKFILL_MAX if backfill_max is None else backfill_max,
                    allow_shrink=allow_shrink,
                    now=now,
                )
                summary.steps["collect"] = collected.summary()

        from apy_runway.landing.ingest import ingest

        with step("ingest"):
            summary.steps["ingest"] = "nothing new"
            if _has_landing(paths):
                landed = ingest([], paths, memory_limit=memory_limit or DEFAULT_MEMORY_LIMIT)
                if landed.files_landed:
                    summary.steps["ingest"] = (
                        f"landed {landed.files_landed} file(s), rows in {landed.rows_in:,} = "
                        f"{landed.rows_staged:,} staged + {landed.rows_quarantined:,} "
                        "quarantined"
                    )

        with step("compact"):
            days = _compact(paths, memory_limit or DEFAULT_MEMORY_LIMIT, now)
            summary.steps["compact"] = f"{len(days)} day(s)" if days else "nothing to compact"

        from apy_runway.warehouse.build import incremental_build

        with step("build"):
            built = incremental_build(
                paths, "hourly_refresh", memory_limit=memory_limit, full=full_refresh, quiet=True
            )
            summary.steps["build"] = built.describe()

        with step("export"):
            count, feature_date_max = _export_facts(paths)
            previous = accepted_pools(paths)
            if contracts.is_shrunk(count, previous) and not allow_shrink:
                raise UserError(
                    f"the build has {count:,} pools, below {contracts.SHRINK_MIN_RATIO:.0%} "
                    f"of the {previous:,} of the last accepted refresh. Pass --allow-shrink "
                    "if the pool count really fell"
                )
            summary.steps["export"] = f"{count:,} pools, features of {feature_date_max}"

        if bucket:
            from apy_runway.foundation.s3 import s3_client
            from apy_runway.operations.publish import load_latest_features, publish

            with step("publish"):
                latest = load_latest_features(paths, allow_shrink=allow_shrink)
                size = publish(s3 or s3_client(endpoint_url), bucket, latest)
                summary.steps["publish"] = (
                    f"s3://{bucket}/{contracts.FEATURES_KEY} ({size / 1e6:.2f} MB)"
                )
        _accept(paths, count, feature_date_max)
        if board:
            from apy_runway.board.build import build_board

            with step("board"):
                built = build_board(paths)
                summary.steps["board"] = f"{built.index} ({built.pools} pools)"
    summary.total_seconds = time.perf_counter() - started
    return summary


def _export_facts(paths: ProjectPaths) -> tuple[int, str | None]:
    """The pool count and newest feature day of data/exports/latest_features.parquet
    (the build's export), read without loading the features."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not paths.latest_features.exists():
        raise UserError(f"no {paths.latest_features}: the build did not export the features")
    table = pq.read_table(paths.latest_features, columns=["snapshot_date"])
    newest = pc.max(table["snapshot_date"]).as_py()
    return table.num_rows, newest.isoformat() if newest else None


def _has_landing(paths: ProjectPaths) -> bool:
    return paths.landing.exists() and any(
        p.is_file() and not p.name.startswith(".") for p in paths.landing.rglob("*")
    )


def _compact(paths: ProjectPaths, memory_limit: str, now: datetime | None = None) -> list[str]:
    """Compact the completed UTC days (before today) that have several files."""
    import shutil

    import duckdb

    from apy_runway.landing.ingest.store import RawStore

    work = paths.data / ".compact_work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    con = duckdb.connect(str(work / "work.duckdb"))
    try:
        con.execute("set TimeZone = 'UTC'")
        con.execute(f"set memory_limit = '{memory_limit}'")
        store = RawStore.open(paths, con)
        days = store.compact(con, before=(now or datetime.now(UTC)).astimezone(UTC).date())
    finally:
        con.close()
        shutil.rmtree(work, ignore_errors=True)
    if days:
        log(f"compacted {len(days)} completed day(s): {days[0]} .. {days[-1]}")
    return days
