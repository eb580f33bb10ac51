"""Readers never block the loop (issue 20, item 1): a reader (board, show,
score) opens the warehouse read-only, a shared DuckDB file lock that dbt's
read-write open fails on. A dbt build waits for the reader to close it, and
after its bound refuses with one line naming the reader's PID. The reader here
is another process holding a read-only DuckDB connection."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import pytest

from apy_runway.foundation.console import UserError
from apy_runway.landing.ingest import ingest
from apy_runway.warehouse.dbt import run_dbt, wait_for_readers

pytestmark = pytest.mark.slow

READER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
con.execute("select 1").fetchone()
print("open", flush=True)
time.sleep(float(sys.argv[2])) if sys.argv[2] != "stdin" else sys.stdin.read()
con.close()
"""


def start_reader(warehouse, hold: str) -> subprocess.Popen:
    """A process holding the warehouse open read-only for `hold` seconds (or
    until its stdin closes); returns once the file is open."""
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(warehouse), hold],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert reader.stdout.readline().strip() == "open"
    return reader


@pytest.fixture
def warehouse(project_home, tmp_path):
    csv = tmp_path / "rows.csv"
    csv.write_text(
        "timestamp,pool,chain,project,symbol,apy,tvlUsd\n"
        + "".join(
            f"2026-10-01T{h:02d}:00:00Z,p-1,Ethereum,aave-v3,USDC,4.0,1000\n" for h in range(4)
        )
    )
    ingest([csv], project_home)
    duckdb.connect(str(project_home.warehouse)).close()  # an existing warehouse file
    return project_home


def test_a_build_waits_for_a_reader_to_close_the_warehouse(warehouse, capfd):
    reader = start_reader(warehouse.warehouse, "2")
    try:
        assert reader.poll() is None  # the reader holds the file as dbt starts
        run_dbt(warehouse, "run", select="stg_defillama__pool_snapshots", quiet=True)
    finally:
        reader.communicate(timeout=60)
    assert reader.returncode == 0
    assert f"the warehouse is open in PID {reader.pid}" in capfd.readouterr().err
    with duckdb.connect(str(warehouse.warehouse), read_only=True) as con:
        assert con.execute("select count(*) from stg_defillama__pool_snapshots").fetchone() == (4,)


def test_a_reader_that_stays_is_named_after_the_bound(warehouse):
    reader = start_reader(warehouse.warehouse, "stdin")
    try:
        with pytest.raises(UserError) as refused:
            wait_for_readers(warehouse.warehouse, 0.5)
    finally:
        reader.communicate(input="", timeout=60)
    message = str(refused.value)
    assert f"is held open by PID {reader.pid}" in message
    assert str(warehouse.warehouse) in message and "after waiting 0.5 s" in message
    wait_for_readers(warehouse.warehouse, 0.5)  # closed: no wait, no error
