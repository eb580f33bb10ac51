"""What was tried on the slowest SQL: the daily downsampling as one grouped
arg_max instead of a row_number() window over every hourly snapshot.

    python -m benchmarks.sql_variants HOME

Runs, in a scratch copy of HOME's staging view, dbt's compiled
int_pool_snapshots_downsampled_to_daily (daily_downsampling = last) and the
variant, checks both give the same rows (EXCEPT ALL both ways) and prints the
seconds of each. A prototype for the dbt model's owner, not used by the build.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from apy_runway.foundation.paths import project_paths
from apy_runway.warehouse.dbt import dbt_target_dir

VARIANT = """
    with snapshots as (select * from {staging}),
    newest as (
        select
            pool_id,
            snapshot_date,
            arg_max(struct_pack(chain, project, symbol, pool_meta, il_risk, exposure,
                                apy, apy_base, apy_reward, tvl_usd, is_stablecoin),
                    snapshot_at) as last_row,
            count(*) as snapshot_count,
            max(snapshot_at) as last_snapshot_at
        from snapshots
        group by pool_id, snapshot_date
    )
    select
        pool_id,
        last_row.chain, last_row.project, last_row.symbol, last_row.pool_meta,
        last_row.il_risk, last_row.exposure,
        last_row.apy, last_row.apy_base, last_row.apy_reward, last_row.tvl_usd,
        snapshot_count,
        last_row.is_stablecoin,
        snapshot_date,
        last_snapshot_at
    from newest
"""


def main(argv: list[str]) -> int:
    paths = project_paths(argv[0])
    manifest = json.loads((dbt_target_dir(paths) / "manifest.json").read_text())
    nodes = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    staging, daily = (
        nodes["stg_defillama__pool_snapshots"],
        nodes["int_pool_snapshots_downsampled_to_daily"],
    )
    with tempfile.TemporaryDirectory(dir=paths.data) as scratch:
        con = duckdb.connect(str(Path(scratch) / paths.warehouse.name))
        con.execute("set TimeZone = 'UTC'; set threads = 2")
        con.execute(f"create view {staging['relation_name']} as ({staging['compiled_code']})")
        figures = {}
        for name, sql in (
            ("row_number_window (dbt model)", daily["compiled_code"]),
            ("grouped arg_max (variant)", VARIANT.format(staging=staging["relation_name"])),
        ):
            table = "current" if name.startswith("row") else "variant"
            started = time.perf_counter()
            con.execute(f"create table {table} as ({sql})")
            figures[name] = round(time.perf_counter() - started, 2)
        differ = con.execute(
            "select count(*) from ((select * from current except all select * from variant) "
            "union all (select * from variant except all select * from current))"
        ).fetchone()[0]
        rows = con.execute("select count(*) from current").fetchone()[0]
        con.close()
    print(json.dumps({"daily_rows": rows, "rows_that_differ": differ, "seconds": figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
