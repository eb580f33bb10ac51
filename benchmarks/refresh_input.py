"""New snapshots for the refresh benchmark: the history's last hours again,
shifted later, as a file of their own (what a refresh lands).

python -m benchmarks.refresh_input SOURCE OUT HOURS [--with-history]
python -m benchmarks.refresh_input SOURCE OUT --backfill POOLS DAYS [PREFIX]
python -m benchmarks.refresh_input SOURCE OUT --hour-after HOURS
"""

from __future__ import annotations

import sys
from pathlib import Path


def new_snapshots(source: Path, out: Path, hours: int, with_history: bool = False) -> int:
    """The last `hours` hours of snapshots repeated `hours` later (new rows), alone
    or after the whole of `source` (`with_history`)."""
    import duckdb

    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    con.execute("set preserve_insertion_order = false")
    # the cut first, from the timestamp column alone: a CTE over the source read
    # twice is materialised, spilling the whole history to DuckDB's temp folder
    cut_at = con.execute(
        f"""select max("timestamp") - interval {hours} hour from read_parquet('{source}')"""
    ).fetchone()[0]
    con.execute("set variable cut_at = ?", [cut_at])
    history = f"select * from read_parquet('{source}') union all" if with_history else ""
    con.execute(f"""
        copy (
            {history}
            select * replace ("timestamp" + interval {hours} hour as "timestamp")
            from read_parquet('{source}') where "timestamp" > getvariable('cut_at')
        ) to '{out}' (format parquet)""")
    return con.execute(f"select count(*) from read_parquet('{out}')").fetchone()[0]


def with_new_snapshots(source: Path, out: Path, hours: int) -> int:
    """source + the last `hours` hours of snapshots repeated `hours` later."""
    return new_snapshots(source, out, hours, with_history=True)


def split_by_month(source: Path, folder: Path) -> int:
    """The history as one file per calendar month (how a live store lands it:
    many files, none holding the whole history). Returns the file count."""
    import duckdb

    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    con.execute("set preserve_insertion_order = false")
    con.execute(f"""
        copy (select *, strftime("timestamp", '%Y-%m') as month from read_parquet('{source}'))
        to '{folder}' (format parquet, partition_by (month), filename_pattern 'history_{{i}}')
    """).fetchall()
    return len(list(folder.glob("*/*.parquet")))


def backfill_snapshots(
    source: Path, out: Path, pools: int, days: int, prefix: str = "backfill-"
) -> int:
    """`pools` new pools (copies of the first ones, ids `prefix` + theirs) with
    `days` daily snapshots each, ending on the history's last day: DefiLlama's
    /chart back-fill of pools a refresh has never seen. Returns the row count."""
    import duckdb

    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    con.execute(f"""
        copy (
            with templates as (
                -- the newest snapshot of each of the first pools alive on the last day
                select * from read_parquet('{source}')
                where "timestamp" > (select max("timestamp") from read_parquet('{source}'))
                    - interval 1 day
                qualify row_number() over (partition by pool order by "timestamp" desc) = 1
                order by pool limit {int(pools)}
            )
            select * exclude (d) replace (
                '{prefix.replace("'", "''")}' || pool as pool,
                "timestamp" - to_days(d) as "timestamp",
                apy * (1 + 0.1 * sin(d / 7)) as apy)
            from templates, range(0, {int(days)}) as days (d)
        ) to '{out}' (format parquet)""")
    return con.execute(f"select count(*) from read_parquet('{out}')").fetchone()[0]


def hour_after(source: Path, out: Path, hours: int) -> int:
    """The history's last hour of snapshots again, `hours` later (one new hour)."""
    import duckdb

    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    con.execute(f"""
        copy (
            select * replace ("timestamp" + to_hours({int(hours)}) as "timestamp")
            from read_parquet('{source}')
            where "timestamp" > (select max("timestamp") from read_parquet('{source}'))
                - interval 1 hour
        ) to '{out}' (format parquet)""")
    return con.execute(f"select count(*) from read_parquet('{out}')").fetchone()[0]


if __name__ == "__main__":
    if "--backfill" in sys.argv:
        at = sys.argv.index("--backfill")
        print(
            backfill_snapshots(
                Path(sys.argv[1]),
                Path(sys.argv[2]),
                int(sys.argv[at + 1]),
                int(sys.argv[at + 2]),
                *sys.argv[at + 3 : at + 4],
            )
        )
        sys.exit(0)
    if "--hour-after" in sys.argv:
        at = sys.argv.index("--hour-after")
        print(hour_after(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[at + 1])))
        sys.exit(0)
    print(
        new_snapshots(
            Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), "--with-history" in sys.argv
        )
    )
