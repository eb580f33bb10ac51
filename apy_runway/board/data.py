"""The runway board's data, shaped for the browser: pure functions, no I/O.

`normalise_predictions` reads the hourly document defensively (errors name
the file, record and field); `table_payload` gives the pool table as columns
(strings dictionary-encoded, flags and traits as bits, signed reasons);
`confidence_legend` and `summarise_track_record` the aggregates (AUC by
month, reliability, hit rate per bin, base rate; sources never mixed);
`pool_shards` the per-pool documents, grouped by `shard_of(pool_id)` (FNV-1a,
which the page computes too). Schemas: docs/board.md. May import the standard
library, numpy, pandas, `inference.contracts` and `models_py` (the AUC).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from inference import contracts
from models_py.evaluate import rank_auc

# Bump on any change of the board's data files (data/*.js); the page refuses
# a major version it does not know. 2: DefiLlama's columns, traits, signed
# reasons ([sign, text] in the table, objects with the contribution per pool),
# the confidence legend, provenance.
BOARD_SCHEMA_VERSION = 2

# The adapter seam of the track record: every source (the run folder's
# backtest today, the ledger mart `prediction_outcomes` later) gives rows of
# these columns. `as_of` is the prediction's date (YYYY-MM-DD) or hour
# (YYYY-MM-DDTHH:MM:SSZ); `label` is 1 (kept) / 0 (dropped) / null (not
# matured yet); `binned_confidence` is 1 / 2 / 3 from contracts.confidence_bin.
TRACK_RECORD_COLUMNS: tuple[str, ...] = (
    "pool_id",
    "as_of",
    "p_keep",
    "binned_confidence",
    "label",
    "source",
)
TRACK_RECORD_SOURCES: tuple[str, ...] = ("live", "backtest")

# Flags of a pool, as bits of one small integer in the table.
FLAG_BITS: dict[str, int] = {"inactive": 1, "stale": 2, "unseen_category": 4}
# What the analyst filters on (DefiLlama's static attributes), as bits too.
TRAIT_BITS: dict[str, int] = {"stablecoin": 1, "no_il_risk": 2, "single_exposure": 4}
# The warehouse's numbers the table shows beside APY and TVL (DefiLlama's
# columns): base / reward APY, the 30-day mean APY and the APY changes in
# percentage points (latest_features' apy_rolling_30d_mean, apy_change_<n>d).
STATE_NUMBERS: tuple[str, ...] = (
    "apy_base",
    "apy_reward",
    "apy_mean_30d",
    "apy_change_1d",
    "apy_change_7d",
    "apy_change_30d",
)
# The confidence legend quotes live hit rates once this many live predictions
# have matured; before, the backtest's.
LEGEND_MIN_MATURED = 200
# Class codes in the table: the page shows contracts.CLASS_NAMES.
CLASS_CODE_NOT_SCORED = -1
MAX_REASONS = 3
MAX_REASON_CHARS = 160
RELIABILITY_BINS = 10


class BoardInputError(ValueError):
    """An input the board cannot read: the message names the file, the record and the field."""


def shown(value: Any) -> str:
    """A value as an error message shows it (numpy scalars as plain Python)."""
    return repr(value.item() if hasattr(value, "item") else value)


# --------------------------------------------------------------------------- predictions


def _number(value: Any, where: str, field: str, low: float, high: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BoardInputError(f"{where}: field {field!r} is {value!r}, not a number")
    if not math.isfinite(value) or not low <= value <= high:
        raise BoardInputError(f"{where}: field {field!r} is {value!r}, outside [{low:g}, {high:g}]")
    return float(value)


def _text(value: Any, where: str, field: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise BoardInputError(f"{where}: field {field!r} is {value!r}, not a string")
    return value


def _reasons(value: Any, where: str) -> list[dict[str, Any]]:
    """Up to three reasons, each {"text", "contribution", "feature"}: from a
    list of strings (no direction known: contribution None), or of objects
    carrying the phrase as `text` / `phrase` / `reason` and, when signed, a
    `contribution` (positive: towards keeping the APY, as the hourly document
    says)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise BoardInputError(f"{where}: field 'reasons' is {value!r}, not a list")
    out = []
    for position, item in enumerate(value):
        contribution = feature = None
        if isinstance(item, dict):
            contribution = _number(
                item.get("contribution"),
                where,
                f"reasons[{position}].contribution",
                -math.inf,
                math.inf,
            )
            feature = _text(item.get("feature"), where, f"reasons[{position}].feature")
            item = next(
                (item[key] for key in ("text", "phrase", "reason") if item.get(key) is not None),
                None,
            )
        if item is None:
            continue
        if not isinstance(item, str):
            raise BoardInputError(
                f"{where}: reasons[{position}] is {item!r}, not a phrase (a string, or an "
                "object with 'text')"
            )
        phrase = " ".join(item.split())
        if phrase:
            out.append(
                {
                    "text": phrase[:MAX_REASON_CHARS],
                    "contribution": contribution,
                    "feature": feature,
                }
            )
    return out[:MAX_REASONS]


def reason_sign(reason: dict[str, Any]) -> int:
    """1: supports keeping the APY, -1: a risk, 0: direction unknown."""
    contribution = reason.get("contribution")
    if contribution is None or contribution == 0:
        return 0
    return 1 if contribution > 0 else -1


def _flags(record: dict, where: str) -> int:
    """Bits of FLAG_BITS from whichever form the record carries: `flags` as a
    list of names or an object of booleans, `is_stale` / `is_inactive` /
    `has_unseen_category`, or the not-scored reason `inactive`."""
    bits = 0
    flags = record.get("flags")
    if isinstance(flags, dict):
        names = [name for name, on in flags.items() if on]
    elif isinstance(flags, list):
        names = flags
    elif flags is None:
        names = []
    else:
        raise BoardInputError(f"{where}: field 'flags' is {flags!r}, not a list or an object")
    for name in names:
        if not isinstance(name, str):
            raise BoardInputError(f"{where}: flag {name!r} is not a string")
        bits |= FLAG_BITS.get(name, 0)
    for field, flag in (
        ("is_stale", "stale"),
        ("is_inactive", "inactive"),
        ("has_unseen_category", "unseen_category"),
        ("is_unseen_category", "unseen_category"),
    ):
        value = record.get(field)
        if value is not None and not isinstance(value, bool):
            raise BoardInputError(f"{where}: field {field!r} is {value!r}, not true/false")
        if value:
            bits |= FLAG_BITS[flag]
    reason = record.get("reason")
    if isinstance(reason, str) and reason.split(":")[0].strip().lower() == "inactive":
        bits |= FLAG_BITS["inactive"]
    return bits


def normalise_predictions(document: Any, name: str) -> dict[str, Any]:
    """The hourly predictions document -> {'meta': {...}, 'records': [...]}.

    Each record keeps what the board shows; a field of the wrong type raises
    BoardInputError naming `name`, the record's index and pool id, and the field.
    """
    if not isinstance(document, dict):
        raise BoardInputError(f"{name}: expected a JSON object, got {type(document).__name__}")
    version = document.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise BoardInputError(f"{name}: field 'schema_version' is {version!r}, not a version >= 1")
    records = document.get("predictions")
    if not isinstance(records, list):
        raise BoardInputError(f"{name}: field 'predictions' is missing or not a list")
    health = document.get("health")
    if health is not None and not isinstance(health, dict):
        raise BoardInputError(f"{name}: field 'health' is {health!r}, not an object")
    seen: dict[str, int] = {}
    out = [
        _normalise_record(record, f"{name}: predictions[{i}]", seen, i)
        for i, record in enumerate(records)
    ]
    explanation = document.get("explanation")
    meta = {
        "schema_version": version,
        "model_id": document.get("model_id"),
        "event_time": document.get("event_time"),
        "feature_date_max": document.get("feature_date_max"),
        "counts": document.get("counts") if isinstance(document.get("counts"), dict) else None,
        "data_provenance": document.get("data_provenance"),
        "explanation_units": explanation.get("units") if isinstance(explanation, dict) else None,
    }
    return {"meta": meta, "records": out, "health": health}


def _normalise_record(record: Any, where: str, seen: dict[str, int], index: int) -> dict[str, Any]:
    """One hourly record -> the board's record; `seen` maps pool ids to their index."""
    if not isinstance(record, dict):
        raise BoardInputError(f"{where} is {record!r}, not an object")
    pool_id = record.get("pool_id")
    if not isinstance(pool_id, str) or not pool_id.strip():
        raise BoardInputError(f"{where}: field 'pool_id' is {pool_id!r}, not a pool id")
    where = f"{where} (pool {pool_id})"
    if pool_id in seen:
        raise BoardInputError(f"{where}: pool id repeats predictions[{seen[pool_id]}]")
    seen[pool_id] = index
    p_keep = _number(record.get("p_keep"), where, "p_keep", 0.0, 1.0)
    confidence = record.get("binned_confidence")
    if confidence is not None and (
        isinstance(confidence, bool) or confidence not in contracts.CONFIDENCE_WORDS
    ):
        raise BoardInputError(
            f"{where}: field 'binned_confidence' is {confidence!r}, not one of "
            f"{sorted(contracts.CONFIDENCE_WORDS)}"
        )
    predicted_class = _text(record.get("predicted_class"), where, "predicted_class")
    if predicted_class is not None and predicted_class not in contracts.CLASS_NAMES.values():
        raise BoardInputError(
            f"{where}: field 'predicted_class' is {predicted_class!r}, not one of "
            f"{sorted(contracts.CLASS_NAMES.values())}"
        )
    if predicted_class is None and p_keep is not None:
        predicted_class = contracts.CLASS_NAMES[
            contracts.LABEL_DOWN
            if contracts.predicted_class_is_down(p_keep)
            else contracts.LABEL_KEEP
        ]
    words = record.get("confidence_words", record.get("confidence_word"))
    words = _text(words, where, "confidence_words")
    if words is None and confidence is not None:
        words = contracts.CONFIDENCE_WORDS[confidence]
    tvl = record.get("tvl_usd", record.get("tvlUsd"))
    return {
        "pool_id": pool_id,
        "symbol": _text(record.get("symbol"), where, "symbol"),
        "pool_meta": _text(record.get("pool_meta", record.get("poolMeta")), where, "pool_meta"),
        "project": _text(record.get("project"), where, "project"),
        "chain": _text(record.get("chain"), where, "chain"),
        "status": _text(record.get("status"), where, "status"),
        "reason": _text(record.get("reason"), where, "reason"),
        "p_keep": p_keep if predicted_class is not None else None,
        "predicted_class": predicted_class if p_keep is not None else None,
        "binned_confidence": confidence if p_keep is not None else None,
        "confidence_words": words if p_keep is not None else None,
        "reasons": _reasons(record.get("reasons"), where),
        "apy": _number(record.get("apy"), where, "apy", -math.inf, math.inf),
        "tvl_usd": _number(tvl, where, "tvl_usd", 0.0, math.inf),
        "flags": _flags(record, where),
        "feature_date": _text(record.get("feature_date"), where, "feature_date"),
    }


def describe_provenance(value: Any) -> dict[str, Any] | None:
    """The banner's line for a run's `data_provenance` (generated with a seed,
    real files, or collected hours; the shape is read defensively): {"demo":
    trained on generated data, "text"}; None when there is none."""
    if value is None:
        return None
    if isinstance(value, str):
        kind, details = value, {}
    elif isinstance(value, dict):
        kind = next(
            (str(value[k]) for k in ("kind", "source", "type") if isinstance(value.get(k), str)), ""
        )
        details = value
    else:
        return {"demo": False, "text": f"Model trained on: {value!r}"[:200]}
    if any(word in kind.lower() for word in ("generat", "synthetic", "demo")):
        seed = details.get("seed")
        return {
            "demo": True,
            "text": "Demo model: trained on generated data"
            + (f" (seed {seed})" if seed is not None else "")
            + ", not on real pools",
        }
    files = details.get("files")
    if isinstance(files, list) and files:
        names = [
            str(f.get("name", f.get("path", "?"))) if isinstance(f, dict) else str(f) for f in files
        ]
        shown_names = ", ".join(names[:3]) + (
            f" and {len(names) - 3} more" if len(names) > 3 else ""
        )
        return {"demo": False, "text": f"Model trained on {len(names)} real file(s): {shown_names}"}
    first = details.get("first_hour", details.get("first"))
    last = details.get("last_hour", details.get("last"))
    if first or last:
        return {"demo": False, "text": f"Model trained on collected hours {first} to {last}"}
    return {"demo": False, "text": f"Model trained on: {kind or 'data described in its run'}"}


# --------------------------------------------------------------------------- the pool table


def _encode(values: Sequence[str | None]) -> tuple[list[int], list[str]]:
    """Dictionary-encode strings; the dictionary is sorted, so code order is
    alphabetical order (the page sorts by code). None -> -1."""
    dictionary = sorted({v for v in values if v is not None}, key=lambda v: (v.lower(), v))
    index = {value: code for code, value in enumerate(dictionary)}
    return [index[v] if v is not None else -1 for v in values], dictionary


def _rounded(values: Iterable[float | None], digits: int) -> list[float | int | None]:
    """Rounded for a small file; whole numbers (digits 0) as integers; non-finite -> None."""
    return [
        None
        if v is None or not math.isfinite(v)
        else (round(v) if digits == 0 else round(v, digits))
        for v in values
    ]


def _day_number(value: Any) -> int | None:
    """A date (or its ISO text) as days since 1970-01-01; None when absent."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    try:
        return int(np.datetime64(str(value)[:10], "D").astype(np.int64))
    except ValueError:
        return None


def _traits(state: dict) -> int:
    """Bits of TRAIT_BITS from the warehouse's static attributes ('unknown' sets none)."""
    bits = 0
    stable = state.get("is_stablecoin", state.get("stablecoin"))
    if (isinstance(stable, (bool, np.bool_)) and stable) or (
        isinstance(stable, str) and stable.lower() == "true"
    ):
        bits |= TRAIT_BITS["stablecoin"]
    if isinstance(state.get("il_risk"), str) and state["il_risk"].lower() == "no":
        bits |= TRAIT_BITS["no_il_risk"]
    if isinstance(state.get("exposure"), str) and state["exposure"].lower() == "single":
        bits |= TRAIT_BITS["single_exposure"]
    return bits


def table_payload(
    records: list[dict], latest: pd.DataFrame | None, legend: list[dict] | None = None
) -> dict[str, Any]:
    """The pool table as columns. `latest` (one row per pool: the newest day
    in the warehouse, LATEST_STATE_COLUMNS, any of them may be absent) fills
    what the prediction records do not carry; a record's own value wins."""
    state: dict[str, dict] = {}
    if latest is not None and len(latest):
        state = latest.set_index("pool_id").to_dict("index")
    empty: dict = {}

    def pick(record: dict, field: str, column: str | None = None) -> Any:
        value = record.get(field)
        if value is None:
            value = state.get(record["pool_id"], empty).get(column or field)
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        return value if value is not pd.NA else None

    symbols = [pick(r, "symbol") for r in records]
    projects, project_names = _encode([pick(r, "project") for r in records])
    chains, chain_names = _encode([pick(r, "chain") for r in records])
    class_code = {name: label for label, name in contracts.CLASS_NAMES.items()}
    columns: dict[str, list] = {
        "pool_id": [r["pool_id"] for r in records],
        "symbol": symbols,
        "pool_meta": [pick(r, "pool_meta") for r in records],
        "p_keep": _rounded((r["p_keep"] for r in records), 6),
        "class": [class_code.get(r["predicted_class"], CLASS_CODE_NOT_SCORED) for r in records],
        "confidence": [r["binned_confidence"] or 0 for r in records],
        "words": [r["confidence_words"] for r in records],
        "reasons": [[[reason_sign(x), x["text"]] for x in r["reasons"]] for r in records],
        "apy": _rounded((pick(r, "apy") for r in records), 4),
        "tvl_usd": _rounded((pick(r, "tvl_usd") for r in records), 0),
    }
    for column in STATE_NUMBERS:
        columns[column] = _rounded((pick(r, column) for r in records), 4)
    columns |= {
        "project": projects,
        "chain": chains,
        "flags": [r["flags"] for r in records],
        "traits": [_traits(state.get(r["pool_id"], empty)) for r in records],
        "seen_day": [
            _day_number(r.get("feature_date") or state.get(r["pool_id"], empty).get("last_day"))
            for r in records
        ],
        "status": [r["status"] for r in records],
        "not_scored_reason": [r["reason"] for r in records],
    }
    return {
        "rows": len(records),
        "classes": {str(label): name for label, name in contracts.CLASS_NAMES.items()},
        "confidence_words": {str(b): w for b, w in contracts.CONFIDENCE_WORDS.items()},
        "flag_bits": dict(FLAG_BITS),
        "trait_bits": dict(TRAIT_BITS),
        "projects": project_names,
        "chains": chain_names,
        "legend": legend or [],
        "columns": columns,
    }


def confidence_legend(records: list[dict], track: dict[str, Any]) -> list[dict[str, Any]]:
    """What each confidence word has meant: per bin, its hit rate in the track
    record (live once LEGEND_MIN_MATURED live predictions have matured, else
    the backtest) and its share of the pools scored now."""
    live = track.get("live")
    summary = live if live and live["matured_rows"] >= LEGEND_MIN_MATURED else track.get("backtest")
    source = "live" if summary is live and live else ("backtest" if summary else None)
    by_bin = {b["confidence"]: b for b in (summary or {}).get("hit_rate_by_confidence", [])}
    scored = [r for r in records if r["binned_confidence"]]
    words: dict[int, str] = dict(contracts.CONFIDENCE_WORDS)
    for r in scored:
        if r["confidence_words"]:
            words[r["binned_confidence"]] = r["confidence_words"]
    bins = sorted({r["binned_confidence"] for r in scored} | set(by_bin))
    out = []
    for b in bins:
        pools = sum(r["binned_confidence"] == b for r in scored)
        entry = by_bin.get(b, {})
        out.append(
            {
                "confidence": b,
                "words": words.get(b, str(b)),
                "pools": pools,
                "share": pools / len(scored) if scored else None,
                "hit_rate": entry.get("hit_rate"),
                "rows": entry.get("rows", 0),
                "source": source,
            }
        )
    return out


# --------------------------------------------------------------------------- track record


def label_binned_confidence(p_keep: np.ndarray, cutpoints: Sequence[float]) -> np.ndarray:
    """The bin a prediction was (or would have been) shown in: the ONE shared
    bin function over the shown probability."""
    shown = contracts.predicted_probability(np.asarray(p_keep, dtype=float))
    return np.asarray(contracts.confidence_bin(shown, cutpoints), dtype=int)


def check_track_record(rows: pd.DataFrame, name: str) -> pd.DataFrame:
    """Validate an adapter's rows (columns, sources, ranges); errors name the row."""
    missing = [c for c in TRACK_RECORD_COLUMNS if c not in rows.columns]
    if missing:
        raise BoardInputError(f"{name}: track-record rows lack columns {missing}")
    rows = rows.loc[:, list(TRACK_RECORD_COLUMNS)].reset_index(drop=True)
    checks = (
        ("source", ~rows["source"].isin(TRACK_RECORD_SOURCES)),
        ("pool_id", rows["pool_id"].isna()),
        ("as_of", rows["as_of"].isna()),
        ("p_keep", ~pd.to_numeric(rows["p_keep"], errors="coerce").between(0.0, 1.0)),
        ("binned_confidence", ~rows["binned_confidence"].isin([1, 2, 3])),
        ("label", ~(rows["label"].isna() | rows["label"].isin([0, 1]))),
    )
    for column, bad in checks:
        if bad.any():
            first = int(np.flatnonzero(bad.to_numpy())[0])
            raise BoardInputError(
                f"{name}: row {first} (pool {shown(rows['pool_id'].iloc[first])}) has "
                f"{column} = {shown(rows[column].iloc[first])}; {int(bad.sum())} such rows"
            )
    return rows.assign(
        pool_id=rows["pool_id"].astype(str),
        as_of=rows["as_of"].astype(str),
        p_keep=rows["p_keep"].to_numpy(dtype=float),
        binned_confidence=rows["binned_confidence"].to_numpy().astype(int),
        label=pd.to_numeric(rows["label"]).to_numpy(dtype=float, na_value=np.nan),
    )


def _reliability(y: np.ndarray, p: np.ndarray, bins: int) -> tuple[list[dict], float]:
    index = np.minimum((p * bins).astype(int), bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        mask = index == b
        n = int(mask.sum())
        entry = {"bin_low": b / bins, "bin_high": (b + 1) / bins, "rows": n}
        if n:
            mean_p, observed = float(p[mask].mean()), float(y[mask].mean())
            entry |= {"mean_p_keep": mean_p, "observed_keep_rate": observed}
            ece += n / len(y) * abs(mean_p - observed)
        else:
            entry |= {"mean_p_keep": None, "observed_keep_rate": None}
        table.append(entry)
    return table, float(ece)


def _finite_or_none(value: float) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def summarise_source(rows: pd.DataFrame, bins: int = RELIABILITY_BINS) -> dict[str, Any]:
    """The track record of one source's rows (already checked)."""
    as_of = rows["as_of"].astype(str)
    labels = rows["label"].to_numpy(dtype=float)
    matured = np.isfinite(labels)
    y = labels[matured].astype(int)
    p = rows["p_keep"].to_numpy(dtype=float)[matured]
    confidence = rows["binned_confidence"].to_numpy().astype(int)[matured]
    months = as_of.str.slice(0, 7).to_numpy()
    by_month = []
    for month in sorted(set(months.tolist())):
        in_month = months == month
        mask = in_month[matured]
        by_month.append(
            {
                "month": month,
                "rows": int(in_month.sum()),
                "matured_rows": int(mask.sum()),
                "roc_auc": _finite_or_none(rank_auc(y[mask], p[mask])) if mask.any() else None,
                "down_rate": float(1 - y[mask].mean()) if mask.any() else None,
            }
        )
    hits = (~contracts.predicted_class_is_down(p)).astype(int) == y
    by_bin = []
    for b, word in contracts.CONFIDENCE_WORDS.items():
        mask = confidence == b
        by_bin.append(
            {
                "confidence": b,
                "words": word,
                "rows": int(mask.sum()),
                "hit_rate": float(hits[mask].mean()) if mask.any() else None,
                "predicted_down_share": float(contracts.predicted_class_is_down(p[mask]).mean())
                if mask.any()
                else None,
            }
        )
    reliability, ece = _reliability(y, p, bins) if len(y) else ([], None)
    return {
        "rows": len(rows),
        "matured_rows": int(matured.sum()),
        "pending_rows": int((~matured).sum()),
        "pools": int(rows["pool_id"].nunique()),
        "first": as_of.min(),
        "last": as_of.max(),
        "roc_auc": _finite_or_none(rank_auc(y, p)) if len(y) else None,
        "brier": float(np.mean((p - y) ** 2)) if len(y) else None,
        "ece": ece,
        "hit_rate": float(hits.mean()) if len(y) else None,
        # how often "always Stable/Up" is right: the share of matured predictions kept
        "base_rate": float(y.mean()) if len(y) else None,
        "auc_by_month": by_month,
        "reliability": reliability,
        "hit_rate_by_confidence": by_bin,
    }


def summarise_track_record(rows: pd.DataFrame | None) -> dict[str, Any]:
    """{'live': summary | None, 'backtest': summary | None}: sources kept apart."""
    out: dict[str, Any] = dict.fromkeys(TRACK_RECORD_SOURCES)
    if rows is None or not len(rows):
        return out
    for source in TRACK_RECORD_SOURCES:
        part = rows[rows["source"] == source]
        if len(part):
            out[source] = summarise_source(part)
    return out


# --------------------------------------------------------------------------- per-pool shards


@dataclass(frozen=True)
class PoolHistory:
    """Daily APY and TVL of many pools as plain arrays (no per-row Python
    objects: 20k pools x 365 days is 7.3M rows), one row per pool per day.

    pool_ids[pool_index[row]] is a row's pool; day is days since 1970-01-01.
    """

    pool_ids: list[str]
    pool_index: np.ndarray
    day: np.ndarray
    apy: np.ndarray
    tvl_usd: np.ndarray

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> PoolHistory:
        """From a frame of pool_id, snapshot_date, apy, tvl_usd (tests, small inputs)."""
        codes, uniques = pd.factorize(frame["pool_id"], sort=True)
        days = pd.to_datetime(frame["snapshot_date"]).to_numpy().astype("datetime64[D]")
        return cls(
            pool_ids=[str(u) for u in uniques],
            pool_index=codes.astype(np.int32),
            day=days.astype(np.int64).astype(np.int32),
            apy=frame["apy"].to_numpy(dtype=float, na_value=np.nan),
            tvl_usd=frame["tvl_usd"].to_numpy(dtype=float, na_value=np.nan),
        )

    def __len__(self) -> int:
        return len(self.day)

    def slices(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """{pool_id: (days, apy, tvl_usd)}, each pool's days ascending."""
        order = np.lexsort((self.day, self.pool_index))
        index, day = self.pool_index[order], self.day[order]
        apy, tvl = self.apy[order], self.tvl_usd[order]
        return {
            self.pool_ids[code]: (day[start:stop], apy[start:stop], tvl[start:stop])
            for code, (start, stop) in _group_bounds(index).items()
        }


def shard_of(pool_id: str, shards: int) -> int:
    """FNV-1a 32-bit over the UTF-8 bytes, modulo the shard count. The pool
    page computes the same in JavaScript (assets/common.js: shardOf)."""
    value = 0x811C9DC5
    for byte in pool_id.encode("utf-8"):
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value % shards


def shard_count(pools: int, pools_per_shard: int) -> int:
    if pools_per_shard < 1:
        raise ValueError(f"pools per shard must be at least 1, got {pools_per_shard}")
    return max(1, math.ceil(pools / pools_per_shard))


def _group_bounds(keys: np.ndarray) -> dict[Any, tuple[int, int]]:
    """{key: (start, stop)} of an array sorted by key."""
    if not len(keys):
        return {}
    change = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    starts = np.concatenate([[0], change])
    stops = np.concatenate([change, [len(keys)]])
    values = keys[starts].tolist()  # plain Python keys (str or int)
    return {value: (int(s), int(e)) for value, s, e in zip(values, starts, stops, strict=True)}


def _nullable(values: np.ndarray, digits: int) -> list:
    """Rounded values with null for NaN; whole numbers (digits 0) as integers."""
    finite = np.isfinite(values)
    if digits == 0:
        whole = np.zeros(len(values), dtype=np.int64)
        whole[finite] = np.round(values[finite])
        out = whole.astype(object)
    else:
        out = np.round(values, digits).astype(object)
    out[~finite] = None
    return out.tolist()


def pool_shards(
    records: list[dict],
    history: PoolHistory | None,
    track: pd.DataFrame | None,
    table_columns: dict[str, list],
    projects: Sequence[str],
    chains: Sequence[str],
    shards: int,
    served_per_pool: int,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(shard, {pool_id: pool document}) for every shard holding a pool.

    history: each pool's days become a dense calendar from its first day
    (gaps as null). track: the checked track-record rows; the newest
    `served_per_pool` per pool are kept.
    """
    pool_history = history.slices() if history is not None else {}
    track_bounds: dict[str, tuple[int, int]] = {}
    if track is not None and len(track):
        track = track.assign(as_of=track["as_of"].astype(str)).sort_values(
            ["pool_id", "as_of", "source"], kind="stable"
        )
        track_ids = track["pool_id"].to_numpy()
        track_as_of = track["as_of"].to_numpy()
        track_p = track["p_keep"].to_numpy(dtype=float)
        track_bin = track["binned_confidence"].to_numpy().astype(int)
        track_label = track["label"].to_numpy(dtype=float)
        track_source = track["source"].to_numpy()
        track_bounds = _group_bounds(track_ids)

    by_shard: dict[int, list[int]] = {}
    for index, record in enumerate(records):
        by_shard.setdefault(shard_of(record["pool_id"], shards), []).append(index)
    columns = table_columns
    for shard in sorted(by_shard):
        pools: dict[str, Any] = {}
        for index in by_shard[shard]:
            record = records[index]
            pool_id = record["pool_id"]
            document: dict[str, Any] = {
                "symbol": columns["symbol"][index],
                "pool_meta": columns["pool_meta"][index],
                "project": projects[columns["project"][index]]
                if columns["project"][index] >= 0
                else None,
                "chain": chains[columns["chain"][index]] if columns["chain"][index] >= 0 else None,
                "current": {
                    "status": record["status"],
                    "not_scored_reason": record["reason"],
                    "p_keep": record["p_keep"],
                    "predicted_class": record["predicted_class"],
                    "binned_confidence": record["binned_confidence"],
                    "confidence_words": record["confidence_words"],
                    "feature_date": record["feature_date"],
                    "seen_day": columns["seen_day"][index],
                    "apy": columns["apy"][index],
                    "tvl_usd": columns["tvl_usd"][index],
                    **{name: columns[name][index] for name in STATE_NUMBERS},
                    "flags": record["flags"],
                    "traits": columns["traits"][index],
                },
                "reasons": record["reasons"],
                "history": None,
                "served": None,
            }
            if pool_id in pool_history:
                days, daily_apy, daily_tvl = pool_history[pool_id]
                first = int(days[0])
                offsets = days - first
                apy = np.full(int(offsets[-1]) + 1, np.nan)
                tvl = np.full(int(offsets[-1]) + 1, np.nan)
                apy[offsets] = daily_apy
                tvl[offsets] = daily_tvl
                document["history"] = {
                    "start": str(np.datetime64(first, "D")),
                    "apy": _nullable(apy, 4),
                    "tvl_usd": _nullable(tvl, 0),
                }
            if pool_id in track_bounds:
                start, stop = track_bounds[pool_id]
                start = max(start, stop - served_per_pool)
                document["served"] = {
                    "as_of": track_as_of[start:stop].tolist(),
                    "p_keep": np.round(track_p[start:stop], 6).tolist(),
                    "binned_confidence": track_bin[start:stop].tolist(),
                    "label": _nullable(track_label[start:stop], 0),
                    "source": track_source[start:stop].tolist(),
                    "total": int(track_bounds[pool_id][1] - track_bounds[pool_id][0]),
                }
            pools[pool_id] = document
        yield shard, pools
