"""`apy-runway ingest`: validate inputs into the raw contract, quarantine the rest.

Inputs (files or folders of them):
  *.csv / *.parquet  long tables with DefiLlama's field names (timestamp, pool,
                     chain, ..., apy); missing optional columns become null.
  *.json             saved DefiLlama /chart/{pool} responses, one per pool; the
                     pool id is the file name (<pool-id>.json). `--pools-json`
                     adds per-pool metadata from a saved /pools response.

Everything is parsed and classified in DuckDB SQL, never pandas: CSV and JSON
are read as text and cast with try_cast; parquet columns already in the
contract type are used as they are. Only narrow keys (file, row, pool,
timestamp, a hash of the values, the reason) are materialised, in a disk-backed
work database under data/ (memory_limit, spilling to disk), and the two output
files are streamed with COPY, so a 50M-row input runs in bounded memory.
Each row ends up in exactly one of two files, both replaced atomically:
  data/raw/pool_snapshots.parquet                     the raw contract (dbt source)
  data/quarantine/pool_snapshots_quarantined.parquet  bad rows, as text, + reason

Quarantine reasons, checked in this order (first match wins):
  unparseable_timestamp  timestamp missing, unparseable or infinite
  missing_pool_id        pool missing or blank
  missing_apy            apy missing or blank
  non_numeric_apy        apy, apyBase or apyReward present but not a number
  non_finite_apy         apy, apyBase or apyReward NaN or +-inf (also '1e400')
  non_numeric_tvl        tvlUsd present but not a finite number
  negative_tvl           tvlUsd < 0
  exact_duplicate        the same values as a later input row (the later one stays)
  superseded_in_hour     another row of the pool in the same UTC hour wins: the
                         latest timestamp, ties -> the later input row
"Later input row" means later file on the command line (folders expanded in
name order), then later row in the file.
"""
from __future__ import annotations

import argparse
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from apy_runway.console import UserError, log, memory_size
from apy_runway.paths import ProjectPaths

COMMAND = "ingest"
DEFAULT_MEMORY_LIMIT = "3GB"
HELP = ("validate snapshots (CSV/parquet exports, /chart JSON) into the raw contract; "
        "quarantine bad rows")

DEFAULT_INPUT_NAME = "generated_snapshots.parquet"

# The raw contract, in order: (column, DuckDB type). The dbt source reads these.
CONTRACT = [
    ("timestamp", "TIMESTAMPTZ"),
    ("pool", "VARCHAR"),
    ("chain", "VARCHAR"),
    ("project", "VARCHAR"),
    ("symbol", "VARCHAR"),
    ("poolMeta", "VARCHAR"),
    ("tvlUsd", "DOUBLE"),
    ("apy", "DOUBLE"),
    ("apyBase", "DOUBLE"),
    ("apyReward", "DOUBLE"),
    ("stablecoin", "BOOLEAN"),
    ("ilRisk", "VARCHAR"),
    ("exposure", "VARCHAR"),
]
CONTRACT_COLUMNS = [name for name, _ in CONTRACT]
REQUIRED_COLUMNS = ("timestamp", "pool")

# The only /pools fields ingest reads: static pool metadata. Everything else in
# /pools is either the current state (tvlUsd, apy...) or a model output /
# look-ahead summary (predictions, mu, sigma, apyPct*, outlier, apyMean30d,
# count) and must never become an input.
POOLS_METADATA_FIELDS = (
    "chain", "project", "symbol", "poolMeta", "stablecoin", "ilRisk", "exposure",
)
# The /chart item fields that map onto the contract; the whole item is kept in
# the quarantine's extra_fields.
CHART_FIELDS = ("timestamp", "tvlUsd", "apy", "apyBase", "apyReward")

REASONS = (
    "unparseable_timestamp",
    "missing_pool_id",
    "missing_apy",
    "non_numeric_apy",
    "non_finite_apy",
    "non_numeric_tvl",
    "negative_tvl",
    "exact_duplicate",
    "superseded_in_hour",
)
SUFFIXES = (".csv", ".parquet", ".json")
# `apy-runway fetch` writes these beside the /chart files: skipped in folders
# (pass pools.json with --pools-json)
NOT_SNAPSHOT_FILES = ("pools.json", "fetch_failures.json")


@dataclass
class IngestResult:
    rows_in: int
    rows_staged: int
    rows_quarantined: int
    by_reason: dict[str, int] = field(default_factory=dict)
    pools: int = 0
    seconds: float = 0.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs",
        nargs="*",
        type=Path,
        help="CSV / parquet / /chart JSON files or folders of them "
             f"(default: data/landing/{DEFAULT_INPUT_NAME} from `apy-runway generate`)",
    )
    parser.add_argument(
        "--pools-json",
        type=Path,
        default=None,
        help="a saved DefiLlama /pools response: chain, project, symbol, stablecoin, "
             "ilRisk, exposure, poolMeta per pool, joined by pool id",
    )
    parser.add_argument(
        "--no-sort",
        dest="sort",
        action="store_false",
        help="write staged rows in no particular order instead of by pool and timestamp "
             "(about 3x faster to write at 50M rows; the order differs run to run)",
    )
    parser.add_argument(
        "--memory-limit",
        # 3GB: the measured need at DefiLlama's scale (231M hourly rows); 2GB ran out
        default=DEFAULT_MEMORY_LIMIT,
        type=memory_size,
        help=f"DuckDB memory limit for the work database (spills to disk beyond it; default {DEFAULT_MEMORY_LIMIT})",
    )


def run(args: argparse.Namespace, paths: ProjectPaths) -> int:
    inputs = list(args.inputs) or [paths.landing / DEFAULT_INPUT_NAME]
    if not args.inputs and not inputs[0].exists():
        raise UserError(
            f"no input given and {inputs[0]} does not exist: run `apy-runway generate` "
            "or pass CSV / parquet / JSON files"
        )
    ingest(inputs, paths, pools_json=args.pools_json, memory_limit=args.memory_limit,
           sort=args.sort)
    return 0


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class _InputFile:
    index: int  # position in the expanded input list: later wins ties
    path: Path
    kind: str  # csv | parquet | json


def _expand_inputs(inputs: list[Path]) -> list[_InputFile]:
    files: list[_InputFile] = []
    for raw in inputs:
        path = Path(raw).expanduser().resolve()
        if not path.exists():
            raise UserError(f"input not found: {raw}")
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in SUFFIXES
                and not p.name.startswith(".") and p.name not in NOT_SNAPSHOT_FILES
            )
            if not found:
                raise UserError(f"no .csv, .parquet or .json files in folder {raw}")
        elif path.suffix.lower() not in SUFFIXES:
            raise UserError(f"{raw}: unsupported input type (expected .csv, .parquet or .json)")
        else:
            found = [path]
        for item in found:
            files.append(_InputFile(len(files), item, item.suffix.lower().lstrip(".")))
    if not files:
        raise UserError("no input files")
    return files


def _sql_str(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


@dataclass(frozen=True)
class _Source:
    """One input as two SELECTs with file_index, source_row and the contract columns.

    text_sql: every column as text + extra_fields (what the quarantine keeps).
    native_sql: the columns in their stored types (what gets parsed); a
    parquet column already of the contract type is not sent through text.
    """
    name: str
    text_sql: str
    native_sql: str
    types: dict[str, str]
    file_indices: frozenset[int]


def _tabular_source(con: duckdb.DuckDBPyConnection, file: _InputFile) -> _Source:
    """One CSV/parquet file."""
    path = _sql_str(str(file.path))
    if file.kind == "csv":
        reader = f"read_csv({path}, all_varchar = true, header = true)"
    else:
        reader = f"read_parquet({path}, file_row_number = true)"
    try:
        described = con.execute(f"describe select * from {reader}").fetchall()
    except duckdb.OutOfMemoryException:  # reported once, by ingest()
        raise
    except duckdb.Error as error:
        raise UserError(f"{file.path}: cannot read {file.kind}: {_first_line(error)}") from None
    types = {row[0]: row[1] for row in described if row[0] != "file_row_number"}
    missing = [c for c in REQUIRED_COLUMNS if c not in types]
    if missing:
        raise UserError(f"{file.path}: missing required column(s) {', '.join(missing)} "
                        f"(has: {', '.join(types) or 'none'})")
    extras = [c for c in types if c not in CONTRACT_COLUMNS]
    extra_sql = (
        "json_object(" + ", ".join(f"{_sql_str(c)}, {_ident(c)}" for c in extras) + ")::varchar"
        if extras else "cast(null as varchar)"
    )
    # CSV has no row-number column: a single-file scan keeps file order, which
    # row_number() over () follows (the quarantine tests check source_row).
    row_number = "file_row_number + 1" if file.kind == "parquet" else "row_number() over ()"
    head = f"select {file.index} as file_index, cast({row_number} as bigint) as source_row"
    text = ", ".join(
        f"cast({_ident(c)} as varchar) as {_ident(c)}" if c in types
        else f"cast(null as varchar) as {_ident(c)}"
        for c in CONTRACT_COLUMNS
    )
    native = ", ".join(
        _ident(c) if c in types else f"cast(null as varchar) as {_ident(c)}"
        for c in CONTRACT_COLUMNS
    )
    return _Source(
        name=str(file.path),
        text_sql=f"{head}, {path} as source_file, {text}, {extra_sql} as extra_fields "
                 f"from {reader}",
        native_sql=f"{head}, {native} from {reader}",
        types={c: types.get(c, "VARCHAR") for c in CONTRACT_COLUMNS},
        file_indices=frozenset([file.index]),
    )


def _check_json_files(con: duckdb.DuckDBPyConnection, files: list[_InputFile], what: str) -> None:
    """Every file must be valid JSON with a "data" array (DefiLlama's envelope)."""
    for start in range(0, len(files), JSON_FILES_PER_SCAN):
        batch = files[start:start + JSON_FILES_PER_SCAN]
        try:
            checks = con.execute(
                "select filename, json_valid(content), "
                "case when json_valid(content) then json_type(content, '$.data') end, "
                "case when json_valid(content) then "
                "    json_exists(content, '$.data[0].pool') "
                "    and not json_exists(content, '$.data[0].timestamp') end "
                "from read_text(?)",
                [[str(f.path) for f in batch]],
            ).fetchall()
        except duckdb.OutOfMemoryException:  # reported once, by ingest()
            raise
        except duckdb.Error:
            if len(batch) == 1:
                raise UserError(f"{batch[0].path}: cannot read as text") from None
            for file in batch:  # find the file that cannot be read
                _check_json_files(con, [file], what)
            raise UserError(f"cannot read {batch[0].path} .. {batch[-1].path}") from None
        for filename, valid, data_type, looks_like_pools in sorted(checks):
            if not valid:
                raise UserError(f"{filename}: malformed JSON "
                                f"(not a saved DefiLlama {what} response)")
            if data_type != "ARRAY":
                raise UserError(f"{filename}: no \"data\" array "
                                f"(not a saved DefiLlama {what} response)")
            if what == "/chart" and looks_like_pools:
                raise UserError(f"{filename}: a /pools response, not /chart: "
                                "pass it with --pools-json")


JSON_FILES_PER_SCAN = 500  # bounds the JSON text DuckDB holds at once


def _load_charts(con: duckdb.DuckDBPyConnection, files: list[_InputFile]) -> _Source:
    """Flatten all /chart files into a text table: one row per item of "data".

    The pool id is the file name. Files are read JSON_FILES_PER_SCAN at a time,
    which bounds the JSON text held in memory.
    """
    # a /chart item has no metadata, but a hand-made file may carry some
    fields = ", ".join(
        "pool_id as pool" if c == "pool"
        else f"item ->> {_sql_str(c)} as {_ident(c)}"
        for c in CONTRACT_COLUMNS
    )
    started = time.perf_counter()
    for start in range(0, len(files), JSON_FILES_PER_SCAN):
        batch = files[start:start + JSON_FILES_PER_SCAN]
        names = "[" + ", ".join(_sql_str(str(f.path)) for f in batch) + "]"
        pool_ids = "[" + ", ".join(_sql_str(f.path.stem) for f in batch) + "]"
        verb = "create table chart_rows as" if start == 0 else "insert into chart_rows"
        try:
            con.execute(f"""
                {verb}
                select
                    cast({batch[0].index} + file_position - 1 as integer) as file_index,
                    cast(item_index as bigint) as source_row,
                    filename as source_file,
                    {fields},
                    cast(item as varchar) as extra_fields
                from (
                    -- unnest in the select list: a lateral json_each would copy
                    -- the whole file text into every item row
                    select
                        filename,
                        list_position({names}, filename) as file_position,
                        {pool_ids}[list_position({names}, filename)] as pool_id,
                        unnest(cast(json_extract(content, '$.data') as json[])) as item,
                        generate_subscripts(
                            cast(json_extract(content, '$.data') as json[]), 1
                        ) as item_index
                    from read_text({names})
                )
            """)
        except duckdb.OutOfMemoryException:  # reported once, by ingest()
            raise
        except duckdb.Error as error:
            raise UserError(f"cannot read /chart files {batch[0].path} .. {batch[-1].path}: "
                            f"{_first_line(error)}") from None
        done = start + len(batch)
        if done % (JSON_FILES_PER_SCAN * 20) == 0 or done == len(files):
            log(f"  read {done:,}/{len(files):,} /chart files "
                f"({time.perf_counter() - started:.1f} s)")
    sql = "select * from chart_rows"
    return _Source(name=f"{len(files)} /chart files", text_sql=sql, native_sql=sql,
                   types=dict.fromkeys(CONTRACT_COLUMNS, "VARCHAR"),
                   file_indices=frozenset(f.index for f in files))


def _load_pools_metadata(con: duckdb.DuckDBPyConnection, pools_json: Path | None) -> None:
    columns = ", ".join(f"cast(null as varchar) as {_ident(c)}" for c in POOLS_METADATA_FIELDS)
    if pools_json is None:
        con.execute(f"create or replace temp table pool_metadata as "
                    f"select cast(null as varchar) as pool, {columns} where false")
        return
    path = Path(pools_json).expanduser().resolve()
    if not path.is_file():
        raise UserError(f"--pools-json file not found: {pools_json}")
    _check_json_files(con, [_InputFile(0, path, "json")], "/pools")
    fields = ", ".join(f"nullif(trim(item ->> {_sql_str(c)}), '') as {_ident(c)}"
                       for c in POOLS_METADATA_FIELDS)
    try:
        con.execute(f"""
            create or replace temp table pool_metadata as
            select nullif(trim(item ->> 'pool'), '') as pool, {fields}
            from (
                select
                    unnest(cast(json_extract(content, '$.data') as json[])) as item,
                    generate_subscripts(
                        cast(json_extract(content, '$.data') as json[]), 1) as item_index
                from read_text({_sql_str(str(path))})
            )
            where nullif(trim(item ->> 'pool'), '') is not null
            qualify row_number() over (partition by pool order by item_index) = 1
        """)
    except duckdb.OutOfMemoryException:  # reported once, by ingest()
        raise
    except duckdb.Error as error:
        raise UserError(f"{path}: cannot read /pools items: {_first_line(error)}") from None
    count = con.execute("select count(*) from pool_metadata").fetchone()[0]
    log(f"pool metadata: {count:,} pools from {pools_json} "
        f"(fields: {', '.join(POOLS_METADATA_FIELDS)})")


# --------------------------------------------------------------------------- classify

TIMESTAMP_TYPES = ("TIMESTAMP", "DATE")  # prefixes: TIMESTAMP WITH TIME ZONE, TIMESTAMP_NS...
NUMERIC_TYPES = ("DOUBLE", "FLOAT", "REAL", "DECIMAL", "TINYINT", "SMALLINT", "INTEGER",
                 "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")


def _is_numeric(kind: str) -> bool:
    return kind.split("(")[0] in NUMERIC_TYPES


def _text(column: str, kind: str = "VARCHAR") -> str:
    value = f"input_rows.{_ident(column)}"
    if kind != "VARCHAR":
        value = f"cast({value} as varchar)"
    return f"nullif(trim({value}), '')"


def _timestamp(kind: str) -> str:
    column = "input_rows.timestamp"
    if kind.startswith(TIMESTAMP_TYPES):
        return f"cast({column} as timestamptz)"
    # epoch seconds, or milliseconds from 1e11 on (which is year 5138 in seconds)
    caster = "cast" if _is_numeric(kind) else "try_cast"
    epoch = f"{caster}({column} as double)"
    from_epoch = (f"try(to_timestamp(case when abs({epoch}) >= 1e11 "
                  f"then {epoch} / 1000 else {epoch} end))")
    if _is_numeric(kind):
        return from_epoch
    text = _text("timestamp", kind)
    return (f"case when regexp_full_match({text}, '-?[0-9]+(\\.[0-9]+)?') then {from_epoch} "
            f"else try_cast({text} as timestamptz) end")


def _number(column: str, kind: str) -> tuple[str, str]:
    """(value, is-present) for a DOUBLE contract column."""
    if _is_numeric(kind):
        value = f"cast(input_rows.{_ident(column)} as double)"
        return value, f"input_rows.{_ident(column)} is not null"
    return f"try_cast({_text(column, kind)} as double)", f"{_text(column, kind)} is not null"


def _parse_sql(source: _Source) -> str:
    """Typed values of one source; metadata from --pools-json fills empty strings."""
    types = source.types
    strings = ", ".join(
        f"coalesce({_text(c, types[c])}, meta.{_ident(c)}) as parsed_{c}"
        for c in ("chain", "project", "symbol", "poolMeta", "ilRisk", "exposure")
    )
    numbers = []
    for column, flag in (("tvlUsd", "has_tvl"), ("apy", "has_apy"),
                         ("apyBase", "has_apy_base"), ("apyReward", "has_apy_reward")):
        value, present = _number(column, types[column])
        numbers.append(f"{value} as parsed_{column}, {present} as {flag}")
    if types["stablecoin"] == "BOOLEAN":
        stablecoin = "coalesce(input_rows.stablecoin, try_cast(meta.stablecoin as boolean))"
    else:
        stablecoin = (f"try_cast(lower(coalesce({_text('stablecoin', types['stablecoin'])}, "
                      f"meta.stablecoin)) as boolean)")
    return f"""
        select
            input_rows.file_index,
            input_rows.source_row,
            {_timestamp(types['timestamp'])} as parsed_timestamp,
            {_text('pool', types['pool'])} as parsed_pool,
            {strings},
            {", ".join(numbers)},
            {stablecoin} as parsed_stablecoin
        from ({source.native_sql}) as input_rows
        left join pool_metadata as meta
            on meta.pool = {_text('pool', types['pool'])}
    """


PARSED_VALUES = [
    "parsed_pool", "parsed_timestamp", "parsed_chain", "parsed_project", "parsed_symbol",
    "parsed_poolMeta", "parsed_tvlUsd", "parsed_apy", "parsed_apyBase", "parsed_apyReward",
    "parsed_stablecoin", "parsed_ilRisk", "parsed_exposure",
]


def _flagged_sql(source: _Source) -> str:
    """Typed values of one source + the per-row reason (null = the row itself is fine)."""
    return f"""
    select
        * exclude (has_tvl, has_apy, has_apy_base, has_apy_reward),
        case
            when parsed_timestamp is null or not isfinite(parsed_timestamp)
                then 'unparseable_timestamp'
            when parsed_pool is null then 'missing_pool_id'
            when not has_apy then 'missing_apy'
            when parsed_apy is null
                or (has_apy_base and parsed_apyBase is null)
                or (has_apy_reward and parsed_apyReward is null)
                then 'non_numeric_apy'
            when not isfinite(parsed_apy)
                or not isfinite(coalesce(parsed_apyBase, 0))
                or not isfinite(coalesce(parsed_apyReward, 0))
                then 'non_finite_apy'
            when has_tvl and (parsed_tvlUsd is null or not isfinite(parsed_tvlUsd))
                then 'non_numeric_tvl'
            when parsed_tvlUsd < 0 then 'negative_tvl'
        end as row_reason
    from ({_parse_sql(source)}) as parsed
    """


# Only these narrow columns are materialised; the rest is re-read from the
# inputs when the two output files are written.
def _keys_sql(source: _Source) -> str:
    return f"""
    insert into row_keys
    select
        file_index,
        source_row,
        row_reason,
        parsed_pool,
        parsed_timestamp,
        -- 64-bit hash of every contract value: equal hashes at the same pool and
        -- timestamp are exact duplicates (a collision could only relabel a
        -- superseded row as a duplicate; the kept row is the same either way)
        case when row_reason is null
             then hash({", ".join(PARSED_VALUES)}) end as value_hash
    from ({_flagged_sql(source)})
    """


ROW_KEYS_TABLE = """
    create table row_keys (
        file_index integer,
        source_row bigint,
        row_reason varchar,
        parsed_pool varchar,
        parsed_timestamp timestamptz,
        value_hash ubigint
    )
"""


VERDICTS_SQL = """
    create table verdicts as

    with

    valid as (
        select
            *,
            date_trunc('hour', parsed_timestamp) as parsed_hour
        from row_keys
        where row_reason is null
    ),

    -- one hash aggregate over all rows finds the few crowded hours; only
    -- their rows are ranked (exact duplicates always share pool and hour)
    crowded_hours as (
        select parsed_pool, parsed_hour
        from valid
        group by parsed_pool, parsed_hour
        having count(*) > 1
    ),

    contenders as (
        select valid.*
        from valid
        semi join crowded_hours using (parsed_pool, parsed_hour)
    ),

    -- identical values: the last input copy stays, earlier copies are duplicates
    copies_ranked as (
        select
            *,
            row_number() over (
                partition by parsed_pool, parsed_timestamp, value_hash
                order by file_index desc, source_row desc
            ) as copy_rank
        from contenders
    ),

    -- one row per pool per UTC hour: the latest timestamp, then the later input
    hours_ranked as (
        select
            *,
            row_number() over (
                partition by parsed_pool, parsed_hour
                order by parsed_timestamp desc, file_index desc, source_row desc
            ) as hour_rank
        from copies_ranked
        where copy_rank = 1
    ),

    rejected as (
        select file_index, source_row, row_reason as reason
        from row_keys
        where row_reason is not null
        union all
        select file_index, source_row, 'exact_duplicate' as reason
        from copies_ranked
        where copy_rank > 1
        union all
        select file_index, source_row, 'superseded_in_hour' as reason
        from hours_ranked
        where hour_rank > 1
    )

    select * from rejected
"""


def _staged_sql(sort: bool) -> str:
    select = ", ".join(
        f"cast(parsed_{name} as {kind}) as {_ident(name)}" for name, kind in CONTRACT)
    order = " order by parsed_pool, parsed_timestamp" if sort else ""
    return (
        f"select {select} from parsed_rows "
        f"anti join verdicts using (file_index, source_row) "
        f"where row_reason is null{order}"
    )


def _quarantine_sql(ingested_at: datetime) -> str:
    text = ", ".join(f"input_rows.{_ident(c)}" for c in CONTRACT_COLUMNS)
    return (
        f"select {text}, input_rows.extra_fields, verdicts.reason, "
        f"input_rows.source_file, input_rows.source_row, "
        f"cast({_sql_str(ingested_at.isoformat())} as timestamptz) as ingested_at "
        f"from input_rows join verdicts using (file_index, source_row) "
        f"order by input_rows.file_index, input_rows.source_row"
    )


# --------------------------------------------------------------------------- ingest


def ingest(
    inputs: list[Path],
    paths: ProjectPaths,
    pools_json: Path | None = None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    sort: bool = True,
) -> IngestResult:
    """Validate `inputs` into paths.raw_snapshots; bad rows to paths.quarantined_rows.

    Both files are replaced atomically, and only when every input was readable:
    a missing or malformed input raises UserError and writes nothing. The staged
    rows are sorted by pool and timestamp unless sort=False.
    """
    started = time.perf_counter()
    paths.ensure()
    files = _expand_inputs(inputs)
    ingested_at = datetime.now(timezone.utc)
    work_dir = paths.data / ".ingest_work"
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    staged_tmp = paths.raw_snapshots.with_name(f".{paths.raw_snapshots.name}.{os.getpid()}.tmp")
    quarantine_tmp = paths.quarantined_rows.with_name(
        f".{paths.quarantined_rows.name}.{os.getpid()}.tmp")
    con = duckdb.connect(str(work_dir / "work.duckdb"))
    try:
        con.execute("set TimeZone = 'UTC'")
        con.execute(f"set memory_limit = {_sql_str(memory_limit)}")
        con.execute(f"set temp_directory = {_sql_str(str(work_dir / 'spill'))}")
        _load_pools_metadata(con, pools_json)

        tabular = [f for f in files if f.kind != "json"]
        charts = [f for f in files if f.kind == "json"]
        sources = [_tabular_source(con, f) for f in tabular]
        if charts:
            _check_json_files(con, charts, "/chart")
        log(f"ingest: {len(tabular)} CSV/parquet file(s), {len(charts)} /chart JSON file(s)")
        step = time.perf_counter()
        if charts:
            sources.append(_load_charts(con, charts))
        con.execute("create or replace temp view parsed_rows as "
                    + "\nunion all by name\n".join(f"({_flagged_sql(s)})" for s in sources))
        # one source at a time: a union of many scans would run them all at once
        con.execute(ROW_KEYS_TABLE)
        for source in sources:
            try:
                con.execute(_keys_sql(source))
            except duckdb.OutOfMemoryException:  # reported once, by ingest()
                raise
            except duckdb.Error as error:
                raise UserError(f"cannot read {source.name}: {_first_line(error)}") from None
        rows_in = con.execute("select count(*) from row_keys").fetchone()[0]
        log(f"read and parsed {rows_in:,} rows in {time.perf_counter() - step:.1f} s")

        step = time.perf_counter()
        con.execute(VERDICTS_SQL)
        log(f"checked duplicates and hours in {time.perf_counter() - step:.1f} s")

        step = time.perf_counter()
        rows_staged = con.execute(
            f"copy ({_staged_sql(sort)}) to {_sql_str(str(staged_tmp))} "
            "(format parquet, compression zstd)").fetchone()[0]
        log(f"wrote {rows_staged:,} staged rows in {time.perf_counter() - step:.1f} s")
        step = time.perf_counter()
        # the quarantine re-reads only the files that have quarantined rows
        bad_files = {row[0] for row in con.execute(
            "select distinct file_index from verdicts").fetchall()}
        bad_sources = [s for s in sources if s.file_indices & bad_files] or sources[:1]
        con.execute("create or replace temp view input_rows as "
                    + "\nunion all by name\n".join(f"({s.text_sql})" for s in bad_sources))
        rows_quarantined = con.execute(
            f"copy ({_quarantine_sql(ingested_at)}) to {_sql_str(str(quarantine_tmp))} "
            "(format parquet, compression zstd)").fetchone()[0]
        log(f"wrote {rows_quarantined:,} quarantined rows in {time.perf_counter() - step:.1f} s")
        if rows_in != rows_staged + rows_quarantined:
            raise AssertionError(
                f"accounting broken: rows in {rows_in} != staged {rows_staged} "
                f"+ quarantined {rows_quarantined}")
        by_reason = dict.fromkeys(REASONS, 0)
        for reason, count in con.execute(
                "select reason, count(*) from verdicts group by reason").fetchall():
            by_reason[reason] = count
        pools = con.execute(
            "select count(distinct parsed_pool) from row_keys "
            "anti join verdicts using (file_index, source_row)"
        ).fetchone()[0]
        con.close()
        os.replace(staged_tmp, paths.raw_snapshots)
        os.replace(quarantine_tmp, paths.quarantined_rows)
    except duckdb.OutOfMemoryException as error:
        # nothing is written: the outputs are only replaced after both copies succeed
        raise UserError(
            f"DuckDB ran out of memory within --memory-limit {memory_limit} "
            f"({_first_line(error)}); nothing was written. Raise --memory-limit "
            f"(measured: 231M hourly rows need about 3GB, see benchmarks/RESULTS.md) "
            f"or ingest the inputs in parts") from None
    finally:
        con.close()
        for tmp in (staged_tmp, quarantine_tmp):
            tmp.unlink(missing_ok=True)
        shutil.rmtree(work_dir, ignore_errors=True)

    result = IngestResult(
        rows_in=rows_in,
        rows_staged=rows_staged,
        rows_quarantined=rows_quarantined,
        by_reason=by_reason,
        pools=pools,
        seconds=time.perf_counter() - started,
    )
    _report(result, paths)
    return result


def _report(result: IngestResult, paths: ProjectPaths) -> None:
    for reason, count in result.by_reason.items():
        if count:
            log(f"  quarantined {reason}: {count:,}")
    if not result.rows_quarantined:
        log("  quarantined: none")
    log(f"rows in = rows staged + rows quarantined: {result.rows_in:,} = "
        f"{result.rows_staged:,} + {result.rows_quarantined:,}")
    log(f"{result.pools:,} pools -> {paths.raw_snapshots}")
    if not result.rows_staged:
        log("warning: no row passed validation; see the quarantine reasons above")
    if result.rows_quarantined:
        log(f"quarantine -> {paths.quarantined_rows}")
