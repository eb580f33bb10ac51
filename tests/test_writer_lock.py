"""One writer at a time: concurrent `ingest`s, and `ingest` beside `refresh`,
as real processes on one home, lose no landed hour (issue 20, item 1). The
second writer waits (--wait) on the home's writer lock; at the end every
file is in the manifest and the manifest's staged rows equal the store's."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from apy_runway.foundation.paths import ProjectPaths

TRIALS = 20
CLI = [sys.executable, "-m", "apy_runway.cli"]


def write_hour(path: Path, pool: str, hours: int = 3) -> Path:
    """A small CSV of one pool's `hours` hourly rows (distinct pools: no row
    supersedes another, so the store must hold every row)."""
    lines = ["timestamp,pool,apy,tvlUsd"]
    lines += [f"2026-11-30T{h:02d}:00:00Z,{pool},{3 + h / 10},{1000 + h}" for h in range(hours)]
    path.write_text("\n".join(lines) + "\n")
    return path


def start(home: ProjectPaths, *argv: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*CLI, "--home", str(home.home), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen) -> str:
    _out, err = process.communicate(timeout=300)
    assert process.returncode == 0, f"{process.args}: exit {process.returncode}\n{err[-3000:]}"
    return err


def manifest(home: ProjectPaths) -> list[dict]:
    return [json.loads(line) for line in home.manifest.read_text().splitlines() if line]


def store_rows(home: ProjectPaths) -> dict[str, int]:
    pattern = str(home.raw_store / "*" / "*.parquet")
    with duckdb.connect() as con:
        return dict(
            con.execute(
                f"select pool, count(*) from read_parquet('{pattern}') group by all"
            ).fetchall()
        )


def assert_manifest_equals_store(home: ProjectPaths, pools: set[str], rows_each: int) -> None:
    entries = manifest(home)
    assert all(e["status"] == "landed" for e in entries)
    assert [e["landing_order"] for e in entries] == list(range(1, len(entries) + 1))
    stored = store_rows(home)
    assert set(stored) == pools
    assert all(count == rows_each for count in stored.values()), stored
    assert sum(e["rows_staged"] for e in entries) == sum(stored.values())
    assert len({e["name"] for e in entries}) == len(entries) == len(pools)


def test_two_concurrent_ingests_lose_nothing(project_home, tmp_path):
    pools = set()
    waited = 0
    for trial in range(TRIALS):
        files = [write_hour(tmp_path / f"t{trial}_{side}.csv", f"p{trial}{side}") for side in "ab"]
        pools |= {f"p{trial}a", f"p{trial}b"}
        processes = [start(project_home, "ingest", str(f), "--wait", "120") for f in files]
        errors = [finish(p) for p in processes]
        waited += sum("waiting up to" in e for e in errors)
    assert_manifest_equals_store(project_home, pools, rows_each=3)
    assert waited >= 1  # the lock was contended at least once (they really overlapped)


def test_ingest_beside_refresh_loses_nothing(project_home, tmp_path):
    # a store to refresh, then refreshes (collect-free: landing files) in a row
    pools = {"seed"}
    finish(start(project_home, "ingest", str(write_hour(tmp_path / "seed.csv", "seed"))))
    landing = project_home.landing / "hours"
    landing.mkdir(parents=True)
    write_hour(landing / "r0.csv", "r0")
    pools.add("r0")
    refreshes = [start(project_home, "refresh", "--wait", "300")]
    ingests = []
    for trial in range(TRIALS):
        ingests.append(
            start(
                project_home,
                "ingest",
                str(write_hour(tmp_path / f"i{trial}.csv", f"i{trial}")),
                "--wait",
                "300",
            )
        )
        pools.add(f"i{trial}")
        if trial == TRIALS // 2:  # a second refresh, with a new landing file, among them
            write_hour(landing / "r1.csv", "r1")
            pools.add("r1")
            refreshes.append(start(project_home, "refresh", "--wait", "300"))
        time.sleep(0.2)
    errors = [finish(p) for p in ingests + refreshes]
    assert any("waiting up to" in e for e in errors)
    assert_manifest_equals_store(project_home, pools, rows_each=3)
