"""`make bench`: measure the pipeline at scale against the pandas prototype.

    python -m benchmarks.run [--scales 120,1200] [--days 365] [--sections scale,refresh,train,inference]

Every figure is measured in its own child process (wall time, peak RSS via
wait4, which includes dbt's subprocess) and appended as one JSON line, with the
1-minute load average at its start and end, to benchmarks/results/results.jsonl;
RESULTS.md is written by hand from those lines (machine, command, figures).
The default run (1M and 10M rows, scale section) takes about 10 minutes on 2
cores; 50M rows and DefiLlama's real scale (~350M rows) are a flag away:
--scales 6000  /  --scales 20000 --days 730 --no-pandas --no-engine --ingest-args=--no-sort.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

from apy_runway.paths import REPO_ROOT
from benchmarks.measure import Measurement, measure, python_argv

RESULTS = Path(__file__).resolve().parent / "results" / "results.jsonl"
SECTIONS = ("scale", "refresh", "train", "inference")


def cli(home: Path, *args: str) -> list[str]:
    return python_argv("apy_runway.cli", "--home", str(home), *args)


def machine() -> str:
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.machine()} {os.cpu_count()} cpu {memory_gb:.0f} GB, Python {platform.python_version()}"


def record(section: str, scale: str, **figures) -> dict:
    row = {"section": section, "scale": scale, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "machine": machine(), "loadavg_1m_end": round(os.getloadavg()[0], 2), **figures}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as handle:
        handle.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)
    return row


def figures(m: Measurement) -> dict:
    return {"wall_s": round(m.wall_s, 2), "peak_rss_mb": round(m.peak_rss_mb, 1),
            "loadavg_1m_start": m.loadavg_start}


def last_json(log: Path) -> dict:
    """The last JSON line a benchmark child printed."""
    for line in reversed(log.read_text().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"no JSON result in {log}")


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


def bench_scale(workdir: Path, pools: int, days: int, log: Path, pandas: bool = True,
                engine: bool = True, ingest_args: list[str] | None = None) -> dict:
    scale = f"{pools}x{days}"
    source = generated(workdir, pools, days, log)
    rows = parquet_rows(source)
    home = workdir / f"home_{scale}"
    ingest = measure(cli(home, "ingest", *(ingest_args or []), str(source)), log_path=log)
    build = measure(cli(home, "build"), log_path=log)
    ours_s = ingest.wall_s + build.wall_s
    ours_mb = max(ingest.peak_rss_mb, build.peak_rss_mb)
    row = {"rows": rows, "ingest_args": ingest_args or [], "ingest": figures(ingest),
           "dbt_build": figures(build), "end_to_end_s": round(ours_s, 2),
           "end_to_end_peak_mb": round(ours_mb, 1), "rows_per_s": round(rows / ours_s)}
    if engine:
        engine_log = workdir / f"engine_{scale}.log"
        engine_log.unlink(missing_ok=True)
        m = measure(python_argv("benchmarks.engine_only", str(home)), log_path=engine_log)
        row["engine_only"] = {**last_json(engine_log), **figures(m)}
    if pandas:
        out = workdir / f"pandas_{scale}.parquet"
        proto = measure(python_argv("benchmarks.pandas_prototype", str(source), str(out)), log_path=log)
        row["pandas"] = figures(proto)
        row["speedup_end_to_end"] = round(proto.wall_s / ours_s, 2)
        row["memory_ratio_end_to_end"] = round(ours_mb / proto.peak_rss_mb, 3)
        if engine:
            row["speedup_engine_only"] = round(proto.wall_s / row["engine_only"]["engine_s"], 2)
            row["memory_ratio_engine_only"] = round(row["engine_only"]["peak_rss_mb"] / proto.peak_rss_mb, 3)
        out.unlink(missing_ok=True)
    return record("scale", scale, **row)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="120,1200", help="comma-separated pool counts (hourly, --days each)")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--sections", default="scale", help=f"comma-separated, of {','.join(SECTIONS)}")
    parser.add_argument("--no-pandas", action="store_true", help="skip the pandas anchor (e.g. at 350M rows)")
    parser.add_argument("--no-engine", action="store_true", help="skip the engine-only rerun of the SQL")
    parser.add_argument("--ingest-args", default="", help="extra `apy-runway ingest` arguments, e.g. --no-sort")
    parser.add_argument("--workdir", default=str(REPO_ROOT / "data" / "bench"))
    args = parser.parse_args(argv)
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "bench.log"
    sections = set(args.sections.split(","))
    unknown = sections - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")
    for pools in (int(p) for p in args.scales.split(",")):
        if "scale" in sections:
            bench_scale(workdir, pools, args.days, log, pandas=not args.no_pandas,
                        engine=not args.no_engine, ingest_args=shlex.split(args.ingest_args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
