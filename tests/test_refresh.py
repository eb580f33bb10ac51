"""`apy-runway refresh` without dbt: the home's writer lock that refuses an
overlapping writer (naming the holder's PID and command, released when the
holder dies, waited for with --wait), and a
failing step that names itself and publishes nothing. The whole hourly run,
with dbt, is tests/test_live_loop.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from apy_runway.cli import main as cli_main
from apy_runway.cli.hourly import RefreshFailed, refresh
from apy_runway.foundation.console import UserError
from apy_runway.foundation.lock import writer_lock

HOLD_LOCK = """
import fcntl, os, sys, time
handle = open(sys.argv[1], "a+")
fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
handle.seek(0); handle.truncate(); handle.write(f"{os.getpid()} holder-command\\n"); handle.flush()
print("locked", flush=True)
time.sleep(float(sys.argv[2]) if len(sys.argv) > 2 else 60)
"""


@pytest.fixture
def holder(project_home):
    """A process holding data/writer.lock, as a running writer would; killed
    (by its own id) when the test ends."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(project_home.writer_lock)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "locked"
    yield process
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)


def test_an_overlapping_refresh_is_refused_naming_the_holders_pid(project_home, holder, capsys):
    with pytest.raises(UserError) as error:
        refresh(project_home)
    message = str(error.value)
    assert f"PID {holder.pid} (holder-command)" in message
    assert str(project_home.writer_lock) in message
    assert "\n" not in message
    # every writer command is refused the same way, naming the holder
    writers = (["refresh"], ["ingest"], ["collect"], ["build"], ["backtest"], ["run-all"])
    for command in (*writers, ["ledger", "sync", "--from", "x"]):
        assert cli_main(["--home", str(project_home.home), *command]) == 2
        err = capsys.readouterr().err
        assert f"PID {holder.pid} (holder-command)" in err, command
        assert f"apy-runway {command[0]} did nothing" in err


def test_a_writer_waits_for_the_holder_with_wait(project_home):
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(project_home.writer_lock), "1.5"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == "locked"
        refused = pytest.raises(UserError, match=r"after waiting 0\.2 s")
        with refused, writer_lock(project_home.writer_lock, "a writer", wait=0.2):
            pass
        started = time.monotonic()
        with writer_lock(project_home.writer_lock, "a writer", wait=30):
            waited = time.monotonic() - started
        # the lock came only when the holder let go: it exits cleanly just after
        assert process.wait(timeout=10) == 0
        assert waited > 0.5
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def test_the_lock_is_released_when_its_holder_dies(project_home, holder):
    holder.kill()
    holder.wait(timeout=10)
    started = time.monotonic()
    with writer_lock(project_home.writer_lock, "a test"):
        assert project_home.writer_lock.read_text().split()[0] == str(os.getpid())
    assert time.monotonic() - started < 5
    with writer_lock(project_home.writer_lock, "a test"):  # and released again on exit
        pass


def test_a_failing_step_names_itself_and_publishes_nothing(project_home, s3_client, moto_endpoint):
    bucket = "refresh-failure"
    s3_client.create_bucket(Bucket=bucket)
    # a landed file ingest cannot read is set aside, not a wall: the refresh
    # goes on, and here the build finds nothing landed at all
    broken = project_home.landing / "broken.csv"
    broken.write_text("no,timestamp,here\n1,2,3\n")
    with pytest.raises(RefreshFailed) as error:
        refresh(project_home, bucket=bucket, endpoint_url=moto_endpoint)
    message = str(error.value)
    assert message.startswith("refresh failed at step build: ") and "holds no rows" in message
    assert "nothing was published" in message
    assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    aside = project_home.landing_refused / "broken.csv"
    assert not broken.exists() and aside.read_text() == "no,timestamp,here\n1,2,3\n"
    reason = aside.with_name("broken.csv.reason.txt").read_text()
    assert "missing required column(s) pool, apy" in reason

    # set aside, it is not offered again: the same failure, nothing new to land
    with pytest.raises(RefreshFailed, match=r"^refresh failed at step build: .*holds no rows"):
        refresh(project_home, bucket=bucket, endpoint_url=moto_endpoint)
    assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    assert aside.exists()
    # the lock is free again after a failure
    with writer_lock(project_home.writer_lock, "a test"):
        pass
