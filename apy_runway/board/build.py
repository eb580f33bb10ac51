"""`apy-runway board`: the runway board, a static HTML site people can look at.

Reads the inputs (docs/board.md's table: the hourly predictions document,
the warehouse's daily history and latest_features, the ledger mart or the
run's backtest, the monitoring document, the run's provenance), each
optional and read defensively, errors naming the file, record and field;
hands them to data.py (pure shaping) and writes <home>/data/board/
(``--out``, replaced whole): the pages, assets, the vendored uPlot, and the
data as scripts calling BOARD.receive (browsers refuse fetch() on file://).
No server, CDN or network request. `build_board(paths, ...)` is the function
run-all and `refresh --board` call.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from apy_runway.board import data as board_data
from apy_runway.board.data import BoardInputError
from apy_runway.foundation.console import UserError, log
from apy_runway.foundation.defaults import (
    DEFAULT_HISTORY_DAYS,
    DEFAULT_POOLS_PER_SHARD,
    DEFAULT_SERVED_PER_POOL,
)
from apy_runway.foundation.paths import ProjectPaths
from inference import contracts

SITE_ASSETS = Path(__file__).resolve().parent / "site"
HISTORY_TABLE = "int_pool_snapshots_downsampled_to_daily"
BACKTEST_FILE = "backtest_predictions.parquet"
# Written into every board: an existing --out folder without it is never replaced.
MARKER = ".apy-runway-board"


def default_out(paths: ProjectPaths) -> Path:
    return paths.data / "board"


def default_predictions(paths: ProjectPaths) -> Path:
    """Where `apy-runway score` leaves its copy of the hourly document."""
    return paths.exports / "predictions_latest.json"


def default_monitoring(paths: ProjectPaths) -> Path:
    return paths.data / "monitoring"


# --------------------------------------------------------------------------- readers


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise UserError(f"{path}: not valid JSON: {error}") from error
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not UTF-8 text: {error}") from error


def read_predictions(path: Path) -> dict | None:
    """The normalised hourly document, or None when the file does not exist."""
    if not path.is_file():
        return None
    try:
        return board_data.normalise_predictions(read_json(path), str(path))
    except BoardInputError as error:
        raise UserError(str(error)) from error


def read_pool_history(
    warehouse: Path, history_days: int
) -> tuple[pd.DataFrame, board_data.PoolHistory] | None:
    """(latest state per pool, daily history of the last `history_days` days)
    from the warehouse, or None when it or the daily table is absent. The
    history comes as plain arrays with an integer pool index (a DataFrame of
    string ids peaked at 2.1 GB for 20k pools x 365 days, this at ~0.5 GB)."""
    import duckdb

    con = _open_warehouse_table(warehouse, HISTORY_TABLE)
    if con is None:
        return None
    recent = f"""
        select * from {HISTORY_TABLE}
        where snapshot_date > (select max(snapshot_date) from {HISTORY_TABLE}) - ?::integer
    """
    try:
        latest = _latest_state(con)
        pool_ids = [
            row[0]
            for row in con.execute(
                f"select distinct pool_id from ({recent}) order by pool_id", [history_days]
            ).fetchall()
        ]
        # the pool index by a join on the few distinct ids (a window over every
        # row would sort them all inside DuckDB); numpy orders the rows later
        columns = con.execute(
            f"""
            with
            recent as ({recent}),
            ids as (
                select
                    pool_id,
                    (row_number() over (order by pool_id) - 1)::integer as pool_index
                from (select distinct pool_id from recent)
            )
            select
                ids.pool_index,
                (recent.snapshot_date - date '1970-01-01')::integer as day,
                recent.apy::double as apy,
                recent.tvl_usd::double as tvl_usd
            from recent
            inner join ids on recent.pool_id = ids.pool_id
            """,
            [history_days],
        ).fetchnumpy()
    except duckdb.Error as error:
        raise UserError(f"{warehouse}: cannot read {HISTORY_TABLE}: {error}") from error
    finally:
        con.close()

    def plain(values: Any, dtype: str) -> np.ndarray:
        if np.ma.isMaskedArray(values):  # DuckDB hands columns with nulls as masked arrays
            return np.ma.filled(values.astype(dtype), np.nan)
        return np.asarray(values, dtype=dtype)

    history = board_data.PoolHistory(
        pool_ids=pool_ids,
        pool_index=np.asarray(columns["pool_index"], dtype=np.int32),
        day=np.asarray(columns["day"], dtype=np.int32),
        apy=plain(columns["apy"], "float64"),
        tvl_usd=plain(columns["tvl_usd"], "float64"),
    )
    return latest, history


# The newest day's state per pool the table shows: (column in the daily
# table, name in the table). A warehouse built before a column existed lacks
# it: the board shows "–" there.
DAILY_STATE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("symbol", "symbol"),
    ("pool_meta", "pool_meta"),
    ("project", "project"),
    ("chain", "chain"),
    ("apy", "apy"),
    ("apy_base", "apy_base"),
    ("apy_reward", "apy_reward"),
    ("tvl_usd", "tvl_usd"),
    ("is_stablecoin", "is_stablecoin"),
    ("il_risk", "il_risk"),
    ("exposure", "exposure"),
)
# ... and from the latest_features mart (one row per pool, its newest day)
FEATURES_TABLE = "latest_features"
FEATURE_STATE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("apy_rolling_30d_mean", "apy_mean_30d"),
    ("apy_change_1d", "apy_change_1d"),
    ("apy_change_7d", "apy_change_7d"),
    ("apy_change_30d", "apy_change_30d"),
)


def _columns_of(con: Any, table: str) -> set[str]:
    return {
        row[0]
        for row in con.execute(
            "select column_name from information_schema.columns where table_name = ?", [table]
        ).fetchall()
    }


def _latest_state(con: Any) -> pd.DataFrame:
    """One row per pool: its newest day's values in the daily table, with the
    30-day mean and the APY changes of latest_features when the mart is built."""
    present = _columns_of(con, HISTORY_TABLE)
    picked = ",\n".join(
        f"arg_max({column}, snapshot_date) as {name}" if column in present else f"null as {name}"
        for column, name in DAILY_STATE_COLUMNS
    )
    latest = con.execute(
        f"""
        select pool_id, {picked}, strftime(max(snapshot_date), '%Y-%m-%d') as last_day
        from {HISTORY_TABLE}
        group by pool_id
        """
    ).df()
    features = _columns_of(con, FEATURES_TABLE)
    wanted = [(c, n) for c, n in FEATURE_STATE_COLUMNS if c in features]
    if "pool_id" in features and wanted:
        extra = con.execute(
            "select pool_id, "
            + ", ".join(f"{column}::double as {name}" for column, name in wanted)
            + f" from {FEATURES_TABLE}"
        ).df()
        latest = latest.merge(extra, on="pool_id", how="left")
    for _, name in FEATURE_STATE_COLUMNS:
        if name not in latest.columns:
            latest[name] = np.nan
    return latest


def backtest_track_record(run_dir: Path) -> pd.DataFrame | None:
    """The run's backtest predictions as track-record rows (source 'backtest'),
    binned as the backtest binned them; None when the run has none."""
    path = run_dir / BACKTEST_FILE
    if not path.is_file():
        return None
    metadata_path = run_dir / contracts.MODEL_METADATA_FILE
    metadata = read_json(metadata_path) if metadata_path.is_file() else {}
    cutpoints = metadata.get("confidence_cutpoints")
    # a list of ascending cut-points (two for Low / Medium / High; a run that
    # serves fewer words stores fewer): the shared bin function reads them
    if not (
        isinstance(cutpoints, list)
        and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in cutpoints)
    ):
        raise UserError(
            f"{metadata_path}: no confidence_cutpoints (a list of numbers): cannot bin {path.name}"
        )
    try:
        frame = pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types for a bad file
        raise UserError(f"{path}: not a readable parquet file: {error}") from error
    label = contracts.LABEL_COLUMN
    missing = [c for c in ("pool_id", "snapshot_date", "p_keep", label) if c not in frame.columns]
    if missing:
        raise UserError(f"{path}: lacks columns {missing}")
    p_keep = pd.to_numeric(frame["p_keep"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(p_keep)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise UserError(
            f"{path}: row {first} (pool {board_data.shown(frame['pool_id'].iloc[first])}) has "
            f"p_keep = {board_data.shown(frame['p_keep'].iloc[first])}; {int(bad.sum())} such rows"
        )
    rows = pd.DataFrame(
        {
            "pool_id": frame["pool_id"].astype(str),
            "as_of": pd.to_datetime(frame["snapshot_date"]).dt.strftime("%Y-%m-%d"),
            "p_keep": p_keep,
            "binned_confidence": _binned(frame, p_keep, cutpoints, metadata_path),
            "label": pd.to_numeric(frame[label], errors="coerce").astype("Float64"),
            "source": "backtest",
        }
    )
    try:
        return board_data.check_track_record(rows, str(path))
    except BoardInputError as error:
        raise UserError(str(error)) from error


def _binned(
    frame: pd.DataFrame, p_keep: np.ndarray, cutpoints: list, metadata_path: Path
) -> np.ndarray:
    """The backtest's own bins (each day by its month's refit's levels, as the
    Lambda bins an hour); a run written before they were stored: the run's
    cut-points."""
    if "binned_confidence" in frame.columns:
        return frame["binned_confidence"].to_numpy()
    try:
        return board_data.label_binned_confidence(p_keep, cutpoints)
    except (IndexError, TypeError, ValueError) as error:
        raise UserError(
            f"{metadata_path}: confidence_cutpoints {cutpoints!r} cannot bin: {error}"
        ) from error


def _open_warehouse_table(warehouse: Path, table: str) -> Any:
    """A read-only connection (TimeZone=UTC) to the warehouse when it holds
    `table`; None when the warehouse or the table is absent. The caller closes it."""
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
            "select count(*) from information_schema.tables where table_name = ?", [table]
        ).fetchone()[0]
    except duckdb.Error as error:
        con.close()
        raise UserError(f"{warehouse}: cannot read {table}: {error}") from error
    if not exists:
        con.close()
        return None
    return con


OUTCOMES_TABLE = "prediction_outcomes"


def ledger_track_record(warehouse: Path) -> pd.DataFrame | None:
    """The ledger mart `prediction_outcomes` as track-record rows (live: as of
    the scoring hour; backtest: as of the feature day), the bin the one SQL
    rule gives; None when the warehouse or the mart is absent or empty."""
    import duckdb

    con = _open_warehouse_table(warehouse, OUTCOMES_TABLE)
    if con is None:
        return None
    try:
        rows = con.execute(
            f"""
            select
                pool_id,
                case
                    when source = 'live' then scored_hour
                    else strftime(feature_date, '%Y-%m-%d')
                end as as_of,
                p_keep,
                binned_confidence,
                is_apy_kept as label,
                source
            from {OUTCOMES_TABLE}
            order by source, as_of, pool_id
            """
        ).df()
    except duckdb.Error as error:
        raise UserError(f"{warehouse}: cannot read {OUTCOMES_TABLE}: {error}") from error
    finally:
        con.close()
    if not len(rows):
        return None
    rows["label"] = rows["label"].astype("Float64")
    try:
        return board_data.check_track_record(rows, f"{warehouse}:{OUTCOMES_TABLE}")
    except BoardInputError as error:
        raise UserError(str(error)) from error


def track_record_rows(paths: ProjectPaths, run_dir: Path | None) -> pd.DataFrame | None:
    """The track record: rows of board_data.TRACK_RECORD_COLUMNS, or None. The
    adapter seam: the prediction ledger's mart `prediction_outcomes` (sources
    'live' and 'backtest', kept apart) when it has rows; else the run
    folder's backtest_predictions.parquet (a board before any ledger)."""
    ledger_rows = ledger_track_record(paths.warehouse)
    if ledger_rows is not None:
        return ledger_rows
    parts = []
    if run_dir is not None:
        backtest = backtest_track_record(run_dir)
        if backtest is not None:
            parts.append(backtest)
    if not parts:
        return None
    return pd.concat(parts, ignore_index=True)


def _fallback_health(predictions: dict | None) -> tuple[dict | None, str | None]:
    if predictions is not None and predictions.get("health") is not None:
        return predictions["health"], "predictions document"
    return None, None


def read_health(predictions: dict | None, monitoring: Path) -> tuple[dict | None, str | None]:
    """(health document, where it came from): the newest
    monitoring/<hour>.json (its health, and its drift table, shares, class
    mix and the features' age), else the predictions' `health` block, else
    (None, None)."""
    newest = sorted(monitoring.glob("*.json")) if monitoring.is_dir() else []
    if not newest:
        return _fallback_health(predictions)
    document = read_json(newest[-1])
    if not isinstance(document, dict):
        raise UserError(f"{newest[-1]}: expected a JSON object, got {type(document).__name__}")
    block = document.get("health")
    if not isinstance(block, dict):
        return document, f"monitoring document {newest[-1].name}"
    shown = {
        **block,
        **{
            key: document[key]
            for key in ("event_time", "features_age_hours", "shares", "class_mix", "drift")
            if key in document
        },
    }
    return shown, f"monitoring document {newest[-1].name}"


def resolve_track_run(paths: ProjectPaths, run: str | Path | None) -> Path | None:
    """The run folder (path, run id or 'latest'); None when not given or when
    'latest' does not exist yet (a board before the first training)."""
    if run is None:
        return None
    candidate = Path(run)
    if not candidate.is_dir():
        candidate = paths.runs / str(run)
    if candidate.is_dir():
        return candidate.resolve()
    if str(run) == "latest":
        return None
    raise UserError(f"no training run at {candidate}")


def data_provenance(document: dict | None, run_dir: Path | None) -> Any:
    """What the model was trained on (the run metadata's `data_provenance`,
    shown in the banner): the predictions document's own when it carries one,
    else the run folder's when that run made the predictions (or there are
    none yet); None when neither says."""
    if document is not None and document["meta"].get("data_provenance") is not None:
        return document["meta"]["data_provenance"]
    if run_dir is None or not (run_dir / contracts.MODEL_METADATA_FILE).is_file():
        return None
    metadata = read_json(run_dir / contracts.MODEL_METADATA_FILE)
    if not isinstance(metadata, dict):
        return None
    model_id = document["meta"].get("model_id") if document is not None else None
    if model_id is not None and metadata.get("model_id") not in (None, model_id):
        return None
    return metadata.get("data_provenance")


# --------------------------------------------------------------------------- writer


def _data_script(name: str, payload: Any) -> str:
    """One data file: JSON (strict, ASCII) handed to the page by name."""
    text = json.dumps(payload, separators=(",", ":"), allow_nan=False, ensure_ascii=True)
    return f'BOARD.receive("{name}",{text});\n'


@dataclass
class BuiltBoard:
    out: Path
    pools: int
    shards: int
    bytes_written: int
    seconds: float
    sources: dict[str, Any] = field(default_factory=dict)

    @property
    def index(self) -> Path:
        return self.out / "index.html"

    def describe(self) -> str:
        missing = [name for name, value in self.sources.items() if not value]
        return (
            f"board: {self.index}\n"
            f"  {self.pools} pools in {self.shards} pool-data shards, "
            f"{self.bytes_written / 1e6:.1f} MB, {self.seconds:.1f} s"
            + (f"\n  no data yet for: {', '.join(missing)}" if missing else "")
        )


def _check_replaceable(out: Path) -> None:
    """Only a board (or an empty folder) is ever replaced."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder: choose another --out")
    if out.is_dir() and not (out / MARKER).is_file() and any(out.iterdir()):
        raise UserError(
            f"{out} exists and is not a runway board (no {MARKER}): "
            "choose an empty or new --out folder"
        )


def _replace_folder(built: Path, out: Path) -> None:
    """Swap the finished site in (two renames: a reader sees the old or the new board)."""
    _check_replaceable(out)
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(built, out)
        shutil.rmtree(old)
    else:
        os.replace(built, out)


def build_board(
    paths: ProjectPaths,
    out: Path | None = None,
    predictions: Path | None = None,
    run: str | Path | None = "latest",
    monitoring: Path | None = None,
    history_days: int = DEFAULT_HISTORY_DAYS,
    pools_per_shard: int = DEFAULT_POOLS_PER_SHARD,
    served_per_pool: int = DEFAULT_SERVED_PER_POOL,
) -> BuiltBoard:
    """Read the inputs, shape them and write the site; replace `out` whole."""
    for name, value in (
        ("history days", history_days),
        ("pools per shard", pools_per_shard),
        ("served predictions per pool", served_per_pool),
    ):
        if value < 1:
            raise UserError(f"{name} must be at least 1, got {value}")
    started = time.perf_counter()
    out = Path(out or default_out(paths)).expanduser().resolve()
    # a path given on purpose must exist; the defaults may be absent ("no data yet")
    if predictions is not None and not Path(predictions).is_file():
        raise UserError(f"no predictions document at {predictions}")
    if monitoring is not None and not Path(monitoring).is_dir():
        raise UserError(f"no monitoring folder at {monitoring}")
    predictions_path = Path(predictions or default_predictions(paths))
    monitoring = Path(monitoring or default_monitoring(paths))
    _check_replaceable(out)
    run_dir = resolve_track_run(paths, run)

    document = read_predictions(predictions_path)
    warehouse = read_pool_history(paths.warehouse, history_days)
    latest, history = warehouse if warehouse is not None else (None, None)
    if document is not None:
        records = document["records"]
    elif latest is not None:
        # no predictions yet: the warehouse's pools, with empty prediction fields
        records = board_data.normalise_predictions(
            {"schema_version": 1, "predictions": [{"pool_id": p} for p in latest["pool_id"]]},
            str(paths.warehouse),
        )["records"]
    else:
        records = []
    track = track_record_rows(paths, run_dir)
    log(
        "board: predictions "
        + (f"{len(document['records']):,} pools" if document else f"absent ({predictions_path})")
        + ", history "
        + (f"{len(history):,} pool-days" if history is not None else "absent")
        + ", track record "
        + (
            f"{len(track):,} rows ({', '.join(sorted(track['source'].unique()))})"
            if track is not None
            else f"absent (no {BACKTEST_FILE} in the run, no ledger)"
        )
    )
    health, health_source = read_health(document, monitoring)

    track_summary = board_data.summarise_track_record(track)
    legend = board_data.confidence_legend(records, track_summary)
    table = board_data.table_payload(records, latest, legend)
    shards = board_data.shard_count(len(records), pools_per_shard)
    sources = {
        "predictions": predictions_path.name if document is not None else None,
        "history": HISTORY_TABLE if history is not None else None,
        "track_record": sorted(track["source"].unique().tolist()) if track is not None else None,
        "health": health_source,
    }
    meta = {
        "schema_version": board_data.BOARD_SCHEMA_VERSION,
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "predictions": document["meta"] if document is not None else None,
        "pools": len(records),
        "shards": shards,
        "history_days": history_days,
        "served_per_pool": served_per_pool,
        "flag_bits": dict(board_data.FLAG_BITS),
        "trait_bits": dict(board_data.TRAIT_BITS),
        "provenance": board_data.describe_provenance(data_provenance(document, run_dir)),
        "stale_after_hours": contracts.FEATURES_STALE_AFTER_HOURS,
        "sources": sources,
    }
    track_payload = {
        "schema_version": board_data.BOARD_SCHEMA_VERSION,
        "track_record": track_summary,
        "health": health,
        "health_source": health_source,
    }

    out.parent.mkdir(parents=True, exist_ok=True)
    building = out.with_name(f".{out.name}.building-{os.getpid()}")
    if building.exists():
        shutil.rmtree(building)
    try:
        written, written_shards = _write_site(
            building, meta, table, track_payload, records, history, track, shards, served_per_pool
        )
        _replace_folder(building, out)
    finally:
        if building.exists():
            shutil.rmtree(building)
    built = BuiltBoard(
        out=out,
        pools=len(records),
        shards=written_shards,
        bytes_written=written,
        seconds=time.perf_counter() - started,
        sources=sources,
    )
    log(f"board: wrote {built.index} ({built.bytes_written / 1e6:.1f} MB of data)")
    return built


def _write_site(
    building: Path,
    meta: dict,
    table: dict,
    track_payload: dict,
    records: list[dict],
    history: board_data.PoolHistory | None,
    track: pd.DataFrame | None,
    shards: int,
    served_per_pool: int,
) -> tuple[int, int]:
    """The pages, assets and data files into `building`: (bytes of data, shards)."""
    shutil.copytree(SITE_ASSETS, building, ignore=shutil.ignore_patterns("__pycache__"))
    (building / MARKER).write_text("written by apy-runway board; replaced whole on rebuild\n")
    data = building / "data"
    (data / "pools").mkdir(parents=True)
    written = 0
    for name, payload in (("meta", meta), ("table", table), ("track", track_payload)):
        text = _data_script(name, payload)
        (data / f"{name}.js").write_text(text)
        written += len(text)
    empty = set(range(shards))  # written as {} below: a pool page never asks for a missing file
    shard_data = board_data.pool_shards(
        records,
        history,
        track,
        table["columns"],
        table["projects"],
        table["chains"],
        shards,
        served_per_pool,
    )
    for done, (shard, pools) in enumerate(shard_data, 1):
        text = _data_script(f"pools/{shard}", pools)
        (data / "pools" / f"{shard}.js").write_text(text)
        written += len(text)
        empty.discard(shard)
        if done % 100 == 0:
            log(f"board: {done} pool shards written of at most {shards}")
    for shard in sorted(empty):
        (data / "pools" / f"{shard}.js").write_text(_data_script(f"pools/{shard}", {}))
    return written, shards
