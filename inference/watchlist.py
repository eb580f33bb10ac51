"""Alerts for the pools an operator watches. Pure: standard library only;
inference/service.py reads the documents from the bucket and writes them.

A watched pool is announced when its class flips against its previous call,
or its p_keep moves by contracts.WATCH_P_KEEP_MOVE or more against a call of
the last contracts.WATCH_WINDOW_HOURS (calls before its last announcement do
not count again), with its top reasons. The state remembers each watched
pool's calls of the window and the hour it was last announced: a retried
hour finds itself announced already and posts nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from inference import contracts


class WatchlistError(ValueError):
    """A watchlist or watch-state document that is not one (names the key and field)."""


def read_watchlist(document: Any, where: str) -> list[str]:
    """The watched pool ids of a watchlist document, in order, checked."""
    if not isinstance(document, dict) or document.get("format") != contracts.WATCHLIST_FORMAT:
        raise WatchlistError(f"{where}: not a watchlist (format {contracts.WATCHLIST_FORMAT})")
    pools = document.get("pools")
    if not isinstance(pools, list):
        raise WatchlistError(f"{where}: field 'pools' is not a list")
    if len(pools) > contracts.WATCHLIST_MAX_POOLS:
        raise WatchlistError(
            f"{where}: {len(pools)} pools, more than {contracts.WATCHLIST_MAX_POOLS} watched"
        )
    for index, pool_id in enumerate(pools):
        problem = contracts.watch_pool_id_problem(pool_id)
        if problem:
            raise WatchlistError(f"{where}: pools[{index}]: {problem}")
    return list(dict.fromkeys(pools))


def watchlist_document(pools: list[str], updated_at: str) -> dict[str, Any]:
    return {"format": contracts.WATCHLIST_FORMAT, "pools": pools, "updated_at": updated_at}


def _hour(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def read_state(document: Any, where: str) -> dict[str, dict]:
    """{pool_id: {"calls": [[hour, p_keep], ...], "announced": hour | None}}."""
    if not isinstance(document, dict) or document.get("format") != contracts.WATCH_STATE_FORMAT:
        raise WatchlistError(f"{where}: not a watch state (format {contracts.WATCH_STATE_FORMAT})")
    pools = document.get("pools")
    if not isinstance(pools, dict):
        raise WatchlistError(f"{where}: field 'pools' is not an object")
    state = {}
    for pool_id, entry in pools.items():
        calls = entry.get("calls") if isinstance(entry, dict) else None
        try:
            checked = [[str(h), float(p)] for h, p in calls or [] if _hour(str(h)) and 0 <= p <= 1]
            announced = entry.get("announced")
            if announced is not None:
                _hour(str(announced))
        except (TypeError, ValueError) as error:
            raise WatchlistError(f"{where}: pools[{pool_id!r}]: {error}") from error
        state[pool_id] = {"calls": checked, "announced": announced}
    return state


def state_document(state: dict[str, dict], hour: str) -> dict[str, Any]:
    return {"format": contracts.WATCH_STATE_FORMAT, "hour": hour, "pools": state}


@dataclass(frozen=True)
class Alert:
    """One announcement: `kind` 'flip' (class changed against the previous
    call) or 'move' (p_keep moved by WATCH_P_KEEP_MOVE or more); `before` is
    the call compared with: (hour, p_keep)."""

    pool_id: str
    kind: str
    before: tuple[str, float]
    p_keep: float
    hour: str


def _class(p_keep: float) -> str:
    return (
        contracts.CLASS_DOWN if contracts.predicted_class_is_down(p_keep) else contracts.CLASS_KEEP
    )


def _judge(pool_id: str, earlier: list, announced: str | None, p: float, hour: str) -> Alert | None:
    """The alert a new call `p` raises against the earlier calls, or None."""
    if not earlier:
        return None
    previous = max(earlier, key=lambda call: _hour(call[0]))
    if _class(previous[1]) != _class(p):
        return Alert(pool_id, "flip", (previous[0], previous[1]), p, hour)
    since = _hour(announced) if announced else None
    fresh = [c for c in earlier if since is None or _hour(c[0]) >= since]
    if not fresh:
        return None
    farthest = max(fresh, key=lambda call: (abs(p - call[1]), call[0]))
    # a tolerance below the document's 6 decimals: a move of exactly the limit counts
    if abs(p - farthest[1]) >= contracts.WATCH_P_KEEP_MOVE - 1e-9:
        return Alert(pool_id, "move", (farthest[0], farthest[1]), p, hour)
    return None


def evaluate(
    state: dict[str, dict], watched: list[str], records: dict[str, dict], hour: str
) -> tuple[list[Alert], dict[str, dict]]:
    """(alerts, the new state) for the hour `hour` (an event time). `records`
    are the hour's prediction records by pool id; a pool not scored this hour
    adds no call and raises no alert. Calls older than the window are dropped,
    pools no longer watched forgotten; an hour already announced for a pool
    (a retried run) raises nothing again."""
    now = _hour(hour)
    window_start = now - timedelta(hours=contracts.WATCH_WINDOW_HOURS)
    alerts: list[Alert] = []
    new_state: dict[str, dict] = {}
    for pool_id in watched:
        entry = state.get(pool_id) or {"calls": [], "announced": None}
        kept = [c for c in entry["calls"] if _hour(c[0]) > window_start and c[0] != hour]
        earlier = [c for c in kept if _hour(c[0]) < now]
        announced = entry["announced"]
        record = records.get(pool_id) or {}
        p = record.get("p_keep")
        if isinstance(p, (int, float)) and not isinstance(p, bool):
            if announced != hour:
                alert = _judge(pool_id, earlier, announced, float(p), hour)
                if alert is not None:
                    alerts.append(alert)
                    announced = hour
            kept.append([hour, float(p)])
        kept.sort(key=lambda call: _hour(call[0]))
        new_state[pool_id] = {"calls": kept, "announced": announced}
    return alerts, new_state


def _reason_line(reason: Any) -> str:
    if isinstance(reason, dict):
        contribution = reason.get("contribution")
        arrow = "·"
        if isinstance(contribution, (int, float)) and contribution:
            arrow = "↑" if contribution > 0 else "↓"
        return f"{arrow} {reason.get('text', '')}"
    return f"· {reason}"


def _change(alert: Alert) -> str:
    if alert.kind == "flip":
        return f"flipped {_class(alert.before[1])} → {_class(alert.p_keep)}"
    return f"p_keep moved {alert.p_keep - alert.before[1]:+.2f}"


def summary_message(alerts: list[Alert], records: dict[str, dict]) -> dict:
    """One body naming the pools past the hour's per-pool messages."""
    lines = [f"apy-runway watch: {len(alerts)} more watched pools changed at {alerts[0].hour}"]
    for alert in alerts:
        record = records.get(alert.pool_id) or {}
        name = record.get("symbol") or ""
        lines.append(f"{alert.pool_id} {name}: {_change(alert)} (p_keep {alert.p_keep:.3f})")
    text = "\n".join(lines)[:1900]
    return {"content": text, "text": text}


def message(alert: Alert, record: dict, model_id: str | None) -> dict:
    """The webhook body (Discord `content`, Slack `text`): the pool, the
    change, the call now and its top reasons (↑ supports keeping the APY,
    ↓ a risk)."""
    name = record.get("symbol") or alert.pool_id
    where = ", ".join(str(v) for v in (record.get("project"), record.get("chain")) if v)
    before_hour, before_p = alert.before
    down = contracts.predicted_class_is_down(alert.p_keep)
    shown = round(100 * (1 - alert.p_keep if down else alert.p_keep))
    now = f"{_class(alert.p_keep)} {shown}%"
    if record.get("confidence_words"):
        now += f" ({record['confidence_words']} confidence)"
    change = _change(alert)
    lines = [
        f"apy-runway watch: {name}"
        + (f" ({where})" if where else "")
        + f" {change} at {alert.hour}",
        f"now {now}; p_keep {before_p:.3f} at {before_hour} → {alert.p_keep:.3f}"
        + (f" (model {model_id})" if model_id else ""),
    ]
    reasons = record.get("reasons") or []
    if reasons:
        lines.append("why: " + "; ".join(_reason_line(r) for r in reasons[:3]))
    lines.append(f"pool {alert.pool_id}")
    text = "\n".join(lines)[:1900]
    return {"content": text, "text": text}
