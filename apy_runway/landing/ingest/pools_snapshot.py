"""A saved DefiLlama /pools response as one hourly snapshot of every pool: the
problems that make a response unusable, the pool-id rule, the usable items, the
hour a landed file stands for, and the items as text rows of the raw contract
(the never-read fields, contracts.POOLS_NEVER_READ_FIELDS, dropped first).

Imports: the standard library and inference/ (floor 4, landing). Pure functions
shared by `collect`, which lands the response as served, and by ingest, which
reads it back. Values stay text, exactly as ingest reads CSV and /chart JSON,
so one parse and one set of quarantine reasons applies to every input format
(docs/data.md#input-formats).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inference.contracts import (
    POOLS_NEVER_READ_FIELDS,
    POOLS_SNAPSHOT_FIELDS,
    POOLS_SNAPSHOT_REQUIRED_FIELDS,
    RAW_COLUMNS,
)

SUFFIX = ".json.gz"
HOUR_FORMAT = "%Y-%m-%dT%HZ"
# pool ids become file names: DefiLlama serves UUIDs (36 characters) and a
# few name-like ids; refuse anything path-like or longer than a file name may be
SAFE_POOL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
MAX_POOL_ID_LENGTH = 100


def landed_name(hour: datetime) -> str:
    """The landing file name of an hour: 2024-03-01T05Z.json.gz."""
    return hour.astimezone(UTC).strftime(HOUR_FORMAT) + SUFFIX


def snapshot_hour_of(path: Path) -> datetime:
    """The UTC hour a landed /pools file stands for, from its name."""
    name = Path(path).name
    if not name.endswith(SUFFIX):
        raise ValueError(f"{path}: a landed /pools snapshot is named <YYYY-MM-DDTHH>Z{SUFFIX}")
    try:
        return datetime.strptime(name[: -len(SUFFIX)], HOUR_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(
            f"{path}: a landed /pools snapshot is named <YYYY-MM-DDTHH>Z{SUFFIX} "
            "(the UTC hour it was collected)"
        ) from None


def is_never_read(field: str) -> bool:
    return field in POOLS_NEVER_READ_FIELDS or field.startswith("apyPct")


def check_pools_payload(payload: Any) -> list[str]:
    """Why a parsed /pools response cannot be used as a snapshot (empty = usable).
    Items that are not objects or lack a usable pool id are not a problem of
    the whole (usable_items drops them) unless no item is usable."""
    if not isinstance(payload, dict):
        return [f"the response is a JSON {type(payload).__name__}, not an object"]
    status = payload.get("status")
    if status is not None and status != "success":
        message = payload.get("message") or payload.get("error") or ""
        return [f'the response says status "{status}"' + (f": {message}" if message else "")]
    items = payload.get("data")
    if not isinstance(items, list):
        return ['the response has no "data" list']
    if not items:
        return ['the response\'s "data" list is empty']
    objects = [item for item in items if isinstance(item, dict)]
    problems = [
        f'no item has the field "{field}"'
        for field in POOLS_SNAPSHOT_REQUIRED_FIELDS
        if objects and not any(field in item for item in objects)
    ]
    if not problems:
        kept, _, dropped = usable_items(payload)
        if not kept:
            problems.append(f"none of the {len(items):,} items is usable ({_said(dropped)})")
    return problems


def pool_id_of(value: Any) -> str | None:
    """A pool id as text: a string (trimmed) or a number as ingest writes it;
    None for anything else (null, true/false, a list or an object)."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def pool_id_problem(pool: object) -> str | None:
    """Why `pool` cannot be a /chart file name (None: it can)."""
    if not isinstance(pool, str):
        return f"pool id is not text ({type(pool).__name__})"
    if len(pool) > MAX_POOL_ID_LENGTH:
        return f"pool id is {len(pool)} characters long (at most {MAX_POOL_ID_LENGTH})"
    if "/" in pool or "\\" in pool or not SAFE_POOL_ID.match(pool):
        return "pool id is not a safe file name (path separator or other character)"
    return None


def usable_items(payload: dict) -> tuple[list[dict], list[str], Counter]:
    """The items of a usable response that collect lands, in order, their
    "pool" as text (pool_id_of); their distinct ids, in order; the others
    counted by why: not_an_object, no_pool_id, unsafe_pool_id
    (pool_id_problem). A repeated id is kept: ingest decides between the
    rows of one hour. Nothing here touches the filesystem."""
    kept: list[dict] = []
    ids: dict[str, None] = {}
    dropped: Counter = Counter()
    for item in payload.get("data") or []:
        if not isinstance(item, dict):
            dropped["not_an_object"] += 1
            continue
        pool = pool_id_of(item.get("pool"))
        if pool is None:
            dropped["no_pool_id"] += 1
        elif pool_id_problem(pool):
            dropped["unsafe_pool_id"] += 1
        else:
            kept.append(item if item["pool"] == pool else {**item, "pool": pool})
            ids.setdefault(pool, None)
    return kept, list(ids), dropped


def _said(counts: Counter) -> str:
    return ", ".join(f"{reason} {count:,}" for reason, count in sorted(counts.items()))


def _text(value: Any) -> str | None:
    """A JSON value as the text ingest parses (None stays null)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def snapshot_rows(payload: dict, hour: datetime) -> list[dict[str, str | None]]:
    """One text row of the raw contract per item, timestamp = the snapshot hour,
    plus `extra_fields`: the item's other readable fields as JSON (what the
    quarantine keeps of a rejected row). Items that are not objects give a row
    with no pool (quarantined as missing_pool_id)."""
    timestamp = hour.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    known = set(RAW_COLUMNS)
    rows = []
    for item in payload["data"]:
        readable = (
            {k: v for k, v in item.items() if not is_never_read(k)}
            if isinstance(item, dict)
            else {"item": item}
        )
        row: dict[str, str | None] = {"timestamp": timestamp}
        for field in POOLS_SNAPSHOT_FIELDS:
            row[field] = _text(readable.get(field))
        extra = {k: v for k, v in readable.items() if k not in known}
        row["extra_fields"] = json.dumps(extra, separators=(",", ":")) if extra else None
        rows.append(row)
    return rows
