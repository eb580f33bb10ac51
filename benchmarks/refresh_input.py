"""Landing file for the refresh benchmark: the history plus new snapshots.

python -m benchmarks.refresh_input SOURCE OUT HOURS
"""

from __future__ import annotations

import sys
from pathlib import Path


def with_new_snapshots(source: Path, out: Path, hours: int) -> int:
    """source + the last `hours` hours of snapshots repeated `hours` later (new rows)."""
    import duckdb

    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    con.execute(f"""
        copy (
            with src as (select * from read_parquet('{source}')),
            cut as (select max("timestamp") - interval {hours} hour as cut_at from src)
            select * from src
            union all
            select * replace ("timestamp" + interval {hours} hour as "timestamp")
            from src where "timestamp" > (select cut_at from cut)
        ) to '{out}' (format parquet)""")
    return con.execute(f"select count(*) from read_parquet('{out}')").fetchone()[0]


if __name__ == "__main__":
    print(with_new_snapshots(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])))
