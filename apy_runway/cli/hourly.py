"""The hourly refresh (`apy-runway refresh`, the one command a scheduler runs every
hour): [collect] -> ingest new files -> compact completed days -> incremental
build of the serving models -> export -> [publish to S3] -> [once a day, with
--mature-labels: labels, ledger sync, prediction_outcomes] -> one summary line.

Imports: anything below it (floor 8, cli). Idempotent: nothing new landed,
nothing is built. Runs under the home's writer lock (foundation/lock.py). The
features header names its hour, collect's and ingest's notes on suspect input and
the files ingest set aside (health: refresh_missed, input_warnings, refused_input);
a failure at any other step publishes nothing and names the step. Export's shrink
rule: never 0 pools, below half of the 24-hour largest only with --allow-shrink.
The loop as an operator runs it: docs/operations.md#the-live-hourly-loop.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apy_runway.foundation.console import UserError, log
from apy_runway.foundation.defaults import DEFAULT_BACKFILL_MAX, DEFAULT_MEMORY_LIMIT
from apy_runway.foundation.lock import writer_lock
from apy_runway.foundation.paths import ProjectPaths
from inference import contracts

STEPS = ("collect", "ingest", "compact", "build", "export", "publish", "labels")


class RefreshFailed(UserError):
    """A step failed: the message names it; nothing was published."""


@dataclass
class RefreshSummary:
    steps: dict[str, str] = field(default_factory=dict)  # step -> what it did
    seconds: dict[str, float] = field(default_factory=dict)
    total_seconds: float = 0.0
    # landing files this run's ingest refused and set aside (health: refused_input)
    refused_inputs: list[str] = field(default_factory=list)
    # collect's and ingest's notes on input accepted yet suspect (health: input_warnings)
    input_notes: list[str] = field(default_factory=list)

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


def _state(paths: ProjectPaths) -> dict:
    path = state_path(paths)
    try:
        state = json.loads(path.read_text()) if path.exists() else {}
    except json.JSONDecodeError:
        return {}
    return state if isinstance(state, dict) else {}


def accepted_pools(paths: ProjectPaths) -> int | None:
    """The largest pool count of the refreshes accepted in the last
    SHRINK_WINDOW_HOURS (the shrink rule's reference; None: none yet). The
    largest, not the last, so the count cannot be walked down step by step."""
    state = _state(paths)
    recent = [
        int(entry["pools"])
        for entry in state.get("recent", [])
        if isinstance(entry, dict) and isinstance(entry.get("pools"), int)
    ]
    if not recent and isinstance(state.get("pools"), int):
        recent = [state["pools"]]
    return max(recent, default=None)


def _accept(
    paths: ProjectPaths, pools: int, feature_date_max: str | None, now: datetime | None
) -> None:
    at = (now or datetime.now(UTC)).astimezone(UTC)
    since = (at - timedelta(hours=contracts.SHRINK_WINDOW_HOURS)).isoformat()
    recent = [
        entry
        for entry in _state(paths).get("recent", [])
        if isinstance(entry, dict) and str(entry.get("at", "")) > since
    ]
    recent.append({"at": at.isoformat(), "pools": pools})
    path = state_path(paths)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(
        json.dumps(
            {
                "pools": pools,
                "feature_date_max": feature_date_max,
                "accepted_at": datetime.now(UTC).isoformat(),
                "recent": recent,
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
    session: Any = None,
    wait: float = 0.0,
    mature_labels: bool = False,
) -> RefreshSummary:
    """Run the hourly sequence under the writer lock (see the module); with
    `board`, rebuild the runway board at the end (after the lock's work).
    `now` stands in for the clock (collect's hour, the completed days to
    compact): `apy-runway rehearse` passes its simulated hour, and `s3`, the
    client of its local S3 (default: s3_client(endpoint_url)). `session` (a
    warehouse.session.DbtSession) runs dbt in this process on a kept manifest."""
    started = time.perf_counter()
    paths.ensure()
    summary = RefreshSummary()
    limit = memory_limit or DEFAULT_MEMORY_LIMIT
    with writer_lock(paths.writer_lock, "refresh", wait):
        if collect_from:
            from apy_runway.landing.collect import collect

            with _step(summary, "collect"):
                collected = collect(
                    paths,
                    base_url=collect_from,
                    client=client,
                    backfill_max=DEFAULT_BACKFILL_MAX if backfill_max is None else backfill_max,
                    allow_shrink=allow_shrink,
                    now=now,
                )
                summary.steps["collect"] = collected.summary()
                summary.input_notes.extend(collected.notes)
        with _step(summary, "ingest"):
            _ingest(paths, limit, summary)
        with _step(summary, "compact"):
            days = _compact(paths, limit, now)
            summary.steps["compact"] = f"{len(days)} day(s)" if days else "nothing to compact"

        from apy_runway.warehouse.build import incremental_build

        with _step(summary, "build"):
            built = incremental_build(
                paths,
                "hourly_refresh",
                memory_limit=memory_limit,
                full=full_refresh,
                quiet=True,
                session=session,
            )
            summary.steps["build"] = built.describe()
        with _step(summary, "export"):
            count, feature_date_max = _checked_export(paths, allow_shrink)
            summary.steps["export"] = f"{count:,} pools, features of {feature_date_max}"
        if bucket:
            with _step(summary, "publish"):
                _publish(paths, bucket, s3, endpoint_url, allow_shrink, summary, now)
        _accept(paths, count, feature_date_max, now)
        if mature_labels:
            _mature(paths, bucket, s3, endpoint_url, now, summary)
        if board:
            from apy_runway.board.build import build_board

            with _step(summary, "board"):
                built = build_board(paths)
                summary.steps["board"] = f"{built.index} ({built.pools} pools)"
    summary.total_seconds = time.perf_counter() - started
    return summary


@contextlib.contextmanager
def _step(summary: RefreshSummary, name: str) -> Iterator[None]:
    """One step, timed; any failure becomes one RefreshFailed line naming it."""
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
            f"refresh failed at step {name}: {type(error).__name__}: {error}; nothing was published"
        ) from error
    finally:
        summary.seconds[name] = time.perf_counter() - began


def _ingest(paths: ProjectPaths, memory_limit: str, summary: RefreshSummary) -> None:
    """Land what waits in data/landing/; a file ingest refuses is set aside
    (data/landing/refused/) and named in the summary and the features header."""
    from apy_runway.landing.ingest import REPLACED_ROW_REASONS, has_landing, ingest

    summary.steps["ingest"] = "nothing new"
    if not has_landing(paths):
        return
    landed = ingest([], paths, memory_limit=memory_limit)
    if landed.files_landed:
        summary.steps["ingest"] = (
            f"landed {landed.files_landed} file(s), rows in {landed.rows_in:,} = "
            f"{landed.rows_staged:,} staged + {landed.rows_quarantined:,} quarantined"
        )
    faulty = {
        reason: count
        for reason, count in landed.by_reason.items()
        if count and reason not in REPLACED_ROW_REASONS
    }
    if faulty:
        summary.input_notes.append(
            f"ingest: quarantined {sum(faulty.values()):,} faulty row(s) ("
            + ", ".join(f"{count:,} {reason}" for reason, count in sorted(faulty.items()))
            + ")"
        )
    summary.refused_inputs = [name for name, _ in landed.set_aside]
    if summary.refused_inputs:
        summary.steps["ingest"] += (
            f"; set aside {len(summary.refused_inputs)} refused file(s) in "
            f"data/landing/refused/: {', '.join(summary.refused_inputs)}"
        )


def _checked_export(paths: ProjectPaths, allow_shrink: bool) -> tuple[int, str | None]:
    """The export's pool count and newest day, after the shrink rule: never
    0 pools; below SHRINK_MIN_RATIO of the largest count accepted in the last
    SHRINK_WINDOW_HOURS only with --allow-shrink."""
    count, feature_date_max = _export_facts(paths)
    if count == 0:
        raise UserError("the build exported 0 pools: a features file of no pool is never published")
    largest = accepted_pools(paths)
    if contracts.is_shrunk(count, largest) and not allow_shrink:
        raise UserError(
            f"the build has {count:,} pools, below {contracts.SHRINK_MIN_RATIO:.0%} of the "
            f"{largest:,} of the largest refresh accepted in the last "
            f"{contracts.SHRINK_WINDOW_HOURS} hours. Pass --allow-shrink if the pool count "
            "really fell"
        )
    return count, feature_date_max


def labels_state_path(paths: ProjectPaths) -> Path:
    return paths.exports / "labels_state.json"


def _mature(
    paths: ProjectPaths,
    bucket: str | None,
    s3: Any,
    endpoint_url: str | None,
    now: datetime | None,
    summary: RefreshSummary,
) -> None:
    """Once per UTC day, after the publish: rebuild the labels (the training
    selector in full, no tests), sync
    the ledger from the bucket and rebuild its models, so prediction_outcomes
    matures with no manual step. A failure is reported and retried the next
    hour; it never undoes the hour's publish."""
    day = (now or datetime.now(UTC)).astimezone(UTC).date().isoformat()
    path = labels_state_path(paths)
    try:
        done = json.loads(path.read_text()).get("day") if path.exists() else None
    except (json.JSONDecodeError, AttributeError):
        done = None
    if done == day:
        return
    from apy_runway.operations.ledger import build_ledger_models, default_folder, sync_bucket
    from apy_runway.warehouse.build import incremental_build

    try:
        with _step(summary, "labels"):
            built = incremental_build(paths, "training", full=True, command="run", quiet=True)
            synced = ""
            if bucket:
                from apy_runway.foundation.s3 import s3_client

                client = s3 or s3_client(endpoint_url)
                report = sync_bucket(client, bucket, contracts.LEDGER_PREFIX, default_folder(paths))
                synced = f", ledger synced ({len(report.copied)} file(s))"
            if any(default_folder(paths).rglob("*.json.gz")):
                build_ledger_models(paths)
            summary.steps["labels"] = f"of {day}: {built.describe()}{synced}"
    except RefreshFailed as error:
        why = str(error).replace("nothing was published", "the hour's publish stands")
        summary.steps["labels"] = f"FAILED (retried next hour): {why}"
        log(f"warning: {why}")
        return
    path.write_text(json.dumps({"day": day, "at": datetime.now(UTC).isoformat()}) + "\n")


def _log_newly_inactive(paths: ProjectPaths, inactive: list[str]) -> None:
    """Pools unseen for POOL_INACTIVE_AFTER_DAYS leave the hourly document (and
    so the board), stay in the ledger, and are logged once: the list of those
    already logged is data/exports/inactive_pools.json (a pool that returns
    leaves it, and is logged again if it goes quiet again)."""
    path = paths.exports / "inactive_pools.json"
    try:
        known = set(json.loads(path.read_text())) if path.exists() else set()
    except (json.JSONDecodeError, TypeError):
        known = set()
    new = sorted(set(inactive) - known)
    if new:
        log(
            f"{len(new)} pool(s) unseen for over {contracts.POOL_INACTIVE_AFTER_DAYS} days leave "
            f"the hourly document (they stay in the ledger): {', '.join(new[:20])}"
            + (" ..." if len(new) > 20 else "")
        )
    if set(inactive) != known:
        path.write_text(json.dumps(sorted(inactive)) + "\n")


def _publish(
    paths: ProjectPaths,
    bucket: str,
    s3: Any,
    endpoint_url: str | None,
    allow_shrink: bool,
    summary: RefreshSummary,
    now: datetime | None,
) -> None:
    """Publish the export with the refresh's fields in its header: this hour
    (health: refresh_missed when an hour scores features of an earlier one),
    the input notes and the set-aside files."""
    from apy_runway.foundation.s3 import s3_client
    from apy_runway.operations.publish import load_latest_features, publish
    from inference.features import refresh_fields

    latest = load_latest_features(
        paths,
        allow_shrink=allow_shrink,
        refresh=refresh_fields(
            refreshed_hour=now or datetime.now(UTC),
            input_notes=summary.input_notes,
            refused_inputs=summary.refused_inputs,
        ),
        inactive_after_days=contracts.POOL_INACTIVE_AFTER_DAYS,
    )
    _log_newly_inactive(paths, latest.inactive)
    size = publish(s3 or s3_client(endpoint_url), bucket, latest)
    summary.steps["publish"] = f"s3://{bucket}/{contracts.FEATURES_KEY} ({size / 1e6:.2f} MB)"


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


def _compact(paths: ProjectPaths, memory_limit: str, now: datetime | None = None) -> list[str]:
    """Compact the completed UTC days (before today) whose files are due
    (RawStore.compaction_due)."""
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
