"""The landing half of issue 20's soak test (item 11): 72 simulated hours of
collect + ingest (the refresh's first steps, no dbt) against the DefiLlama
stand-in, with a fault every few hours: a reply dated far in the past, an
unparseable reply, a 40% shrink, a slow-header server, a SIGKILL of an ingest
in mid-flight, a concurrent `ingest` process, and a pool that vanishes and
returns. At the end the raw store equals a never-faulted reference home fed
the good hours, and the manifest equals the store. (The publish, health and
ledger half needs dbt and the scorer every hour; see the report of issue 20.)"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from fixtures.soak import manifest_staged, stored

from apy_runway.foundation import lock
from apy_runway.foundation.console import UserError
from apy_runway.foundation.http import Client
from apy_runway.foundation.paths import project_paths
from apy_runway.landing.collect import collect
from apy_runway.landing.ingest import ingest
from apy_runway.landing.standin import PoolsServer, Reply, pools_item, pools_reply

HOURS = 72
FIRST = datetime(2026, 10, 1, tzinfo=UTC)
POOLS = [f"soak-{i:02d}" for i in range(20)]
VANISHING = "soak-03"
CLIENT = Client(delay=0, retries=1, backoff=0, timeout=1, deadline=1.5)
# hour index -> fault
FAULTS = {
    5: "far_past_date",
    10: "unparseable",
    15: "shrink_40",
    20: "slow_headers",
    25: "sigkill_ingest",
    30: "concurrent_ingest",
    **dict.fromkeys(range(40, 46), "vanished"),
}
LOST = {"unparseable", "slow_headers"}  # faults after which the hour has no snapshot


def items_of(index: int) -> list[dict]:
    pools = list(POOLS)
    if FAULTS.get(index) == "shrink_40":
        pools = pools[: int(len(pools) * 0.6)]
    if FAULTS.get(index) == "vanished":
        pools.remove(VANISHING)
    return [
        pools_item(pool, apy=3.0 + i + index / 100, tvlUsd=1e6 + 1000 * i + index)
        for i, pool in enumerate(pools)
    ]


def good_reply(index: int) -> Reply:
    hour = FIRST + timedelta(hours=index)
    return pools_reply(items_of(index), hour + timedelta(minutes=2))


def extra_csv(path):
    path.write_text("timestamp,pool,apy,tvlUsd\n2026-09-30T12:00:00Z,side-pool,4.2,5000\n")
    return path


def start_ingest(home, *argv: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "apy_runway.cli", "--home", str(home), "ingest", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def hour_of(paths, server, index: int, reply: Reply, slow: float = 0.0) -> bool:
    """collect + ingest of one simulated hour; False when collect refused it."""
    server.queue(reply)
    server.delay_headers = slow
    now = FIRST + timedelta(hours=index, minutes=5)
    try:
        collect(paths, base_url=server.url, client=CLIENT, backfill_max=0, now=now)
    except UserError:
        return False
    finally:
        ingest([], paths)
    return True


@pytest.fixture
def waiting_writers():
    """In-process writers wait for a concurrent one, as the timers' --wait does."""
    lock.set_default_wait(120)
    yield
    lock.set_default_wait(0)


def test_72_faulted_hours_land_exactly_the_good_hours(tmp_path, waiting_writers):
    faulted, reference = project_paths(tmp_path / "faulted"), project_paths(tmp_path / "ref")
    faulted.ensure(), reference.ensure()
    side = extra_csv(tmp_path / "side.csv")
    landed_hours = 0
    with PoolsServer() as server, PoolsServer() as clean:
        for index in range(HOURS):
            fault = FAULTS.get(index)
            hour = FIRST + timedelta(hours=index)
            reply, slow, process = good_reply(index), 0.0, None
            if fault == "far_past_date":
                reply = pools_reply(items_of(index), hour - timedelta(hours=72))
            elif fault == "unparseable":
                reply = Reply(200, b'{"status": "success", "data": [', hour)
            elif fault == "slow_headers":
                slow = 5.0
            elif fault == "concurrent_ingest":
                process = start_ingest(faulted.home, str(side), "--wait", "120")
            ok = hour_of(faulted, server, index, reply, slow)
            assert ok == (fault not in LOST), (index, fault)
            if process is not None:
                _, err = process.communicate(timeout=120)
                assert process.returncode == 0, err[-2000:]
                ingest([side], reference)
            if fault == "sigkill_ingest":
                # a second hour's file waits; an ingest of it is killed mid-flight,
                # then the next ingest (under the lock) cleans up and lands it
                server.queue(good_reply(index))
                landed = faulted.landed_pools
                before = set(landed.glob("*.json.gz"))
                collect(
                    faulted,
                    base_url=server.url,
                    client=CLIENT,
                    backfill_max=0,
                    now=hour + timedelta(minutes=6),
                )
                assert set(landed.glob("*.json.gz")) == before  # the same hour: kept
                late = side.with_name("late.csv")
                rows = [f"2026-09-29T{h:02d}:00:00Z,late-pool,{h / 10},{h}" for h in range(24)]
                late.write_text("timestamp,pool,apy,tvlUsd\n" + "\n".join(rows) + "\n")
                victim = start_ingest(faulted.home, str(late))
                time.sleep(0.8)
                victim.send_signal(signal.SIGKILL)
                victim.wait(timeout=30)
                ingest([late], faulted)
                ingest([late], reference)
            if ok:
                landed_hours += 1
                assert hour_of(reference, clean, index, good_reply(index))
    assert landed_hours == HOURS - len(LOST)
    rows = stored(faulted)
    assert rows == stored(reference)
    assert manifest_staged(faulted) == len(rows)
    # the vanished pool is missing exactly in its hours and back afterwards
    vanished_hours = {r[1] for r in rows if r[0] == VANISHING}
    assert len(vanished_hours) == landed_hours - 6
