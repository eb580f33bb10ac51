"""Ingest's readers: input files -> one typed, parsed relation per input (long
CSV / parquet exports, saved /chart JSON, collected /pools snapshots, and the
--pools-json metadata).

Imports: DuckDB, pyarrow, the standard library, apy_runway/foundation,
apy_runway/landing and inference/ (floor 4, landing). CSV and JSON are read as
text and cast with try_cast, so every format shares one parse and one set of
quarantine reasons; every input is read by its exact path, never as a glob
pattern. A CSV whose every line is not the header or a row is refused: DuckDB's
sniffer would skip comment lines uncounted.

The formats and their rules: docs/data.md#input-formats.
"""

from __future__ import annotations

import csv
import gzip
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from apy_runway.foundation.console import UserError, log
from apy_runway.foundation.http import parse_json
from apy_runway.foundation.paths import exact_path
from apy_runway.landing.ingest.pools_snapshot import (
    SUFFIX as POOLS_SUFFIX,
)
from apy_runway.landing.ingest.pools_snapshot import (
    check_pools_payload,
    pool_id_of,
    snapshot_hour_of,
    snapshot_rows,
)
from inference.contracts import (
    POOLS_METADATA_FIELDS,
    RAW_COLUMNS,
    RAW_IGNORED_COLUMNS,
    RAW_REQUIRED_COLUMNS,
    TIMESTAMP_UNITS,
)

CONTRACT_COLUMNS = list(RAW_COLUMNS)
SUFFIXES = (".csv", ".parquet", ".json", POOLS_SUFFIX)
# `apy-runway fetch` writes these beside the /chart files: skipped in folders
# (pass pools.json with --pools-json)
NOT_SNAPSHOT_FILES = ("pools.json", "fetch_failures.json")
JSON_FILES_PER_SCAN = 500  # bounds the JSON text DuckDB holds at once
KINDS = {".csv": "csv", ".parquet": "parquet", ".json": "chart", POOLS_SUFFIX: "pools"}


@dataclass(frozen=True)
class InputFile:
    index: int  # position in the expanded input list; after ingest picks the
    #             new files, their landing order: a later one wins ties
    path: Path
    kind: str  # csv | parquet | chart | pools


def kind_of(path: Path) -> str | None:
    name = path.name.lower()
    for suffix, kind in KINDS.items():
        if name.endswith(suffix):
            return kind
    return None


def expand_inputs(inputs: list[Path]) -> list[InputFile]:
    files: list[InputFile] = []
    for raw in inputs:
        path = Path(raw).expanduser().resolve()
        if not path.exists():
            raise UserError(f"input not found: {raw}")
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and kind_of(p)
                and not p.name.startswith(".")
                and p.name not in NOT_SNAPSHOT_FILES
            )
            if not found:
                raise UserError(f"no .csv, .parquet, .json or .json.gz files in folder {raw}")
        elif kind_of(path) is None:
            raise UserError(
                f"{raw}: unsupported input type (expected .csv, .parquet, .json or {POOLS_SUFFIX})"
            )
        else:
            found = [path]
        for item in found:
            files.append(InputFile(len(files), item, kind_of(item)))
    if not files:
        raise UserError("no input files")
    return files


def sql_str(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


@dataclass(frozen=True)
class Source:
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


def tabular_source(con: duckdb.DuckDBPyConnection, file: InputFile, report: bool = True) -> Source:
    """One CSV/parquet file (`report`: name the columns it does not read)."""
    path = sql_str(str(file.path))
    pattern = sql_str(exact_path(file.path))  # the file itself, never a pattern
    if file.kind == "csv":
        dialect = check_csv_lines(con, file.path)
        reader = (
            f"read_csv({pattern}, all_varchar = true, header = true, "
            f"delim = {sql_str(dialect.delimiter)}, quote = {sql_str(dialect.quote)}, "
            f"escape = {sql_str(dialect.escape)}, skip = 0, comment = '')"
        )
    else:
        reader = f"read_parquet({pattern}, file_row_number = true)"
    try:
        described = con.execute(f"describe select * from {reader}").fetchall()
    except duckdb.OutOfMemoryException:  # reported once, by ingest()
        raise
    except duckdb.Error as error:
        raise UserError(f"{file.path}: cannot read {file.kind}: {first_line(error)}") from None
    types = {row[0]: row[1] for row in described if row[0] != "file_row_number"}
    check_column_names(file.path, list(types), report)
    missing = [c for c in RAW_REQUIRED_COLUMNS if c not in types]
    if missing:
        raise UserError(
            f"{file.path}: missing required column(s) {', '.join(missing)} "
            f"(has: {', '.join(types) or 'none'})"
        )
    extras = [c for c in types if c not in CONTRACT_COLUMNS]
    extra_sql = (
        "json_object(" + ", ".join(f"{sql_str(c)}, {ident(c)}" for c in extras) + ")::varchar"
        if extras
        else "cast(null as varchar)"
    )
    # CSV has no row-number column: a single-file scan keeps file order, which
    # row_number() over () follows (the quarantine tests check source_row).
    row_number = "file_row_number + 1" if file.kind == "parquet" else "row_number() over ()"
    head = f"select {file.index} as file_index, cast({row_number} as bigint) as source_row"
    text = ", ".join(
        f"cast({ident(c)} as varchar) as {ident(c)}"
        if c in types
        else f"cast(null as varchar) as {ident(c)}"
        for c in CONTRACT_COLUMNS
    )
    native = ", ".join(
        ident(c) if c in types else f"cast(null as varchar) as {ident(c)}" for c in CONTRACT_COLUMNS
    )
    return Source(
        name=str(file.path),
        text_sql=f"{head}, {path} as source_file, {text}, {extra_sql} as extra_fields "
        f"from {reader}",
        native_sql=f"{head}, {native} from {reader}",
        types={c: types.get(c, "VARCHAR") for c in CONTRACT_COLUMNS},
        file_indices=frozenset([file.index]),
    )


def _folded(name: str) -> str:
    return name.strip().replace("_", "").replace("-", "").replace(" ", "").lower()


_CONTRACT_BY_FOLDED = {_folded(c): c for c in RAW_COLUMNS}
_IGNORED_FOLDED = {_folded(c) for c in RAW_IGNORED_COLUMNS}


def check_column_names(path: Path, columns: list[str], report: bool = True) -> list[str]:
    """A column that differs from a contract column only in case or
    underscores (tvlUSD, tvl_usd, APY) is an error naming both; any other
    column outside the contract and the known-ignored list is named in the
    output (its values stay in the quarantine's extra_fields). Returns those."""
    near = [
        (c, _CONTRACT_BY_FOLDED[_folded(c)])
        for c in columns
        if c not in RAW_COLUMNS and _folded(c) in _CONTRACT_BY_FOLDED
    ]
    if near:
        raise UserError(
            f"{path}: column(s) "
            + ", ".join(f"{found!r} look like the contract's {meant!r}" for found, meant in near)
            + " but are spelled differently (case or underscores): rename them to the "
            "contract's names (docs/data.md), or nothing of them would be read"
        )
    unknown = [
        c
        for c in columns
        if c not in RAW_COLUMNS and _folded(c) not in _IGNORED_FOLDED and c != "file_index"
    ]
    if unknown and report:
        log(
            f"ingest: {path.name}: column(s) not read (neither in the raw contract nor on "
            f"the known-ignored list): {', '.join(unknown)}"
        )
    return unknown


@dataclass(frozen=True)
class CsvDialect:
    delimiter: str
    quote: str
    escape: str


def check_csv_lines(con: duckdb.DuckDBPyConnection, path: Path) -> CsvDialect:
    """Every line of a CSV must be the header or a row, counted: DuckDB's
    sniffer would skip comment lines (`#`) and leading lines uncounted, and
    rename a duplicated header column (apy, apy -> apy, apy_1). Returns the
    sniffed dialect, which the read then pins (no comment, no skip)."""
    try:
        delimiter, quote, escape, comment, skip_rows = con.execute(
            "select Delimiter, Quote, Escape, Comment, SkipRows from sniff_csv(?)",
            [exact_path(path)],
        ).fetchone()
    except duckdb.OutOfMemoryException:  # reported once, by ingest()
        raise
    except duckdb.Error as error:
        raise UserError(f"{path}: cannot read csv: {first_line(error)}") from None
    # no quote seen in the sniffed sample: standard CSV quoting (RFC 4180)
    quote = '"' if quote in ("(empty)", "") else quote
    escape = quote if escape in ("(empty)", "") else escape
    if comment and comment != "(empty)":
        lines = _lines_starting_with(path, comment)
        raise UserError(
            f"{path}: {len(lines):,} comment line(s) starting with {comment!r} (first: line "
            f"{lines[0] if lines else '?'}); DuckDB would skip them uncounted: remove them "
            "so every line is the header or a row"
        )
    if skip_rows:
        raise UserError(
            f"{path}: the first {skip_rows} line(s) are not part of the table (DuckDB would "
            "skip them uncounted): remove them so the header is the first line"
        )
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        header = next(csv.reader(handle, delimiter=delimiter, quotechar=quote), [])
    seen: dict[str, str] = {}
    for name in header:
        key = name.strip().lower()  # DuckDB's column names ignore case
        if key in seen:
            raise UserError(
                f"{path}: the header names column {name.strip()!r} twice "
                f"({seen[key]!r} and {name.strip()!r}): which one is meant is unknown"
            )
        seen[key] = name.strip()
    return CsvDialect(delimiter, quote, escape)


def _lines_starting_with(path: Path, prefix: str) -> list[int]:
    with path.open(encoding="utf-8", errors="replace") as handle:
        return [number for number, line in enumerate(handle, 1) if line.startswith(prefix)]


def check_json_files(con: duckdb.DuckDBPyConnection, files: list[InputFile], what: str) -> None:
    """Every file must be valid JSON with a "data" array (DefiLlama's envelope)."""
    for start in range(0, len(files), JSON_FILES_PER_SCAN):
        batch = files[start : start + JSON_FILES_PER_SCAN]
        try:
            checks = con.execute(
                "select filename, json_valid(content), "
                "case when json_valid(content) then json_type(content, '$.data') end, "
                "case when json_valid(content) then "
                "    json_exists(content, '$.data[0].pool') "
                "    and not json_exists(content, '$.data[0].timestamp') end "
                "from read_text(?)",
                [[exact_path(f.path) for f in batch]],
            ).fetchall()
        except duckdb.OutOfMemoryException:  # reported once, by ingest()
            raise
        except duckdb.Error:
            if len(batch) == 1:
                raise UserError(f"{batch[0].path}: cannot read as text") from None
            for file in batch:  # find the file that cannot be read
                check_json_files(con, [file], what)
            raise UserError(f"cannot read {batch[0].path} .. {batch[-1].path}") from None
        for filename, valid, data_type, looks_like_pools in sorted(checks):
            if not valid:
                raise UserError(
                    f"{filename}: malformed JSON (not a saved DefiLlama {what} response)"
                )
            if data_type != "ARRAY":
                raise UserError(
                    f'{filename}: no "data" array (not a saved DefiLlama {what} response)'
                )
            if what == "/chart" and looks_like_pools:
                raise UserError(
                    f"{filename}: a /pools response, not /chart: pass it with --pools-json"
                )


def load_charts(con: duckdb.DuckDBPyConnection, files: list[InputFile]) -> Source:
    """Flatten all /chart files into a text table: one row per item of "data".

    The pool id is the file name. Files are read JSON_FILES_PER_SCAN at a time,
    which bounds the JSON text held in memory.
    """
    # a /chart item has no metadata, but a hand-made file may carry some
    fields = ", ".join(
        "pool_id as pool" if c == "pool" else f"item ->> {sql_str(c)} as {ident(c)}"
        for c in CONTRACT_COLUMNS
    )
    started = time.perf_counter()
    for start in range(0, len(files), JSON_FILES_PER_SCAN):
        batch = files[start : start + JSON_FILES_PER_SCAN]
        names = "[" + ", ".join(sql_str(str(f.path)) for f in batch) + "]"
        patterns = "[" + ", ".join(sql_str(exact_path(f.path)) for f in batch) + "]"
        pool_ids = "[" + ", ".join(sql_str(f.path.stem) for f in batch) + "]"
        verb = "create or replace table chart_rows as" if start == 0 else "insert into chart_rows"
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
                    from read_text({patterns})
                )
            """)
        except duckdb.OutOfMemoryException:  # reported once, by ingest()
            raise
        except duckdb.Error as error:
            raise UserError(
                f"cannot read /chart files {batch[0].path} .. {batch[-1].path}: {first_line(error)}"
            ) from None
        done = start + len(batch)
        if done % (JSON_FILES_PER_SCAN * 20) == 0 or done == len(files):
            log(
                f"  read {done:,}/{len(files):,} /chart files "
                f"({time.perf_counter() - started:.1f} s)"
            )
    sql = "select * from chart_rows"
    return Source(
        name=f"{len(files)} /chart files",
        text_sql=sql,
        native_sql=sql,
        types=dict.fromkeys(CONTRACT_COLUMNS, "VARCHAR"),
        file_indices=frozenset(f.index for f in files),
    )


def load_pools_metadata(con: duckdb.DuckDBPyConnection, pools_json: Path | None) -> None:
    columns = ", ".join(f"cast(null as varchar) as {ident(c)}" for c in POOLS_METADATA_FIELDS)
    if pools_json is None:
        con.execute(
            f"create or replace table pool_metadata as "
            f"select cast(null as varchar) as pool, {columns} where false"
        )
        return
    path = Path(pools_json).expanduser().resolve()
    if not path.is_file():
        raise UserError(f"--pools-json file not found: {pools_json}")
    if path.name.lower().endswith(POOLS_SUFFIX):
        _pools_metadata_from_snapshot(con, path)
        return
    check_json_files(con, [InputFile(0, path, "chart")], "/pools")
    fields = ", ".join(
        f"nullif(trim(item ->> {sql_str(c)}), '') as {ident(c)}" for c in POOLS_METADATA_FIELDS
    )
    try:
        con.execute(f"""
            create or replace table pool_metadata as
            select nullif(trim(item ->> 'pool'), '') as pool, {fields}
            from (
                select
                    unnest(cast(json_extract(content, '$.data') as json[])) as item,
                    generate_subscripts(
                        cast(json_extract(content, '$.data') as json[]), 1) as item_index
                from read_text({sql_str(exact_path(path))})
            )
            where nullif(trim(item ->> 'pool'), '') is not null
            qualify row_number() over (partition by pool order by item_index) = 1
        """)
    except duckdb.OutOfMemoryException:  # reported once, by ingest()
        raise
    except duckdb.Error as error:
        raise UserError(f"{path}: cannot read /pools items: {first_line(error)}") from None
    count = con.execute("select count(*) from pool_metadata").fetchone()[0]
    log(
        f"pool metadata: {count:,} pools from {pools_json} "
        f"(fields: {', '.join(POOLS_METADATA_FIELDS)})"
    )


def read_pools_snapshot(path: Path) -> dict:
    """A landed /pools response (gzip-compressed JSON), checked as a whole."""
    try:
        with gzip.open(path, "rb") as handle:
            payload = parse_json(handle.read())
    except (OSError, EOFError, ValueError) as error:
        raise UserError(f"{path}: not a gzip-compressed /pools response ({error})") from None
    problems = check_pools_payload(payload)
    if problems:
        raise UserError(f"{path}: not a usable /pools snapshot: {'; '.join(problems)}")
    return payload


def _pools_metadata_from_snapshot(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    payload = read_pools_snapshot(path)
    rows: dict[str, dict] = {}
    for item in payload["data"]:
        pool = pool_id_of(item.get("pool")) if isinstance(item, dict) else None
        if pool is not None:
            rows.setdefault(pool, item)
    columns = {"pool": list(rows)}
    for name in POOLS_METADATA_FIELDS:
        values = []
        for item in rows.values():
            value = item.get(name)
            text = None if value is None else str(value).strip()
            if isinstance(value, bool):
                text = "true" if value else "false"
            values.append(text or None)
        columns[name] = values
    metadata = pa.table({k: pa.array(v, type=pa.string()) for k, v in columns.items()})
    con.execute("drop table if exists pool_metadata")
    con.from_arrow(metadata).create("pool_metadata")
    log(
        f"pool metadata: {len(rows):,} pools from {path} "
        f"(fields: {', '.join(POOLS_METADATA_FIELDS)})"
    )


def load_pools_snapshots(con: duckdb.DuckDBPyConnection, files: list[InputFile]) -> Source:
    """Landed /pools snapshots as a text table: one row per item, the UTC hour
    of the file name as timestamp. The never-read fields are dropped while
    reading (pools_snapshot.snapshot_rows)."""
    names = [*CONTRACT_COLUMNS, "extra_fields"]
    columns: dict[str, list] = {"file_index": [], "source_row": [], "source_file": []}
    columns.update({name: [] for name in names})
    for file in files:
        try:
            hour = snapshot_hour_of(file.path)
        except ValueError as error:
            raise UserError(str(error)) from None
        rows = snapshot_rows(read_pools_snapshot(file.path), hour)
        for number, row in enumerate(rows, start=1):
            columns["file_index"].append(file.index)
            columns["source_row"].append(number)
            columns["source_file"].append(str(file.path))
            for name in names:
                columns[name].append(row.get(name))
    snapshot_rows_table = pa.table(
        {
            "file_index": pa.array(columns["file_index"], type=pa.int32()),
            "source_row": pa.array(columns["source_row"], type=pa.int64()),
            "source_file": pa.array(columns["source_file"], type=pa.string()),
            **{name: pa.array(columns[name], type=pa.string()) for name in names},
        }
    )
    con.execute("drop table if exists pools_rows")
    con.from_arrow(snapshot_rows_table).create("pools_rows")
    sql = "select * from pools_rows"
    return Source(
        name=", ".join(str(f.path) for f in files),
        text_sql=sql,
        native_sql=sql,
        types=dict.fromkeys(CONTRACT_COLUMNS, "VARCHAR"),
        file_indices=frozenset(f.index for f in files),
    )


# --------------------------------------------------------------------------- typed parse

TIMESTAMP_TYPES = ("TIMESTAMP", "DATE")  # prefixes: TIMESTAMP WITH TIME ZONE, TIMESTAMP_NS...
NUMERIC_TYPES = (
    "DOUBLE",
    "FLOAT",
    "REAL",
    "DECIMAL",
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
)


def _is_numeric(kind: str) -> bool:
    return kind.split("(")[0] in NUMERIC_TYPES


def _text(column: str, kind: str = "VARCHAR") -> str:
    value = f"input_rows.{ident(column)}"
    if kind != "VARCHAR":
        value = f"cast({value} as varchar)"
    return f"nullif(trim({value}), '')"


# a number in a timestamp column (what an epoch looks like as text)
EPOCH_PATTERN = "[-+]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][-+]?[0-9]+)?"


def _timestamp(kind: str, unit: str | None) -> tuple[str, str]:
    """(parsed timestamp, is an epoch number without a unit) of one source.

    A number is an epoch only in the unit `--timestamp-unit` names: guessing
    seconds vs milliseconds made 1742342400000000 (epoch us) the year 57182
    and 20250319 a day of 1970. Without a unit such a row is quarantined
    (`epoch_timestamp_without_unit`)."""
    column = "input_rows.timestamp"
    if kind.startswith(TIMESTAMP_TYPES):
        return f"cast({column} as timestamptz)", "false"
    caster = "cast" if _is_numeric(kind) else "try_cast"
    epoch = f"{caster}({column} as double)"
    if unit is None:
        from_epoch = "cast(null as timestamptz)"
    else:
        per_second = TIMESTAMP_UNITS[unit]
        from_epoch = f"try(to_timestamp({epoch} / {per_second}))"
    if _is_numeric(kind):
        return from_epoch, f"{column} is not null and {str(unit is None).lower()}"
    text = _text("timestamp", kind)
    is_epoch = f"coalesce(regexp_full_match({text}, '{EPOCH_PATTERN}'), false)"
    parsed = f"case when {is_epoch} then {from_epoch} else try_cast({text} as timestamptz) end"
    return parsed, f"{is_epoch} and {str(unit is None).lower()}"


def _number(column: str, kind: str) -> tuple[str, str]:
    """(value, is-present) for a DOUBLE contract column."""
    if _is_numeric(kind):
        value = f"cast(input_rows.{ident(column)} as double)"
        return value, f"input_rows.{ident(column)} is not null"
    return f"try_cast({_text(column, kind)} as double)", f"{_text(column, kind)} is not null"


def parse_sql(source: Source, timestamp_unit: str | None = None) -> str:
    """Typed values of one source; metadata from --pools-json fills empty strings."""
    types = source.types
    timestamp, is_epoch_without_unit = _timestamp(types["timestamp"], timestamp_unit)
    strings = ", ".join(
        f"coalesce({_text(c, types[c])}, meta.{ident(c)}) as parsed_{c}"
        for c in ("chain", "project", "symbol", "poolMeta", "ilRisk", "exposure")
    )
    numbers = []
    for column, flag in (
        ("tvlUsd", "has_tvl"),
        ("apy", "has_apy"),
        ("apyBase", "has_apy_base"),
        ("apyReward", "has_apy_reward"),
    ):
        value, present = _number(column, types[column])
        numbers.append(f"{value} as parsed_{column}, {present} as {flag}")
    if types["stablecoin"] == "BOOLEAN":
        stablecoin = "coalesce(input_rows.stablecoin, try_cast(meta.stablecoin as boolean))"
    else:
        stablecoin = (
            f"try_cast(lower(coalesce({_text('stablecoin', types['stablecoin'])}, "
            f"meta.stablecoin)) as boolean)"
        )
    return f"""
        select
            input_rows.file_index,
            input_rows.source_row,
            {timestamp} as parsed_timestamp,
            {is_epoch_without_unit} as is_epoch_without_unit,
            {_text("pool", types["pool"])} as parsed_pool,
            {strings},
            {", ".join(numbers)},
            {stablecoin} as parsed_stablecoin
        from ({source.native_sql}) as input_rows
        left join pool_metadata as meta
            on meta.pool = {_text("pool", types["pool"])}
    """
