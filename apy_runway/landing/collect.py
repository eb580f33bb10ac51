"""`apy-runway collect`: one GET of DefiLlama's /pools, landed as the hour's
snapshot data/landing/pools/<YYYY-MM-DDTHH>Z.json.gz for `ingest` (`refresh` runs both).

The hour is the `Date` header's within DATE_HEADER_TRUST of the clock, else the clock's
(warned). An hour collected once is never replaced (`ingest FILE` supersedes). A bad reply
(error, not JSON, too deep, no usable item, a shrink) writes nothing; a junk item is dropped
and counted (pools_snapshot.usable_items). A Date header not trusted, junk dropped and a shrink
accepted (below SHRINK_NOTE_RATIO of the 24-hour largest) are CollectResult.notes: the refresh
puts them in the features header (health: input_warnings). Pools never seen (.known_pools,
seeded from the raw store) get their /chart history back-filled, --backfill-max per run; a
failed one is asked again after 1 h, 2 h, 4 h... at most a day (listed in fetch_failures.json).
State: .collect_state.json. Details: docs/operations.md, "The live hourly loop".
"""

from __future__ import annotations

import email.utils
import gzip
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apy_runway.foundation.console import UserError, log
from apy_runway.foundation.defaults import DEFAULT_BACKFILL_MAX, DEFAULT_BASE_URL
from apy_runway.foundation.http import Client, FetchError
from apy_runway.foundation.lock import locked
from apy_runway.foundation.paths import ProjectPaths
from apy_runway.landing.fetch import FetchResult, chart_path, download_charts, landing_dir
from apy_runway.landing.ingest.pools_snapshot import (
    check_pools_payload,
    landed_name,
    snapshot_hour_of,
    usable_items,
)
from apy_runway.landing.ingest.store import write_atomically
from inference.contracts import (
    SHRINK_MIN_RATIO,
    SHRINK_WINDOW_HOURS,
    is_notable_shrink,
    is_shrunk,
)

STATE_NAME = ".collect_state.json"
KNOWN_NAME = ".known_pools"
FAILURES_NAME = "fetch_failures.json"
# a Date header further than this from the local clock is not believed
DATE_HEADER_TRUST = timedelta(hours=2)
# a /chart back-fill that failed is asked again after 1 h, 2 h, 4 h... at most a day
BACKFILL_RETRY_FIRST = timedelta(hours=1)
BACKFILL_RETRY_MAX = timedelta(days=1)


@dataclass
class CollectResult:
    hour: datetime
    path: Path
    pools: int
    hour_source: str  # "Date header" | "local clock"
    kept: bool = False  # the hour was collected before: nothing was landed
    dropped: dict[str, int] = field(default_factory=dict)  # junk items, by why
    warnings: list[str] = field(default_factory=list)
    # short notes on input accepted yet suspect, for the features header
    # (contracts.FEATURES_INPUT_NOTES_FIELD; health: input_warnings)
    notes: list[str] = field(default_factory=list)
    previous_hour: datetime | None = None
    missing_hours: list[datetime] = field(default_factory=list)
    new_pools: int = 0
    backfilled: list[str] = field(default_factory=list)
    backfill_failed: dict[str, str] = field(default_factory=dict)
    backfill_queued: int = 0
    backfill_waiting: int = 0  # queued pools whose retry is not due yet

    def summary(self) -> str:
        parts = [f"collected {self.hour:%Y-%m-%dT%H}Z ({self.pools:,} pools)"]
        if self.kept:
            parts[0] = f"kept {self.hour:%Y-%m-%dT%H}Z (collected before)"
        if self.dropped:
            parts.append(f"dropped {sum(self.dropped.values()):,} junk item(s)")
        if self.hour_source != "Date header":
            parts.append(f"hour from the {self.hour_source}")
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
    moment = _date_header(value)
    return floor_hour(moment) if moment else None


def _date_header(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def snapshot_hour(date_header: str | None, clock: datetime) -> tuple[datetime, str, str | None]:
    """(hour, where it came from, warning or None): the Date header's hour when
    it lies within DATE_HEADER_TRUST of `clock`, else the clock's."""
    moment = _date_header(date_header)
    if moment is None:
        return floor_hour(clock), "local clock", None
    if abs(moment - clock) <= DATE_HEADER_TRUST:
        return floor_hour(moment), "Date header", None
    hours = (moment - clock) / timedelta(hours=1)
    warning = (
        f"the reply's Date header ({date_header}) is {abs(hours):,.1f} h "
        f"{'ahead of' if hours > 0 else 'behind'} the local clock (trusted within "
        f"{DATE_HEADER_TRUST / timedelta(hours=1):g} h): the clock's hour "
        f"{floor_hour(clock):%Y-%m-%dT%H}Z is used"
    )
    return floor_hour(clock), "local clock (Date header not trusted)", warning


# --------------------------------------------------------------------------- state


def state_path(paths: ProjectPaths) -> Path:
    return paths.landed_pools / STATE_NAME


def load_state(paths: ProjectPaths) -> dict:
    path = state_path(paths)
    if not path.exists():
        return {"hours": {}, "backfill_queue": [], "backfill_retry": {}}
    try:
        state = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise UserError(
            f"{path} is not JSON: delete it to start the collect state afresh"
        ) from None
    state.setdefault("hours", {})
    state.setdefault("backfill_queue", [])
    state.setdefault("backfill_retry", {})
    return state


def save_state(paths: ProjectPaths, state: dict) -> None:
    write_atomically(state_path(paths), json.dumps(state, separators=(",", ":")).encode())


def _known_store_pools(paths: ProjectPaths) -> set[str]:
    """The pools of the raw store."""
    from apy_runway.landing.ingest.store import has_rows

    if not has_rows(paths):
        return set()
    import duckdb

    with duckdb.connect() as con:
        glob = str(paths.raw_store / "*" / "*.parquet").replace("'", "''")
        return {row[0] for row in con.execute(f"select distinct pool from '{glob}'").fetchall()}


def known_pools(paths: ProjectPaths, state: dict) -> set[str]:
    """Every pool id the home has seen: .known_pools, seeded on first use from
    the raw store, the saved /chart files and the last collected hours."""
    path = paths.landed_pools / KNOWN_NAME
    if path.exists():
        return set(path.read_text().split())
    seen = _known_store_pools(paths)
    chart_dir = landing_dir(paths) / "chart"
    if chart_dir.is_dir():
        seen |= {p.name[: -len(".json")] for p in chart_dir.glob("*.json")}
    for hour in state["hours"].values():
        seen |= set(hour.get("pool_ids", []))
    write_atomically(path, "".join(f"{pool}\n" for pool in sorted(seen)))
    return seen


def _remember(paths: ProjectPaths, pools: list[str]) -> None:
    if pools:
        with (paths.landed_pools / KNOWN_NAME).open("a") as handle:
            handle.write("".join(f"{pool}\n" for pool in pools))


# --------------------------------------------------------------------------- collect


def _landed_body(response_body: bytes, payload: dict, items: list[dict]) -> bytes:
    """The reply as served, or without its junk items (ids as text) when any
    was dropped or retyped."""
    served = payload["data"]
    if len(items) == len(served) and all(a is b for a, b in zip(items, served, strict=True)):
        return response_body
    return json.dumps({**payload, "data": items}, separators=(",", ":")).encode()


@locked("collect")
def collect(
    paths: ProjectPaths,
    base_url: str = DEFAULT_BASE_URL,
    client: Client | None = None,
    backfill_max: int = DEFAULT_BACKFILL_MAX,
    allow_shrink: bool = False,
    now: datetime | None = None,
) -> CollectResult:
    """GET /pools once and land it as this hour's snapshot (see the module);
    `now` stands in for the local clock (a rehearsal's simulated hour)."""
    if backfill_max < 0:
        raise UserError(f"--backfill-max must be >= 0, got {backfill_max}")
    paths.ensure()
    client = client or Client()
    clock = (now or datetime.now(UTC)).astimezone(UTC)
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
    items, pools, dropped = usable_items(response.payload)
    hour, hour_source, warning = snapshot_hour(response.headers.get("Date"), clock)
    if warning:
        log(f"warning: {warning}")
    key = f"{hour:%Y-%m-%dT%H}Z"
    path = paths.landed_pools / landed_name(hour)
    state = load_state(paths)
    hours = state["hours"]
    result = CollectResult(
        hour=hour,
        path=path,
        pools=len(pools),
        hour_source=hour_source,
        dropped=dict(sorted(dropped.items())),
        warnings=[warning] if warning else [],
    )
    result.notes += _notes(key, warning, dropped)
    if key in hours or path.exists():
        result.kept = True
        log(
            f"{key} was collected before ({path}): kept, nothing landed (collect never "
            "replaces a landed hour; `apy-runway ingest FILE` of a corrected file supersedes it)"
        )
        _backfill(paths, client, base, state, [], backfill_max, clock, result)
        save_state(paths, state)
        return result
    earlier = sorted(h for h in hours if h < key)
    previous_key = earlier[-1] if earlier else None
    # the largest of the last SHRINK_WINDOW_HOURS, so it cannot be walked down
    since = f"{hour - timedelta(hours=SHRINK_WINDOW_HOURS):%Y-%m-%dT%H}Z"
    window = [h for h in earlier if h >= since and isinstance(hours[h].get("pools"), int)]
    largest_key = max(window, key=lambda h: hours[h]["pools"], default=None)
    largest = hours[largest_key]["pools"] if largest_key else None
    if is_shrunk(len(pools), largest) and not allow_shrink:
        raise UserError(
            f"{url}: {len(pools):,} pools, below {SHRINK_MIN_RATIO:.0%} of the "
            f"{largest:,} of {largest_key}, the largest snapshot of the last "
            f"{SHRINK_WINDOW_HOURS} hours; nothing was written. "
            "Pass --allow-shrink if DefiLlama really lists fewer pools"
        )
    _note_shrink(result, key, largest_key, largest)

    write_atomically(
        path, gzip.compress(_landed_body(response.body, response.payload, items), mtime=0)
    )
    log(
        f"landed {path} ({len(pools):,} pools, hour from the {hour_source})"
        + (f"; dropped {_counts(dropped)}" if dropped else "")
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

    _backfill(paths, client, base, state, pools, backfill_max, clock, result)
    hours[key] = {
        "pools": len(pools),
        "pool_ids": pools,
        "collected_at": datetime.now(UTC).isoformat(),
        "hour_source": hour_source,
        **({"dropped": result.dropped} if dropped else {}),
    }
    # the pool lists of older hours are not needed again: keep the counts
    for old in sorted(hours)[:-2]:
        hours[old].pop("pool_ids", None)
    save_state(paths, state)
    return result


def _notes(key: str, warning: str | None, dropped: Counter | dict) -> list[str]:
    """The input notes of a reply: its Date header not trusted, junk items dropped."""
    notes = [f"collect {key}: Date header not trusted, the clock's hour used"] if warning else []
    return notes + ([f"collect {key}: dropped {_counts(dropped)}"] if dropped else [])


def _note_shrink(
    result: CollectResult, key: str, largest_key: str | None, largest: int | None
) -> None:
    """A shrink accepted (below SHRINK_NOTE_RATIO of the 24-hour largest) is
    warned and noted."""
    if is_notable_shrink(result.pools, largest):
        note = f"collect {key}: {result.pools:,} pools, below the {largest:,} of {largest_key}"
        log(f"warning: {note} (accepted)")
        result.warnings.append(note)
        result.notes.append(f"{note} (accepted)")


def _counts(counts: Counter | dict) -> str:
    return ", ".join(f"{count:,} {why.replace('_', ' ')}" for why, count in sorted(counts.items()))


# --------------------------------------------------------------------------- back-fill


def _backfill(
    paths: ProjectPaths,
    client: Client,
    base: str,
    state: dict,
    pools: list[str],
    backfill_max: int,
    clock: datetime,
    result: CollectResult,
) -> None:
    """Queue the pools never seen, then GET /chart for the due ones (at most
    backfill_max); a failure waits 1 h, 2 h, 4 h... at most a day."""
    known = known_pools(paths, state)
    new = [p for p in pools if p not in known]
    _remember(paths, new)
    chart_dir = landing_dir(paths) / "chart"
    queue = list(dict.fromkeys(state["backfill_queue"]))
    queued = set(queue)
    queue += [p for p in new if p not in queued and not chart_path(chart_dir, p).exists()]
    retry = state["backfill_retry"]
    due = [p for p in queue if p not in retry or retry[p]["next_at"] <= clock.isoformat()]
    todo = due[:backfill_max]
    fetched = FetchResult(selected=len(todo))
    if todo:
        log(f"back-filling the /chart history of {len(todo)} new pool(s)")
        download_charts(client, base, todo, chart_dir, fetched)
    for pool in fetched.saved:
        retry.pop(pool, None)
    for pool, error in fetched.failed.items():
        attempts = retry.get(pool, {}).get("attempts", 0) + 1
        wait = min(BACKFILL_RETRY_FIRST * 2 ** (attempts - 1), BACKFILL_RETRY_MAX)
        retry[pool] = {"attempts": attempts, "next_at": (clock + wait).isoformat(), "error": error}
    done = set(fetched.saved)
    # a pool that failed goes to the back of the queue: the others move on
    state["backfill_queue"] = [p for p in queue if p not in done and p not in fetched.failed] + [
        p for p in todo if p in fetched.failed
    ]
    result.new_pools = len(new)
    result.backfilled = fetched.saved
    result.backfill_failed = fetched.failed
    result.backfill_queued = len(state["backfill_queue"])
    result.backfill_waiting = sum(1 for p in state["backfill_queue"] if p in retry)
    _list_failures(paths, retry, done)
    if new or todo or queue:
        log(
            f"{len(new)} new pool(s); back-filled {len(fetched.saved)}, "
            f"{len(fetched.failed)} failed, {result.backfill_queued} queued for the next runs "
            f"({result.backfill_waiting} waiting for a retry)"
        )


def _list_failures(paths: ProjectPaths, retry: dict, done: set[str]) -> None:
    """fetch_failures.json lists the back-fills waiting for a retry (beside
    any `fetch` listed), with their last error and next try."""
    path = landing_dir(paths) / FAILURES_NAME
    try:
        listed = json.loads(path.read_text()).get("failed", {}) if path.exists() else {}
    except (json.JSONDecodeError, AttributeError):
        listed = {}
    listed = {p: e for p, e in listed.items() if p not in done}
    for pool, entry in retry.items():
        listed[pool] = (
            f"{entry['error']} (back-fill attempt {entry['attempts']}; next try after "
            f"{entry['next_at']})"
        )
    if listed:
        write_atomically(path, json.dumps({"failed": listed}, indent=1) + "\n")
    else:
        path.unlink(missing_ok=True)
