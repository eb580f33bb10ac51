"""A saved DefiLlama /pools response as one hourly snapshot of every pool.

`collect` lands the response as served, gzip-compressed, as
data/landing/pools/<YYYY-MM-DDTHH>Z.json.gz; ingest reads it back as hourly
rows of the raw contract. Pure functions, shared by both:

  check_pools_payload  the problems that make a response unusable as a whole
                       (an error, no "data" list, no items, a required field
                       missing from every item); one line each
  snapshot_hour_of     the UTC hour a landed file stands for (its name)
  snapshot_rows        the items as text rows of the raw contract, with the
                       hour as timestamp; the never-read fields
                       (contracts.POOLS_NEVER_READ_FIELDS, apyPct*) are dropped
                       before anything else looks at an item

Values stay text, exactly as ingest reads CSV and /chart JSON, so one parse
and one set of quarantine reasons applies to every input format.
"""

from __future__ import annotations

import json
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
    """Why a parsed /pools response cannot be used as a snapshot (empty = usable)."""
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
    problems = []
    if len(objects) < len(items):
        problems.append(f"{len(items) - len(objects)} of {len(items)} items are not objects")
    for field in POOLS_SNAPSHOT_REQUIRED_FIELDS:
        if objects and not any(field in item for item in objects):
            problems.append(f'no item has the field "{field}"')
    return problems


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


def pool_ids(payload: dict) -> list[str]:
    """The pool ids of a usable response, in order, without repeats."""
    seen: dict[str, None] = {}
    for item in payload.get("data") or []:
        if isinstance(item, dict) and isinstance(item.get("pool"), str) and item["pool"]:
            seen.setdefault(item["pool"], None)
    return list(seen)
