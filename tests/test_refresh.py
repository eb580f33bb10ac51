"""`apy-runway refresh` without dbt: the OS lock that refuses an overlapping
refresh (naming the holder's PID, released when the holder dies), and a
failing step that names itself and publishes nothing. The whole hourly run,
with dbt, is tests/test_live_loop.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from apy_runway.cli import main as cli_main
from apy_runway.cli.hourly import RefreshFailed, refresh, refresh_lock
from apy_runway.foundation.console import UserError

HOLD_LOCK = """
import fcntl, os, sys, time
handle = open(sys.argv[1], "a+")
fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
handle.seek(0); handle.truncate(); handle.write(f"{os.getpid()}\\n"); handle.flush()
print("locked", flush=True)
time.sleep(60)
"""


@pytest.fixture
def holder(project_home):
    """A process holding data/refresh.lock, as a running refresh would; killed
    (by its own id) when the test ends."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(project_home.refresh_lock)],
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
    assert f"PID {holder.pid}" in message and str(project_home.refresh_lock) in message
    assert "\n" not in message
    assert cli_main(["--home", str(project_home.home), "refresh"]) == 2
    assert f"PID {holder.pid}" in capsys.readouterr().err


def test_the_lock_is_released_when_its_holder_dies(project_home, holder):
    holder.kill()
    holder.wait(timeout=10)
    started = time.monotonic()
    with refresh_lock(project_home):
        assert project_home.refresh_lock.read_text().strip() == str(os.getpid())
    assert time.monotonic() - started < 5
    with refresh_lock(project_home):  # and released again on exit
        pass


def test_a_failing_step_names_itself_and_publishes_nothing(project_home, s3_client, moto_endpoint):
    bucket = "refresh-failure"
    s3_client.create_bucket(Bucket=bucket)
    # a landed file ingest cannot read
    (project_home.landing / "broken.csv").write_text("no,timestamp,here\n1,2,3\n")
    with pytest.raises(RefreshFailed) as error:
        refresh(project_home, bucket=bucket, endpoint_url=moto_endpoint)
    message = str(error.value)
    assert message.startswith("refresh failed at step ingest: ")
    assert "broken.csv" in message and "nothing was published" in message
    assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0

    # nothing landed at all: the build has nothing to build
    (project_home.landing / "broken.csv").unlink()
    with pytest.raises(RefreshFailed, match=r"^refresh failed at step build: .*holds no rows"):
        refresh(project_home, bucket=bucket, endpoint_url=moto_endpoint)
    assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    # the lock is free again after a failure
    with refresh_lock(project_home):
        pass
