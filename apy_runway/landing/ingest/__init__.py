"""`apy-runway ingest`: land input files in the append-only raw store.

Each input file is validated alone, its good rows appended to the raw store
(store.py: parts, manifest, superseding, compaction, recovery), its bad rows
to the quarantine with a reason (sql/*.sql; reasons in docs/data.md). Files
are read by readers.py; a /pools reply becomes one hourly snapshot in
pools_snapshot.py (shared with collect). This module orders the steps. May
import foundation, inference and libraries.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import duckdb

from apy_runway.foundation.console import UserError, log
from apy_runway.foundation.defaults import DEFAULT_MEMORY_LIMIT
from apy_runway.foundation.lock import locked
from apy_runway.foundation.paths import ProjectPaths
from apy_runway.landing.ingest.readers import (
    JSON_FILES_PER_SCAN,
    InputFile,
    Source,
    check_json_files,
    expand_inputs,
    first_line,
    ident,
    load_charts,
    load_pools_metadata,
    load_pools_snapshots,
    parse_sql,
    read_pools_snapshot,
    sql_str,
    tabular_source,
)
from apy_runway.landing.ingest.refused import is_set_aside, set_aside
from apy_runway.landing.ingest.store import LandedFile, RawStore, replace_store, sql_list
from inference.contracts import (
    POOLS_METADATA_FIELDS,
    RAW_APY_RANGE,
    RAW_COLUMNS,
    RAW_CONTRACT,
    RAW_MAX_FUTURE_DAYS,
    RAW_MIN_TIMESTAMP,
    RAW_TVL_RANGE,
    TIMESTAMP_UNITS,
)

CONTRACT = list(RAW_CONTRACT)

# Quarantine reasons of rows another row of the same pool and hour replaced:
# ordinary (a re-ingest, an overlapping back-fill), never a fault of the input.
REPLACED_ROW_REASONS = ("exact_duplicate", "superseded_in_hour", "superseded", "outranked")
# Every quarantine reason, in one place (the per-row reasons in the order
# sql/flag_rows.sql checks them, then the ones that decide between rows).
REASONS = (
    "epoch_timestamp_without_unit",
    "unparseable_timestamp",
    "timestamp_out_of_range",
    "missing_pool_id",
    "missing_apy",
    "non_numeric_apy",
    "non_finite_apy",
    "apy_out_of_range",
    "non_numeric_tvl",
    "negative_tvl",
    "tvl_out_of_range",
    *REPLACED_ROW_REASONS,
)

__all__ = [
    "CONTRACT",
    "POOLS_METADATA_FIELDS",
    "REASONS",
    "REPLACED_ROW_REASONS",
    "IngestResult",
    "ingest",
]


@dataclass
class IngestResult:
    """What one ingest landed: totals over the files it landed (rows in =
    staged + quarantined, after every superseding of this run), the rows of
    files landed before it that it superseded, and the store's totals."""

    rows_in: int
    rows_staged: int
    rows_quarantined: int
    by_reason: dict[str, int] = field(default_factory=dict)
    pools: int = 0
    seconds: float = 0.0
    files_landed: int = 0
    files_unchanged: int = 0
    earlier_rows_superseded: int = 0
    earliest_date: str | None = None  # the earliest UTC day of the landed rows
    landed: list[LandedFile] = field(default_factory=list)
    store_rows_in: int = 0
    store_rows_staged: int = 0
    store_rows_quarantined: int = 0
    # landing files refused and set aside (ingest/refused.py): (path under landing/, why)
    set_aside: list[tuple[str, str]] = field(default_factory=list)


def landing_inputs(paths: ProjectPaths) -> list[Path]:
    """What `ingest` lands when no input is named: data/landing/ (generated
    snapshots, collected /pools snapshots, fetched /chart files)."""
    if not has_landing(paths):
        raise UserError(
            f"no input given and {paths.landing} holds no snapshots: run `apy-runway "
            "generate`, `fetch` or `collect`, or pass CSV / parquet / JSON files"
        )
    return [paths.landing]


def has_landing(paths: ProjectPaths) -> bool:
    """Whether data/landing/ holds a file to offer (set-aside files are not)."""
    return paths.landing.exists() and any(
        p.is_file() and not p.name.startswith(".") and not is_set_aside(paths, p)
        for p in paths.landing.rglob("*")
    )


def pools_metadata_candidates(paths: ProjectPaths) -> list[Path]:
    """The metadata for /chart rows when ingesting the landing folder: fetch's
    pools.json and the collected /pools snapshots, newest first."""
    candidates = [paths.landing / "defillama" / "pools.json"]
    if paths.landed_pools.exists():
        candidates += sorted(paths.landed_pools.glob("*.json.gz"))[-24:]
    existing = [c for c in candidates if c.is_file()]
    return sorted(existing, key=lambda p: p.stat().st_mtime_ns, reverse=True)


def _load_default_metadata(con: duckdb.DuckDBPyConnection, paths: ProjectPaths) -> None:
    """The landing folder's metadata: the newest candidate that reads (a
    refused snapshot is no wall: the next newest is taken)."""
    problems = []
    for candidate in pools_metadata_candidates(paths):
        try:
            load_pools_metadata(con, candidate)
            return
        except UserError as error:
            problems.append(str(error))
    load_pools_metadata(con, None)
    if problems:
        log(f"warning: no readable /pools metadata for /chart rows: {problems[0]}")


# --------------------------------------------------------------------------- classification SQL

SQL_DIR = Path(__file__).with_name("sql")
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


@cache
def _sql_text(name: str) -> str:
    return (SQL_DIR / f"{name}.sql").read_text()


def sql(name: str, **params: str) -> str:
    """sql/<name>.sql with its {placeholders} filled (all must be given)."""
    text = _sql_text(name)
    missing = sorted(set(_PLACEHOLDER.findall(text)) - set(params))
    if missing:
        raise ValueError(f"sql/{name}.sql needs {missing}")
    return _PLACEHOLDER.sub(lambda match: params[match.group(1)], text)


@dataclass(frozen=True)
class Plausible:
    """The row rules of one ingest: the unit of epoch numbers (None: refused)
    and the bounds of contracts (the latest time is the ingest's + a day)."""

    timestamp_unit: str | None
    max_timestamp: datetime

    @classmethod
    def at(cls, now: datetime, timestamp_unit: str | None = None) -> Plausible:
        if timestamp_unit is not None and timestamp_unit not in TIMESTAMP_UNITS:
            raise UserError(
                f"--timestamp-unit {timestamp_unit!r}: expected one of {', '.join(TIMESTAMP_UNITS)}"
            )
        return cls(timestamp_unit, now + timedelta(days=RAW_MAX_FUTURE_DAYS))


def _flagged_sql(source: Source, rules: Plausible) -> str:
    return sql(
        "flag_rows",
        parsed_source=parse_sql(source, rules.timestamp_unit),
        min_timestamp=f"cast({sql_str(RAW_MIN_TIMESTAMP)} as timestamptz)",
        max_timestamp=f"cast({sql_str(rules.max_timestamp.isoformat())} as timestamptz)",
        apy_min=repr(float(RAW_APY_RANGE[0])),
        apy_max=repr(float(RAW_APY_RANGE[1])),
        tvl_max=repr(float(RAW_TVL_RANGE[1])),
    )


def _keys_sql(source: Source, rules: Plausible) -> str:
    return sql(
        "insert_row_keys",
        flagged_source=_flagged_sql(source, rules),
        parsed_values=", ".join(f"parsed_{c}" for c in RAW_COLUMNS),
    )


def _staged_sql() -> str:
    return sql(
        "staged_rows",
        contract_columns=", ".join(
            f"cast(parsed_rows.parsed_{name} as {kind}) as {ident(name)}" for name, kind in CONTRACT
        ),
    )


def _quarantine_sql(ingested_at: datetime) -> str:
    return sql(
        "quarantined_rows",
        text_columns=", ".join(f"input_rows.{ident(c)}" for c in RAW_COLUMNS),
        ingested_at=f"cast({sql_str(ingested_at.isoformat())} as timestamptz)",
    )


# --------------------------------------------------------------------------- ingest


def _units(files: list[InputFile]) -> list[list[InputFile]]:
    """Landing units: one per CSV / parquet / /pools file; /chart files in
    batches (each file keeps its own landing order inside the unit)."""
    units: list[list[InputFile]] = []
    for file in files:
        if (
            file.kind == "chart"
            and units
            and units[-1][0].kind == "chart"
            and len(units[-1]) < JSON_FILES_PER_SCAN
        ):
            units[-1].append(file)
        else:
            units.append([file])
    return units


def _check_files(con: duckdb.DuckDBPyConnection, files: list[InputFile]) -> None:
    """File-level checks of every file before anything lands: a missing or
    malformed input stops the whole ingest with nothing written."""
    charts = [f for f in files if f.kind == "chart"]
    if charts:
        check_json_files(con, charts, "/chart")
    for file in files:
        if file.kind in ("csv", "parquet"):
            tabular_source(con, file)
        elif file.kind == "pools":
            read_pools_snapshot(file.path)


def _screen_landing(
    con: duckdb.DuckDBPyConnection,
    paths: ProjectPaths,
    files: list[InputFile],
    aside: list[tuple[str, str]],
) -> list[InputFile]:
    """The landing folder's file-level checks: a file that fails them is set
    aside (appended to `aside`) and the others go on."""
    try:
        _check_files(con, files)
        return files
    except duckdb.OutOfMemoryException:
        raise
    except UserError:
        pass  # find which files fail, one by one
    kept = []
    for file in files:
        try:
            _check_files(con, [file])
        except duckdb.OutOfMemoryException:
            raise
        except UserError as error:
            aside.append((set_aside(paths, file.path, str(error)), str(error)))
            continue
        kept.append(file)
    return kept


@locked("ingest")
def ingest(
    inputs: list[Path],
    paths: ProjectPaths,
    pools_json: Path | None = None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    replace: bool = False,
    timestamp_unit: str | None = None,
    no_pool_metadata: bool = False,
) -> IngestResult:
    """Land `inputs` (default: data/landing/) in the raw store.

    Files already landed with the same sha256 are skipped. A missing or
    malformed input raises UserError before anything is written; each landed
    unit is committed on its own (manifest written last), so an interruption
    leaves the store as it was after the last committed file. Of the landing
    folder (no inputs named), a file ingest refuses is set aside instead
    (ingest/refused.py) and the others land.
    """
    started = time.perf_counter()
    paths.ensure()
    explicit = bool(inputs)
    files = expand_inputs(list(inputs) or landing_inputs(paths))
    if not explicit:
        files = [f for f in files if not is_set_aside(paths, f.path)]
    if replace:
        replace_store(paths)
    ingested_at = datetime.now(UTC)
    run = _Run(paths, explicit, Plausible.at(ingested_at, timestamp_unit), ingested_at)
    run.no_pool_metadata = no_pool_metadata
    work_dir = paths.data / ".ingest_work"
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    con = _work_connection(work_dir, memory_limit)
    try:
        store = RawStore.open(paths, con)
        todo, facts = _plan(con, store, files, run, pools_json)
        _land_all(con, store, todo, facts, run, work_dir)
        if run.skipped:
            store.save()  # mtimes of touched-but-unchanged files
    except duckdb.OutOfMemoryException as error:
        raise UserError(
            f"DuckDB ran out of memory within --memory-limit {memory_limit} "
            f"({first_line(error)}); nothing of that file was written "
            "(files landed before it stay landed). Raise --memory-limit or split the file"
        ) from None
    finally:
        con.close()
        shutil.rmtree(work_dir, ignore_errors=True)
    refused = [e for e in run.landed if not e.is_landed]
    if not explicit:  # set aside: the loop goes on with the other files
        for entry in refused:
            why = _refusal(entry)
            run.aside.append((set_aside(paths, paths.home / entry.name, why), why))
        refused = []
    result = _result(store, run, time.perf_counter() - started)
    _report(result, paths)
    if refused:
        raise UserError(
            f"refused {len(refused):,} file(s) with no row to stage (nothing of them was "
            "appended; recorded in the manifest as refused): "
            + "; ".join(_refusal(entry) for entry in refused)
        )
    return result


@dataclass
class _Run:
    """What one ingest carries from step to step."""

    paths: ProjectPaths
    explicit: bool  # inputs were named (else: the landing folder)
    rules: Plausible
    ingested_at: datetime
    landed: list[LandedFile] = field(default_factory=list)
    pools: set[str] = field(default_factory=set)
    earlier_superseded: int = 0
    skipped: int = 0
    aside: list[tuple[str, str]] = field(default_factory=list)
    no_pool_metadata: bool = False  # /chart files named without --pools-json are intended


def _work_connection(work_dir: Path, memory_limit: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(work_dir / "work.duckdb"))
    con.execute("set TimeZone = 'UTC'")
    con.execute(f"set memory_limit = {sql_str(memory_limit)}")
    con.execute(f"set temp_directory = {sql_str(str(work_dir / 'spill'))}")
    con.execute("set preserve_insertion_order = false")
    return con


def _plan(
    con: duckdb.DuckDBPyConnection,
    store: RawStore,
    files: list[InputFile],
    run: _Run,
    pools_json: Path | None,
) -> tuple[list[InputFile], dict[Path, dict]]:
    """The files to land (new or changed), numbered in landing order, their
    facts, the /chart metadata loaded and every file checked."""
    facts = dict(store.changed_files([f.path for f in files]))
    todo = [f for f in files if f.path in facts]
    run.skipped = len(files) - len(todo)
    log(
        f"ingest: {len(files):,} input file(s): {len(todo):,} new or changed, "
        f"{run.skipped:,} already landed"
    )
    charts = any(f.kind == "chart" for f in todo)
    # the landing folder's metadata only fills /chart rows: read it only for them
    if run.explicit or pools_json is not None:
        load_pools_metadata(con, pools_json)
    elif charts:
        _load_default_metadata(con, run.paths)
    else:
        load_pools_metadata(con, None)
    if run.explicit:
        _check_files(con, todo)
        if pools_json is None and charts and not run.no_pool_metadata:
            first = next(f for f in todo if f.kind == "chart")
            raise UserError(
                f"{first.path} (and any other /chart file named) carries no chain, project or "
                "symbol: pass --pools-json with a saved /pools response or a collected "
                "snapshot to fill them, or --no-pool-metadata if null chain and project are "
                "intended; nothing was landed"
            )
    else:  # a refused landing file is set aside, never a wall for the others
        todo = _screen_landing(con, run.paths, todo, run.aside)
    # landing order: the store's next numbers, in input order
    todo = [dataclasses.replace(f, index=store.committed + 1 + i) for i, f in enumerate(todo)]
    return todo, {f.path: facts[f.path] for f in todo}


def _land_all(
    con: duckdb.DuckDBPyConnection,
    store: RawStore,
    todo: list[InputFile],
    facts: dict[Path, dict],
    run: _Run,
    work_dir: Path,
) -> None:
    for number, unit in enumerate(_units(todo), start=1):
        entries, unit_pools, superseded = _land_unit(
            con, store, unit, facts, run.ingested_at, work_dir, run.rules
        )
        run.landed += entries
        run.pools |= unit_pools
        run.earlier_superseded += superseded
        if len(todo) > 1 and (number % 50 == 0 or unit[-1] is todo[-1]):
            log(f"  landed {unit[-1].index - todo[0].index + 1:,}/{len(todo):,} file(s)")


def _result(store: RawStore, run: _Run, seconds: float) -> IngestResult:
    """The run's totals and the store's, their accounting checked."""
    orders = {e.landing_order for e in run.landed if e.is_landed}
    mine = store.totals(orders)
    everything = store.totals()
    result = IngestResult(
        rows_in=mine.rows_in,
        rows_staged=mine.rows_staged,
        rows_quarantined=mine.rows_quarantined,
        by_reason={reason: mine.by_reason.get(reason, 0) for reason in REASONS},
        pools=len(run.pools),
        seconds=seconds,
        files_landed=len(orders),
        files_unchanged=run.skipped,
        earlier_rows_superseded=run.earlier_superseded,
        earliest_date=min(
            (e.snapshot_date_min for e in run.landed if e.snapshot_date_min), default=None
        ),
        landed=[store.entries[o] for o in sorted(orders)],
        store_rows_in=everything.rows_in,
        store_rows_staged=everything.rows_staged,
        store_rows_quarantined=everything.rows_quarantined,
        set_aside=run.aside,
    )
    if result.rows_in != result.rows_staged + result.rows_quarantined or (
        everything.rows_in != everything.rows_staged + everything.rows_quarantined
    ):
        raise AssertionError(f"accounting broken: {result}")
    return result


def _refusal(entry: LandedFile) -> str:
    if not entry.rows_in:
        return f"{entry.name}: no data rows"
    reasons = ", ".join(f"{reason} {count:,}" for reason, count in sorted(entry.by_reason.items()))
    hint = (
        " (pass --timestamp-unit s|ms|us for epoch numbers)"
        if "epoch_timestamp_without_unit" in entry.by_reason
        else ""
    )
    return f"{entry.name}: all {entry.rows_in:,} rows quarantined: {reasons}{hint}"


def _land_unit(
    con: duckdb.DuckDBPyConnection,
    store: RawStore,
    unit: list[InputFile],
    facts: dict[Path, dict],
    ingested_at: datetime,
    work_dir: Path,
    rules: Plausible,
) -> tuple[list[LandedFile], set[str], int]:
    """Validate one unit, write its rows and its quarantine, commit it."""
    from apy_runway.landing.ingest.store import file_id

    source = _unit_source(con, unit)
    timer = _StepTimer(source.name)
    verdict = _classify(con, store, unit, source, rules, timer)
    unit_id = file_id(unit[-1].index)
    staged_dir = work_dir / f"staged_{unit_id}"
    rows_staged, new_files = _stage(con, staged_dir)
    timer.step(f"wrote {rows_staged:,} staged rows")
    days = sorted({p.parent.name.split("=", 1)[1] for p in new_files})
    unit_pools = _pools_of(con, new_files)
    losers_by_file = _losers(con, store, days, new_files)
    timer.step("found the stored rows it supersedes")
    quarantine_files = _write_quarantine(
        con, store, unit, source, unit_id, work_dir, ingested_at, losers_by_file
    )
    entries = _entries(con, unit, facts, ingested_at, verdict, unit_id, new_files)
    if sum(e.rows_staged for e in entries) != rows_staged:
        raise AssertionError(
            f"accounting broken in {source.name}: staged {rows_staged} != "
            f"{sum(e.rows_staged for e in entries)}"
        )
    timer.step("wrote the quarantine and the accounting")
    store.commit_unit(
        con, entries, staged_dir, quarantine_files, losers_by_file, bool(losers_by_file)
    )
    shutil.rmtree(staged_dir, ignore_errors=True)
    timer.step("committed")
    return entries, unit_pools, sum(losers_by_file.values())


def _unit_source(con: duckdb.DuckDBPyConnection, unit: list[InputFile]) -> Source:
    kind = unit[0].kind
    if kind == "chart":
        return load_charts(con, unit)
    if kind == "pools":
        return load_pools_snapshots(con, unit)
    return tabular_source(con, unit[0], report=False)


@dataclass
class _Verdict:
    """A unit's per-file accounting: rows read, rejected rows by reason, and the
    files refused (no row to stage)."""

    rows_in: dict[int, int]
    reasons: dict[int, dict[str, int]]
    refused: set[int]


def _classify(
    con: duckdb.DuckDBPyConnection,
    store: RawStore,
    unit: list[InputFile],
    source: Source,
    rules: Plausible,
    timer: _StepTimer,
) -> _Verdict:
    """Parse and check the unit's rows (temp tables row_keys, verdicts and the
    view parsed_rows); a file with no row to stage is left out of them."""
    kind = unit[0].kind
    con.execute(f"create or replace temp view parsed_rows as ({_flagged_sql(source, rules)})")
    con.execute(sql("create_row_keys"))
    try:
        con.execute(_keys_sql(source, rules))
    except duckdb.OutOfMemoryException:  # reported once, by ingest()
        raise
    except duckdb.Error as error:
        raise UserError(f"cannot read {source.name}: {first_line(error)}") from None
    timer.rows = con.execute("select count(*) from row_keys").fetchone()[0]
    timer.step("read and parsed")
    _verdicts(con, store, kind)
    timer.step("checked duplicates and hours")
    rows_in = dict(con.execute("select file_index, count(*) from row_keys group by all").fetchall())
    reasons: dict[int, dict[str, int]] = {}
    for file_index, reason, count in con.execute(
        "select file_index, reason, count(*) from verdicts group by all"
    ).fetchall():
        reasons.setdefault(file_index, {})[reason] = count
    # a file with no row to stage is refused: nothing of it is appended (an
    # empty export must not pass for data), the manifest records it
    refused = {
        f.index
        for f in unit
        if rows_in.get(f.index, 0)
        - sum(n for why, n in reasons.get(f.index, {}).items() if why != "outranked")
        <= 0
    }
    if refused:
        kept = f"file_index not in ({', '.join(map(str, sorted(refused)))})"
        con.execute(f"delete from row_keys where not ({kept})")
        _verdicts(con, store, kind)
        con.execute(
            f"create or replace temp view parsed_rows as "
            f"select * from ({_flagged_sql(source, rules)}) where {kept}"
        )
    return _Verdict(rows_in, reasons, refused)


def _stage(con: duckdb.DuckDBPyConnection, staged_dir: Path) -> tuple[int, list[Path]]:
    """Write the unit's staged rows under staged_dir, one folder per UTC day."""
    rows_staged = con.execute(
        f"copy ({_staged_sql()}) to {sql_str(staged_dir)} "
        "(format parquet, compression zstd, partition_by (snapshot_date), "
        "filename_pattern 'part_{i}')"
    ).fetchone()[0]
    return rows_staged, sorted(staged_dir.glob("*/*.parquet")) if rows_staged else []


def _pools_of(con: duckdb.DuckDBPyConnection, files: list[Path]) -> set[str]:
    if not files:
        return set()
    return {
        row[0]
        for row in con.execute(
            f"select distinct pool from read_parquet({sql_list(files)})"
        ).fetchall()
    }


def _losers(
    con: duckdb.DuckDBPyConnection, store: RawStore, days: list[str], new_files: list[Path]
) -> dict[int, int]:
    """The stored rows this unit replaces (per pool and hour, the newest landing
    wins), in the temp table `losers`; returns their count per landing order."""
    stored = store.stored_files_in(days)
    if not stored:
        return {}
    con.execute(
        sql(
            "losers",
            stored_files=sql_list(stored),
            superseded_list=sql_str(store.paths.superseded_rows),
            new_files=sql_list(new_files),
        )
    )
    return dict(con.execute("select landing_order, count(*) from losers group by all").fetchall())


def _write_quarantine(
    con: duckdb.DuckDBPyConnection,
    store: RawStore,
    unit: list[InputFile],
    source: Source,
    unit_id: str,
    work_dir: Path,
    ingested_at: datetime,
    losers_by_file: dict[int, int],
) -> dict[str, Path]:
    """The unit's own bad rows and the stored rows it superseded, as parquet
    files under work_dir: {quarantine file name: written file}."""
    quarantine_files: dict[str, Path] = {}
    bad = con.execute("select count(*) from verdicts").fetchone()[0]
    if bad:
        bad_files = {
            row[0] for row in con.execute("select distinct file_index from verdicts").fetchall()
        }
        con.execute(
            "create or replace temp view input_rows as "
            + f"select * from ({source.text_sql}) "
            + f"where file_index in ({', '.join(map(str, sorted(bad_files)))})"
        )
        path = work_dir / f"{unit_id}.parquet"
        con.execute(
            f"copy ({_quarantine_sql(ingested_at)}) to {sql_str(path)} "
            "(format parquet, compression zstd)"
        )
        quarantine_files[f"{unit_id}.parquet"] = path
    if losers_by_file:
        names = {order: store.entries[order].name for order in losers_by_file}
        path = work_dir / f"{unit_id}-superseded.parquet"
        text = ", ".join(f"cast(losers.{ident(c)} as varchar) as {ident(c)}" for c in RAW_COLUMNS)
        source_file = (
            "case losers.landing_order "
            + " ".join(f"when {order} then {sql_str(name)}" for order, name in names.items())
            + " end"
        )
        con.execute(f"""
            copy (
                select {text}, cast(null as varchar) as extra_fields,
                    'superseded' as reason, {source_file} as source_file,
                    cast(null as bigint) as source_row, losers.landing_order,
                    cast({sql_str(ingested_at.isoformat())} as timestamptz) as ingested_at,
                    cast({unit[-1].index} as bigint) as superseded_by
                from losers order by losers.landing_order, losers.pool, losers.timestamp
            ) to {sql_str(path)} (format parquet, compression zstd)""")
        quarantine_files[f"{unit_id}-superseded.parquet"] = path
    return quarantine_files


def _entries(
    con: duckdb.DuckDBPyConnection,
    unit: list[InputFile],
    facts: dict[Path, dict],
    ingested_at: datetime,
    verdict: _Verdict,
    unit_id: str,
    new_files: list[Path],
) -> list[LandedFile]:
    """The unit's manifest lines, one per file."""
    day_range = (
        {
            row[0]: (str(row[1]), str(row[2]))
            for row in con.execute(
                f"select landing_order, min(snapshot_date), max(snapshot_date) "
                f"from read_parquet({sql_list(new_files)}, hive_partitioning = true) group by all"
            ).fetchall()
        }
        if new_files
        else {}
    )
    entries = []
    for file in unit:
        fact = facts[file.path]
        reasons = verdict.reasons.get(file.index, {})
        quarantined = sum(reasons.values())
        rows_in = verdict.rows_in.get(file.index, 0)
        first, last = day_range.get(file.index, (None, None))
        entries.append(
            LandedFile(
                landing_order=file.index,
                name=fact["name"],
                kind=file.kind,
                size=fact["size"],
                sha256=fact["sha256"],
                mtime_ns=fact["mtime_ns"],
                landed_at=ingested_at.isoformat(),
                rows_in=rows_in,
                rows_staged=rows_in - quarantined,
                rows_quarantined=quarantined,
                by_reason=dict(reasons),
                raw_file=unit_id if file.index in day_range else None,
                snapshot_date_min=first,
                snapshot_date_max=last,
                replaces=fact["replaces"],
                status="refused" if file.index in verdict.refused else "landed",
            )
        )
    return entries


def _verdicts(con: duckdb.DuckDBPyConnection, store: RawStore, kind: str) -> None:
    """The unit's rejected rows (sql/verdicts.sql) and, for /chart rows, those a
    stored snapshot row outranks in their pool and hour (sql/outranked.sql)."""
    con.execute(sql("verdicts"))
    if kind != "chart":
        return
    days = con.execute(
        "select distinct strftime(cast(parsed_timestamp as date), '%Y-%m-%d') "
        "from row_keys where row_reason is null"
    ).fetchall()
    stored = store.stored_files_in(sorted(day for (day,) in days))
    snapshots = [o for o, e in store.entries.items() if e.is_landed and e.kind != "chart"]
    if not stored or not snapshots:
        return
    con.execute(
        "create or replace temp table snapshot_files as "
        "select unnest(cast(? as bigint[])) as landing_order",
        [snapshots],
    )
    con.execute(
        sql(
            "outranked",
            stored_files=sql_list(stored),
            superseded_list=sql_str(store.paths.superseded_rows),
        )
    )


class _StepTimer:
    """Progress lines for the slow steps of a big landed unit (quiet for small
    ones, an hourly snapshot lands in a fraction of a second, and for steps
    done within a second)."""

    LOUD_FROM_ROWS = 1_000_000
    LOUD_FROM_SECONDS = 1.0

    def __init__(self, name: str):
        self.name, self.rows, self.last = name, 0, time.perf_counter()

    def step(self, what: str) -> None:
        now = time.perf_counter()
        if self.rows >= self.LOUD_FROM_ROWS and now - self.last >= self.LOUD_FROM_SECONDS:
            log(f"  {what} in {now - self.last:.1f} s ({self.rows:,} rows of {self.name})")
        self.last = now


def _report(result: IngestResult, paths: ProjectPaths) -> None:
    if not result.files_landed:
        log(
            f"nothing new to land: {result.files_unchanged:,} file(s) already landed; "
            f"store: {result.store_rows_staged:,} staged rows"
        )
        return
    for reason, count in result.by_reason.items():
        if count:
            log(f"  quarantined {reason}: {count:,}")
    if not result.rows_quarantined:
        log("  quarantined: none")
    log(
        f"landed {result.files_landed:,} file(s): rows in = rows staged + rows quarantined: "
        f"{result.rows_in:,} = {result.rows_staged:,} + {result.rows_quarantined:,}"
    )
    if result.earlier_rows_superseded:
        log(
            f"  {result.earlier_rows_superseded:,} rows landed earlier were superseded "
            "(same pool and hour in a newer file)"
        )
    log(
        f"store: {result.store_rows_in:,} = {result.store_rows_staged:,} + "
        f"{result.store_rows_quarantined:,} rows; {result.pools:,} pools landed now "
        f"-> {paths.raw_store}"
    )
    if not result.rows_staged:
        log("warning: no row of these files passed validation; see the quarantine reasons above")
    if result.rows_quarantined:
        log(f"quarantine -> {paths.quarantine_store}")
