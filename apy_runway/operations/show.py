"""`apy-runway show POOL…`: each pool's latest call, its reasons and its record.

The call comes from the local copy of the hourly document
(data/exports/predictions_latest.json, written by `score`); the record from
the ledger mart prediction_outcomes in the warehouse when it is built (live
and backtest predictions kept apart: how many, how many matured, how often
the class was right, the newest matured calls). A pool is named by its id or
by a prefix of it that only one pool has.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from apy_runway.foundation.console import UserError
from inference import contracts

OUTCOMES_TABLE = "prediction_outcomes"
RECENT_CALLS = 5


def read_predictions(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"no predictions at {path}: run `apy-runway score` (or `make run`) first")
    try:
        document = json.loads(path.read_text())
    except ValueError as error:
        raise UserError(f"{path}: not valid JSON: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("predictions"), list):
        raise UserError(f"{path}: not a predictions document (no `predictions` list)")
    return document


def resolve(records: list[dict], queries: list[str]) -> tuple[list[dict], list[str]]:
    """(the records asked for, in order; a problem line per query that names
    no single pool: unknown, or a prefix several pools share)."""
    by_id = {r.get("pool_id"): r for r in records if isinstance(r, dict)}
    found, problems = [], []
    for query in queries:
        if query in by_id:
            found.append(by_id[query])
            continue
        lowered = query.lower()
        matches = [p for p in by_id if isinstance(p, str) and p.lower().startswith(lowered)]
        if len(matches) == 1:
            found.append(by_id[matches[0]])
        elif matches:
            listed = ", ".join(sorted(matches)[:4])
            problems.append(
                f"{query!r} starts {len(matches)} pool ids ({listed}, ...): give more of the id"
            )
        else:
            same_symbol = [
                p for p, r in by_id.items() if str(r.get("symbol") or "").lower() == lowered
            ]
            hint = (
                f"; pools with symbol {query}: {', '.join(sorted(same_symbol)[:5])}"
                if same_symbol
                else ""
            )
            problems.append(f"no pool {query!r} in the latest predictions{hint}")
    return found, problems


def read_record(warehouse: Path, pool_ids: list[str]) -> dict[str, dict] | None:
    """{pool_id: {source: {...}}} from prediction_outcomes; None without the mart."""
    import duckdb

    if not warehouse.is_file():
        return None
    try:
        con = duckdb.connect(str(warehouse), read_only=True)
    except duckdb.Error as error:
        raise UserError(f"{warehouse}: cannot open the warehouse read-only: {error}") from error
    try:
        con.execute("set TimeZone = 'UTC'")
        exists = con.execute(
            "select count(*) from information_schema.tables where table_name = ?",
            [OUTCOMES_TABLE],
        ).fetchone()[0]
        if not exists:
            return None
        con.execute("create temporary table wanted (pool_id varchar)")
        con.executemany("insert into wanted values (?)", [[p] for p in pool_ids])
        totals = con.execute(
            f"""
            select pool_id, source, count(*), count(*) filter (where is_matured),
                avg(is_hit::double) filter (where is_matured)
            from {OUTCOMES_TABLE} semi join wanted using (pool_id)
            group by pool_id, source
            """
        ).fetchall()
        recent = con.execute(
            f"""
            select pool_id, source,
                case
                    when source = 'live' then scored_hour::varchar
                    else strftime(feature_date, '%Y-%m-%d')
                end as as_of,
                p_keep, predicted_class, is_apy_kept, is_hit
            from {OUTCOMES_TABLE} semi join wanted using (pool_id)
            where is_matured
            qualify row_number() over (
                partition by pool_id, source order by feature_date desc, scored_hour desc
            ) <= {RECENT_CALLS}
            order by pool_id, source, as_of desc
            """
        ).fetchall()
    except duckdb.Error as error:
        raise UserError(f"{warehouse}: cannot read {OUTCOMES_TABLE}: {error}") from error
    finally:
        con.close()
    out: dict[str, dict] = {}
    for pool_id, source, rows, matured, hit_rate in totals:
        out.setdefault(pool_id, {})[source] = {
            "rows": rows,
            "matured": matured,
            "hit_rate": hit_rate,
            "recent": [],
        }
    for pool_id, source, as_of, p_keep, klass, kept, hit in recent:
        out[pool_id][source]["recent"].append((as_of, p_keep, klass, kept, hit))
    return out


def _arrow(reason: Any) -> str:
    contribution = reason.get("contribution") if isinstance(reason, dict) else None
    if isinstance(contribution, (int, float)) and contribution:
        return "↑" if contribution > 0 else "↓"
    return "·"


def _money(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "–"
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"${value / size:.3g}{unit}"
    return f"${value:.0f}"


def render(record: dict, history: dict | None, document: dict) -> list[str]:
    """One pool's block of lines."""
    name = record.get("symbol") or "(no symbol)"
    where = " · ".join(str(v) for v in (record.get("project"), record.get("chain")) if v)
    lines = [f"{name}  {where}", f"  pool {record['pool_id']}"]
    apy = record.get("apy")
    numbers = f"APY {apy:.2f}%" if isinstance(apy, (int, float)) else "APY –"
    numbers += f", TVL {_money(record.get('tvl_usd'))}"
    seen = record.get("feature_date") or "?"
    if record.get("is_inactive"):
        numbers += f" (last seen {seen}: inactive)"
    else:
        numbers += f" (features of {seen}{', stale' if record.get('is_stale') else ''})"
    lines.append("  " + numbers)
    p = record.get("p_keep")
    if not isinstance(p, (int, float)):
        lines.append(f"  call: not scored ({record.get('reason') or 'no prediction'})")
    else:
        down = contracts.predicted_class_is_down(p)
        percent = round(100 * (1 - p if down else p))
        word = record.get("confidence_words") or contracts.CONFIDENCE_WORDS.get(
            record.get("binned_confidence"), ""
        )
        lines.append(
            f"  call: {'Down' if down else 'Stable/Up'} {percent}%"
            + (f", {word} confidence" if word else "")
            + f"  (p_keep {p:.3f}, scored {document.get('event_time', '?')},"
            f" model {document.get('model_id', '?')})"
        )
        reasons = record.get("reasons") or []
        if reasons:
            lines.append("  why (↑ supports keeping the APY, ↓ a risk):")
            for reason in reasons:
                text = reason.get("text") if isinstance(reason, dict) else str(reason)
                lines.append(f"    {_arrow(reason)} {text}")
    lines += _render_history(history)
    return lines


def _render_history(history: dict | None) -> list[str]:
    if history is None:
        return ["  record: no ledger yet (prediction_outcomes is built by `ledger sync`)"]
    if not history:
        return ["  record: no predictions for this pool in the ledger yet"]
    lines = []
    for source in contracts.LEDGER_SOURCES:
        entry = history.get(source)
        if entry is None:
            continue
        rate = entry["hit_rate"]
        lines.append(
            f"  record ({source}): {entry['rows']} predictions, {entry['matured']} matured"
            + (f", class right {100 * rate:.0f}% of the time" if rate is not None else "")
        )
        for as_of, p_keep, klass, kept, hit in entry["recent"]:
            outcome = "kept" if kept else "dropped"
            lines.append(
                f"    {as_of}  {klass:9} p_keep {p_keep:.3f}  -> {outcome:7} "
                f"{'hit' if hit else 'miss'}"
            )
    return lines


def show(predictions: Path, warehouse: Path, queries: list[str]) -> tuple[str, list[str]]:
    """(the text to print, the problems: queries naming no single pool)."""
    document = read_predictions(predictions)
    found, problems = resolve(document["predictions"], queries)
    history = read_record(warehouse, [r["pool_id"] for r in found]) if found else None
    blocks = []
    for record in found:
        pool_history = None if history is None else history.get(record["pool_id"], {})
        blocks.append("\n".join(render(record, pool_history, document)))
    return "\n\n".join(blocks), problems
