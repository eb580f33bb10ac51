"""The hourly refresh in one long-lived process (`apy-runway refresh --every`).

python -m benchmarks.warm_refresh HOME SOURCE HOURS [--backfill POOLS DAYS]

One DbtSession: lands the history's last hour again HOURS later and refreshes
(this first build parses the project), then the same one hour later and
refreshes again, warm; with --backfill, then lands POOLS new pools with DAYS
of daily history each (ids backfill-warm-*) and refreshes, warm. Prints one
JSON line: each refresh's seconds and what its summary said, and the
session's parse count.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from apy_runway.cli.hourly import refresh
from apy_runway.foundation.paths import project_paths
from apy_runway.warehouse.session import DbtSession
from benchmarks.refresh_input import backfill_snapshots, hour_after


def main(home: Path, source: Path, hours: int, backfill: tuple[int, int] | None = None) -> dict:
    paths = project_paths(home).ensure()
    landing = paths.landing / "bench"
    landing.mkdir(parents=True, exist_ok=True)
    session = DbtSession()
    figures: dict = {}
    for label, shift in (("first", hours), ("warm", hours + 1)):
        hour_after(source, landing / f"hour_after_{shift}.parquet", shift)
        began = time.perf_counter()
        summary = refresh(paths, session=session)
        figures[f"{label}_s"] = round(time.perf_counter() - began, 3)
        figures[f"{label}_summary"] = summary.line()
    if backfill:
        pools, days = backfill
        figures["backfill_rows"] = backfill_snapshots(
            source, landing / "backfill_warm.parquet", pools, days, prefix="backfill-warm-"
        )
        began = time.perf_counter()
        summary = refresh(paths, session=session)
        figures["backfill_s"] = round(time.perf_counter() - began, 3)
        figures["backfill_summary"] = summary.line()
    figures["parses"] = session.parses
    return figures


if __name__ == "__main__":
    at = sys.argv.index("--backfill") if "--backfill" in sys.argv else None
    print(
        json.dumps(
            main(
                Path(sys.argv[1]),
                Path(sys.argv[2]),
                int(sys.argv[3]),
                (int(sys.argv[at + 1]), int(sys.argv[at + 2])) if at else None,
            )
        )
    )
