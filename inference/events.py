"""The scoring hour of a scheduled-function event. Pure: no I/O.

The hourly function runs on two kinds of event:
  * EventBridge's hourly schedule (the safety net, at minute 50:
    contracts.SAFETY_NET_SCHEDULE): `time`, e.g. "2025-06-06T13:50:00Z";
  * S3's ObjectCreated on the features key the scorer reads (publish writes it
    last, so scoring follows every refresh): `Records[0].eventTime`, e.g.
    "2025-06-06T13:04:31.517Z".
Either way the run scores the UTC hour the event falls in (floored), so a
retry, or the schedule firing in the same hour as a publish, overwrites the
same predictions/hourly/<hour>.json instead of adding one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


class EventError(ValueError):
    """An event the scheduled function cannot take its hour from."""


def parse_time(value: Any, what: str) -> datetime:
    """ISO 8601 ("...Z" or an offset) -> aware UTC datetime."""
    if not isinstance(value, str) or not value:
        raise EventError(f"{what} is missing: {value!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise EventError(f"{what} is not ISO 8601: {value!r}") from error
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def s3_objects(event: dict) -> list[tuple[str, str]]:
    """(bucket, key) of each S3 record of an event (empty if it is not S3's)."""
    found = []
    for record in event.get("Records") or []:
        if isinstance(record, dict) and record.get("eventSource") == "aws:s3":
            s3 = record.get("s3") or {}
            found.append(
                ((s3.get("bucket") or {}).get("name"), (s3.get("object") or {}).get("key"))
            )
    return found


def scoring_hour(event: Any) -> datetime:
    """The UTC hour to score: an S3 record's eventTime or EventBridge's time,
    floored to the hour."""
    if not isinstance(event, dict):
        raise EventError(f"the event is a {type(event).__name__}, not an object")
    records = event.get("Records")
    if records:
        record = records[0] if isinstance(records, list) else None
        if not isinstance(record, dict):
            raise EventError("the event's Records[0] is not an object")
        moment = parse_time(record.get("eventTime"), "S3 event Records[0].eventTime")
    else:
        moment = parse_time(event.get("time"), "scheduled event `time`")
    return moment.replace(minute=0, second=0, microsecond=0)
