"""`apy-runway collect`: one GET of DefiLlama's /pools, the hourly snapshot of
every pool, landed for `apy-runway ingest` (`refresh` runs both).

    data/landing/pools/<YYYY-MM-DDTHH>Z.json.gz   the response as served, gzip
    data/landing/pools/.collect_state.json         per landed hour: pool count and
                                                   ids; the back-fill queue
    data/landing/defillama/chart/<pool>.json      back-filled /chart histories

The hour is the response's `Date` header (when present and parseable) or the
local clock, floored to the hour. A second collect in the same hour replaces
that hour's file; ingest then lands it as a new version, which wins for every
pool it holds (nothing is duplicated).

A response that is an error, truncated, empty or missing a required field
for every pool writes nothing and keeps the previous state; so does one with
fewer than half the previous snapshot's pools (contracts.SHRINK_MIN_RATIO)
unless --allow-shrink. /pools has no history, so collect reports the hours
missed since the previous snapshot: they are lost.

Pools seen for the first time get their /chart/{pool} history back-filled:
at most --backfill-max per run, the rest queued for the next runs (a pool
that fails goes to the back of the queue), and the counts reported. "Seen"
means: in the previous snapshot, in the raw store (first collect of a home),
already back-filled or queued. The HTTP client (delay, retries, backoff, timeout) is fetch's
(apy_runway/foundation/http.py); the model-output fields of /pools are never
read (pools_snapshot.py).
"""

from __future__ import annotations

import email.utils
import gzip
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apy_runway.foundation.console import UserError, log
from apy_runway.foundation.defaults import DEFAULT_BACKFILL_MAX, DEFAULT_BASE_URL
from apy_runway.foundation.http import Client, FetchError
from apy_runway.foundation.paths import ProjectPaths
from apy_runway.landing.fetch import FetchResult, chart_path, download_charts, landing_dir
from apy_runway.landing.ingest.pools_snapshot import (
    check_pools_payload,
    landed_name,
    pool_ids,
    snapshot_hour_of,
)
from apy_runway.landing.ingest.store import write_atomically
from inference.contracts import SHRINK_MIN_RATIO, is_shrunk

STATE_NAME = ".collect_state.json"


@dataclass
class CollectResult:
    hour: datetime
    path: Path
    pools: int
    hour_source: str  # "Date header" | "local clock"
    replaced: bool = False  # a snapshot of this hour was landed before
    previous_hour: datetime | None = None
    missing_hours: list[datetime] = field(default_factory=list)
    new_pools: int = 0
    backfilled: list[str] = field(default_factory=list)
    backfill_failed: dict[str, str] = field(default_factory=dict)
    backfill_queued: int = 0

    def summary(self) -> str:
        parts = [f"collected {self.hour:%Y-%m-%dT%H}Z ({self.pools:,} pools)"]
        if self.missing_hours:
            parts.append(f"{len(self.missing_hours)} hour(s) missing")
        if self.backfilled or self.backfill_queued or self.backfill_failed:
            parts.append(
                f"back-filled {len(self.backfilled)} pool(s), {self.backfill_queued} queued"
            )
        return ", ".join(parts)


# --------------------------------------------------------------------------- hour


def hour_from_date_header(value: str | None) -> datetime | None:
    """The UTC hour of an HTTP Date header, or None if absent or unparseable."""
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return floor_hour(parsed)


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


# --------------------------------------------------------------------------- state


def state_path(paths: ProjectPaths) -> Path:
    return paths.landed_pools / STATE_NAME


def load_state(paths: ProjectPaths) -> dict:
    path = state_path(paths)
    if not path.exists():
        return {"hours": {}, "backfill_queue": []}
    try:
        state = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise UserError(
            f"{path} is not JSON: delete it to start the collect state afresh"
        ) from None
    state.setdefault("hours", {})
    state.setdefault("backfill_queue", [])
    return state


def save_state(paths: ProjectPaths, state: dict) -> None:
    write_atomically(state_path(paths), json.dumps(state, separators=(",", ":")).encode())


def _known_store_pools(paths: ProjectPaths) -> set[str]:
    """The pools of the raw store (the first collect of a home with history)."""
    from apy_runway.landing.ingest.store import has_rows

    if not has_rows(paths):
        return set()
    import duckdb

    with duckdb.connect() as con:
        glob = str(paths.raw_store / "*" / "*.parquet").replace("'", "''")
        return {row[0] for row in con.execute(f"select distinct pool from '{glob}'").fetchall()}


# --------------------------------------------------------------------------- collect


def collect(
    paths: ProjectPaths,
    base_url: str = DEFAULT_BASE_URL,
    client: Client | None = None,
    backfill_max: int = DEFAULT_BACKFILL_MAX,
    allow_shrink: bool = False,
    now: datetime | None = None,
) -> CollectResult:
    """GET /pools once and land it as this hour's snapshot (see the module)."""
    if backfill_max < 0:
        raise UserError(f"--backfill-max must be >= 0, got {backfill_max}")
    paths.ensure()
    client = client or Client()
    base = base_url.rstrip("/")
    url = f"{base}/pools"
    log(f"GET {url}")
    try:
        response = client.get(url, "/pools", client.max_pools_bytes)
    except FetchError as error:
        raise UserError(f"{url}: {error}; nothing was written for this hour") from None
    problems = check_pools_payload(response.payload)
    if problems:
        raise UserError(f"{url}: {'; '.join(problems)}; nothing was written for this hour")

    hour = hour_from_date_header(response.headers.get("Date"))
    hour_source = "Date header"
    if hour is None:
        hour = floor_hour(now or datetime.now(UTC))
        hour_source = "local clock"
    pools = pool_ids(response.payload)
    state = load_state(paths)
    hours = state["hours"]
    earlier = sorted(h for h in hours if h < f"{hour:%Y-%m-%dT%H}Z")
    previous_key = earlier[-1] if earlier else None
    previous = hours.get(previous_key) if previous_key else None
    if previous and is_shrunk(len(pools), previous["pools"]) and not allow_shrink:
        raise UserError(
            f"{url}: {len(pools):,} pools, below {SHRINK_MIN_RATIO:.0%} of the previous "
            f"snapshot's {previous['pools']:,} ({previous_key}); nothing was written. "
            "Pass --allow-shrink if DefiLlama really lists fewer pools"
        )

    path = paths.landed_pools / landed_name(hour)
    replaced = path.exists()
    write_atomically(path, gzip.compress(response.body, mtime=0))
    result = CollectResult(
        hour=hour, path=path, pools=len(pools), hour_source=hour_source, replaced=replaced
    )
    log(
        f"landed {path} ({len(pools):,} pools, hour from the {hour_source})"
        + ("; it replaces this hour's earlier snapshot" if replaced else "")
    )
    if previous_key:
        result.previous_hour = snapshot_hour_of(Path(previous_key + ".json.gz"))
        gap = int((hour - result.previous_hour) / timedelta(hours=1)) - 1
        result.missing_hours = [result.previous_hour + timedelta(hours=i + 1) for i in range(gap)]
        if result.missing_hours:
            first, last = result.missing_hours[0], result.missing_hours[-1]
            log(
                f"{len(result.missing_hours)} hour(s) missing since the previous snapshot "
                f"({previous_key}): {first:%Y-%m-%dT%H}Z .. {last:%Y-%m-%dT%H}Z. /pools has no "
                "history: those hours are lost"
            )

    # pools seen for the first time: back-fill their /chart history
    chart_dir = landing_dir(paths) / "chart"
    if previous is not None and "pool_ids" in previous:
        seen = set(previous["pool_ids"])
    else:
        seen = _known_store_pools(paths)
    queue = list(dict.fromkeys(state["backfill_queue"]))
    queued = set(queue)
    new = [
        p
        for p in pools
        if p not in seen and p not in queued and not chart_path(chart_dir, p).exists()
    ]
    result.new_pools = len(new)
    queue += new
    todo, rest = queue[:backfill_max], queue[backfill_max:]
    fetched = FetchResult(selected=len(todo))
    if todo:
        log(f"back-filling the /chart history of {len(todo)} new pool(s)")
        download_charts(client, base, todo, chart_dir, fetched)
    result.backfilled = fetched.saved
    result.backfill_failed = fetched.failed
    # a pool that failed goes to the back of the queue: the others move on
    state["backfill_queue"] = rest + [p for p in todo if p in fetched.failed]
    result.backfill_queued = len(state["backfill_queue"])
    if new or todo or queue:
        log(
            f"{len(new)} new pool(s); back-filled {len(fetched.saved)}, "
            f"{len(fetched.failed)} failed, {result.backfill_queued} queued for the next runs"
        )
    hours[f"{hour:%Y-%m-%dT%H}Z"] = {
        "pools": len(pools),
        "pool_ids": pools,
        "collected_at": datetime.now(UTC).isoformat(),
        "hour_source": hour_source,
    }
    # the pool lists of older hours are not needed again: keep the counts
    for key in sorted(hours)[:-2]:
        hours[key].pop("pool_ids", None)
    save_state(paths, state)
    return result
