"""The health of an hourly run, and the rule that refuses a shrunken features
file. Pure: no I/O.

- `health`: {"status": "ok" | "degraded", "reasons": [...]}, carried by every
  hourly predictions document (REASONS: features_stale, then refresh_missed,
  input_warnings, refused_input from the features header's refresh fields).
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
# the features were published by an earlier hour's refresh: this hour's did not
# publish (a failed collect, a refused shrink, a killed refresh, a slow server)
REFRESH_MISSED = "refresh_missed"
# the refresh that published them accepted suspect input (its input_notes)
INPUT_WARNINGS = "input_warnings"
REFUSED_INPUT = "refused_input"
# every reason a run can be degraded for, in the order they are reported
REASONS = (FEATURES_STALE, REFRESH_MISSED, INPUT_WARNINGS, REFUSED_INPUT)


def feature_age_hours(feature_date: str | None, event_time: datetime) -> float | None:
    """Hours from the end of a feature day (next midnight UTC) to the event."""
    if not feature_date:
        return None
    day = date.fromisoformat(str(feature_date)[:10])
    day_end = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() + 86400
    return (event_time.timestamp() - day_end) / 3600.0


def refreshed_hour(refresh: dict) -> datetime | None:
    """The refreshed_hour of a features header (or of features.refresh_fields'
    dict) as an aware UTC hour; None when absent or malformed (a file
    published by hand, or before the field existed: never refresh_missed)."""
    value = refresh.get(contracts.FEATURES_REFRESHED_HOUR_FIELD)
    if not isinstance(value, str):
        return None
    try:
        hour = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    hour = hour if hour.tzinfo else hour.replace(tzinfo=UTC)
    return hour.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _texts(refresh: dict, name: str) -> list[str]:
    value = refresh.get(name)
    return [str(v) for v in value] if isinstance(value, list) else []


def health(
    feature_date_max: str | None,
    event_time: datetime,
    stale_after_hours: float = contracts.FEATURES_STALE_AFTER_HOURS,
    refresh: dict | None = None,
) -> dict:
    """The run's health: degraded with the reasons that apply, else ok.
    `refresh`: the features header (its refresh fields are read) or None."""
    refresh = refresh or {}
    reasons = []
    found: dict = {"status": STATUS_OK, "reasons": reasons}
    age = feature_age_hours(feature_date_max, event_time)
    if age is None or age > stale_after_hours:
        reasons.append(FEATURES_STALE)
    refreshed = refreshed_hour(refresh)
    scored_hour = event_time.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if refreshed is not None and refreshed < scored_hour:
        reasons.append(REFRESH_MISSED)
        found["refreshed_hour"] = f"{refreshed:%Y-%m-%dT%H:%M:%SZ}"
    notes = _texts(refresh, contracts.FEATURES_INPUT_NOTES_FIELD)
    if notes:
        reasons.append(INPUT_WARNINGS)
        found["input_notes"] = notes
    refused = _texts(refresh, contracts.FEATURES_REFUSED_INPUTS_FIELD)
    if refused:
        reasons.append(REFUSED_INPUT)
        found["refused_inputs"] = refused
    if reasons:
        found["status"] = STATUS_DEGRADED
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
