"""`apy-runway ingest`: validate inputs into the raw contract, quarantine the rest.

Three parts, along their seams:
  readers.py   input files -> one typed, parsed relation per input (DuckDB SQL)
  sql/*.sql    row classification: per-row reasons, duplicates and one row per
               pool and hour, the staged and quarantined selections
  __init__.py  this module: the command, the order of the steps, the files

Only narrow keys (file, row, pool, timestamp, a hash of the values, the reason)
are materialised, in a disk-backed work database under data/ (memory_limit,
spilling to disk), and the two output files are streamed with COPY, so a
50M-row input runs in bounded memory. Each row ends up in exactly one of two
files, both replaced atomically:
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
import re
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import duckdb

from apy_runway.foundation.console import UserError, log, memory_size
from apy_runway.foundation.paths import ProjectPaths
from apy_runway.stages.ingest.readers import (
    Source,
    check_json_files,
    expand_inputs,
    first_line,
    ident,
    load_charts,
    load_pools_metadata,
    parse_sql,
    sql_str,
    tabular_source,
)
from inference.contracts import POOLS_METADATA_FIELDS, RAW_COLUMNS, RAW_CONTRACT

COMMAND = "ingest"
DEFAULT_MEMORY_LIMIT = "3GB"
HELP = (
    "validate snapshots (CSV/parquet exports, /chart JSON) into the raw contract; "
    "quarantine bad rows"
)

CONTRACT = list(RAW_CONTRACT)

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

__all__ = ["CONTRACT", "POOLS_METADATA_FIELDS", "REASONS", "IngestResult", "ingest"]


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
        "(default: data/landing/generated_snapshots.parquet from `apy-runway generate`)",
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
        help=(
            "DuckDB memory limit for the work database (spills to disk beyond it; "
            f"default {DEFAULT_MEMORY_LIMIT})"
        ),
    )


def run(args: argparse.Namespace, paths: ProjectPaths) -> int:
    ingest(
        args.inputs,
        paths,
        pools_json=args.pools_json,
        memory_limit=args.memory_limit,
        sort=args.sort,
    )
    return 0


def default_inputs(paths: ProjectPaths) -> list[Path]:
    """The generated file, when no input is named."""
    default = paths.generated_snapshots
    if not default.exists():
        raise UserError(
            f"no input given and {default} does not exist: run `apy-runway generate` "
            "or pass CSV / parquet / JSON files"
        )
    return [default]


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


def _flagged_sql(source: Source) -> str:
    return sql("flag_rows", parsed_source=parse_sql(source))


def _keys_sql(source: Source) -> str:
    return sql(
        "insert_row_keys",
        flagged_source=_flagged_sql(source),
        parsed_values=", ".join(f"parsed_{c}" for c in RAW_COLUMNS),
    )


def _staged_sql(sort: bool) -> str:
    return sql(
        "staged_rows",
        contract_columns=", ".join(
            f"cast(parsed_rows.parsed_{name} as {kind}) as {ident(name)}" for name, kind in CONTRACT
        ),
        order_by=("order by parsed_rows.parsed_pool, parsed_rows.parsed_timestamp" if sort else ""),
    )


def _quarantine_sql(ingested_at: datetime) -> str:
    return sql(
        "quarantined_rows",
        text_columns=", ".join(f"input_rows.{ident(c)}" for c in RAW_COLUMNS),
        ingested_at=f"cast({sql_str(ingested_at.isoformat())} as timestamptz)",
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

    With no inputs, the generated file (data/landing/generated_snapshots.parquet).
    Both files are replaced atomically, and only when every input was readable:
    a missing or malformed input raises UserError and writes nothing. The staged
    rows are sorted by pool and timestamp unless sort=False.
    """
    started = time.perf_counter()
    paths.ensure()
    files = expand_inputs(list(inputs) or default_inputs(paths))
    ingested_at = datetime.now(UTC)
    work_dir = paths.data / ".ingest_work"
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    staged_tmp = paths.raw_snapshots.with_name(f".{paths.raw_snapshots.name}.{os.getpid()}.tmp")
    quarantine_tmp = paths.quarantined_rows.with_name(
        f".{paths.quarantined_rows.name}.{os.getpid()}.tmp"
    )
    con = duckdb.connect(str(work_dir / "work.duckdb"))
    try:
        con.execute("set TimeZone = 'UTC'")
        con.execute(f"set memory_limit = {sql_str(memory_limit)}")
        con.execute(f"set temp_directory = {sql_str(str(work_dir / 'spill'))}")
        load_pools_metadata(con, pools_json)

        tabular = [f for f in files if f.kind != "json"]
        charts = [f for f in files if f.kind == "json"]
        sources = [tabular_source(con, f) for f in tabular]
        if charts:
            check_json_files(con, charts, "/chart")
        log(f"ingest: {len(tabular)} CSV/parquet file(s), {len(charts)} /chart JSON file(s)")
        step = time.perf_counter()
        if charts:
            sources.append(load_charts(con, charts))
        con.execute(
            "create or replace temp view parsed_rows as "
            + "\nunion all by name\n".join(f"({_flagged_sql(s)})" for s in sources)
        )
        # one source at a time: a union of many scans would run them all at once
        con.execute(sql("create_row_keys"))
        for source in sources:
            try:
                con.execute(_keys_sql(source))
            except duckdb.OutOfMemoryException:  # reported once, by ingest()
                raise
            except duckdb.Error as error:
                raise UserError(f"cannot read {source.name}: {first_line(error)}") from None
        rows_in = con.execute("select count(*) from row_keys").fetchone()[0]
        log(f"read and parsed {rows_in:,} rows in {time.perf_counter() - step:.1f} s")

        step = time.perf_counter()
        con.execute(sql("verdicts"))
        log(f"checked duplicates and hours in {time.perf_counter() - step:.1f} s")

        step = time.perf_counter()
        rows_staged = con.execute(
            f"copy ({_staged_sql(sort)}) to {sql_str(str(staged_tmp))} "
            "(format parquet, compression zstd)"
        ).fetchone()[0]
        log(f"wrote {rows_staged:,} staged rows in {time.perf_counter() - step:.1f} s")
        step = time.perf_counter()
        # the quarantine re-reads only the files that have quarantined rows
        bad_files = {
            row[0] for row in con.execute("select distinct file_index from verdicts").fetchall()
        }
        bad_sources = [s for s in sources if s.file_indices & bad_files] or sources[:1]
        con.execute(
            "create or replace temp view input_rows as "
            + "\nunion all by name\n".join(f"({s.text_sql})" for s in bad_sources)
        )
        rows_quarantined = con.execute(
            f"copy ({_quarantine_sql(ingested_at)}) to {sql_str(str(quarantine_tmp))} "
            "(format parquet, compression zstd)"
        ).fetchone()[0]
        log(f"wrote {rows_quarantined:,} quarantined rows in {time.perf_counter() - step:.1f} s")
        if rows_in != rows_staged + rows_quarantined:
            raise AssertionError(
                f"accounting broken: rows in {rows_in} != staged {rows_staged} "
                f"+ quarantined {rows_quarantined}"
            )
        by_reason = dict.fromkeys(REASONS, 0)
        for reason, count in con.execute(
            "select reason, count(*) from verdicts group by reason"
        ).fetchall():
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
            f"({first_line(error)}); nothing was written. Raise --memory-limit "
            f"(measured: 231M hourly rows need about 3GB, see benchmarks/RESULTS.md) "
            f"or ingest the inputs in parts"
        ) from None
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
    log(
        f"rows in = rows staged + rows quarantined: {result.rows_in:,} = "
        f"{result.rows_staged:,} + {result.rows_quarantined:,}"
    )
    log(f"{result.pools:,} pools -> {paths.raw_snapshots}")
    if not result.rows_staged:
        log("warning: no row passed validation; see the quarantine reasons above")
    if result.rows_quarantined:
        log(f"quarantine -> {paths.quarantined_rows}")
