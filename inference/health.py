"""The health of an hourly run, and the rule that refuses a shrunken features
file. Pure: no I/O.

- `health`: {"status": "ok" | "degraded", "reasons": [...]}, carried by every
  hourly predictions document (reasons: features_stale, refused_input; a later
  check adds its reason to REASONS).
- `shrink_refusal`: why a features file must not be scored: no pool at all, or
  contracts.is_shrunk unless its header says allow_shrink: true; else None.

Imports: the standard library and inference/ (floor 1). The limits are
contracts.FEATURES_STALE_AFTER_HOURS and SHRINK_MIN_RATIO; the fields:
docs/serving.md#output-schemas.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from inference import contracts

STATUS_OK = "ok"
STATUS_DEGRADED = "degraded"
FEATURES_STALE = "features_stale"
REFUSED_INPUT = "refused_input"
# every reason a run can be degraded for, in the order they are reported
REASONS = (FEATURES_STALE, REFUSED_INPUT)


def feature_age_hours(feature_date: str | None, event_time: datetime) -> float | None:
    """Hours from the end of a feature day (next midnight UTC) to the event."""
    if not feature_date:
        return None
    day = date.fromisoformat(str(feature_date)[:10])
    day_end = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() + 86400
    return (event_time.timestamp() - day_end) / 3600.0


def health(
    feature_date_max: str | None,
    event_time: datetime,
    stale_after_hours: float = contracts.FEATURES_STALE_AFTER_HOURS,
    refused_inputs: list[str] | tuple[str, ...] = (),
) -> dict:
    """The run's health: degraded with the reasons that apply, else ok."""
    reasons = []
    age = feature_age_hours(feature_date_max, event_time)
    if age is None or age > stale_after_hours:
        reasons.append(FEATURES_STALE)
    found = {"status": STATUS_DEGRADED if reasons else STATUS_OK, "reasons": reasons}
    if refused_inputs:
        reasons.append(REFUSED_INPUT)
        found.update(status=STATUS_DEGRADED, refused_inputs=[str(n) for n in refused_inputs])
    return found


def shrink_refusal(count: int, previous: int | None, allow_shrink: bool) -> str | None:
    """Why a features file of `count` pools is refused after `previous` (None:
    accepted). A file of no pool is refused always, also with nothing before it."""
    if count == 0:
        return "the published features hold no pool: there is nothing to score"
    if allow_shrink or not contracts.is_shrunk(count, previous):
        return None
    return (
        f"the published features have {count:,} pools, below "
        f"{contracts.SHRINK_MIN_RATIO:.0%} of the {previous:,} scored last, and their header "
        f"does not say {contracts.FEATURES_ALLOW_SHRINK_FIELD}: true (publish --allow-shrink)"
    )
