"""`make bench`: measure the pipeline at scale against the pandas prototype.

    python -m benchmarks.run [--scales 120,1200] [--days 365] [--sections scale,refresh,train,inference]

Every figure is measured in a child process (wall time, peak RSS via wait4) and
appended as one JSON line to benchmarks/results/results.jsonl; RESULTS.md is
written by hand from those lines (machine, command, figures). The default run
(1M and 10M rows) takes about 10 minutes on 2 cores; 50M rows and DefiLlama's
real scale (~350M rows) are a flag away:  --scales 6000  /  --scales 20000 --days 730.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from apy_runway.paths import REPO_ROOT
from benchmarks.measure import Measurement, measure, python_argv

RESULTS = Path(__file__).resolve().parent / "results" / "results.jsonl"


def cli(home: Path, *args: str) -> list[str]:
    return python_argv("apy_runway.cli", "--home", str(home), *args)


def record(section: str, scale: str, **figures) -> dict:
    row = {"section": section, "scale": scale, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "machine": f"{platform.machine()} {os.cpu_count()} cpu", **figures}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as handle:
        handle.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)
    return row


def figures(m: Measurement) -> dict:
    return {"wall_s": round(m.wall_s, 2), "peak_rss_mb": round(m.peak_rss_mb, 1)}


def generated(workdir: Path, pools: int, days: int, log: Path) -> Path:
    """Generate (once, cached) hourly data for pools x days."""
    path = workdir / f"generated_{pools}x{days}.parquet"
    if not path.exists():
        m = measure(cli(workdir / "gen-home", "generate", "--pools", str(pools), "--days", str(days),
                        "--out", str(path)), log_path=log)
        record("generate", f"{pools}x{days}", **figures(m))
    return path


def parquet_rows(path: Path) -> int:
    import duckdb

    return duckdb.connect().execute(f"select count(*) from read_parquet('{path}')").fetchone()[0]


def bench_scale(workdir: Path, pools: int, days: int, log: Path, pandas: bool = True) -> None:
    scale = f"{pools}x{days}"
    source = generated(workdir, pools, days, log)
    rows = parquet_rows(source)
    home = workdir / f"home_{scale}"
    ingest = measure(cli(home, "ingest", str(source)), log_path=log)
    build = measure(cli(home, "build"), log_path=log)
    engine = measure(python_argv("benchmarks.engine_only", str(home)), log_path=log)
    engine_s = json.loads(Path(log).read_text().strip().splitlines()[-1])["engine_only_s"]
    ours_s = ingest.wall_s + build.wall_s
    ours_mb = max(ingest.peak_rss_mb, build.peak_rss_mb)
    row = {"rows": rows, "ingest": figures(ingest), "dbt_build": figures(build),
           "end_to_end_s": round(ours_s, 2), "end_to_end_peak_mb": round(ours_mb, 1),
           "rows_per_s": round(rows / ours_s), "engine_only_s": engine_s,
           "engine_only_process": figures(engine)}
    if pandas:
        out = workdir / f"pandas_{scale}.parquet"
        proto = measure(python_argv("benchmarks.pandas_prototype", str(source), str(out)), log_path=log)
        row["pandas"] = figures(proto)
        row["speedup_end_to_end"] = round(proto.wall_s / ours_s, 2)
        row["speedup_engine_only"] = round(proto.wall_s / engine_s, 2)
        row["memory_ratio"] = round(ours_mb / proto.peak_rss_mb, 3)
        out.unlink(missing_ok=True)
    record("scale", scale, **row)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="120,1200", help="comma-separated pool counts (hourly, --days each)")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--sections", default="scale", help="scale (more sections: see RESULTS.md)")
    parser.add_argument("--no-pandas", action="store_true", help="skip the pandas anchor (e.g. at 350M rows)")
    parser.add_argument("--workdir", default=str(REPO_ROOT / "data" / "bench"))
    args = parser.parse_args(argv)
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "bench.log"
    sections = set(args.sections.split(","))
    for pools in (int(p) for p in args.scales.split(",")):
        if "scale" in sections:
            bench_scale(workdir, pools, args.days, log, pandas=not args.no_pandas)
    return 0


if __name__ == "__main__":
    sys.exit(main())
