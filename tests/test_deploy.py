"""deploy/: the systemd service + timer that run `apy-runway refresh` hourly
on a small host, and the cron equivalent. systemd-analyze verifies the units
(when the machine has it); both schedules run the same command."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from apy_runway.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string((DEPLOY / name).read_text())
    return parser


def refresh_argv(command: str) -> list[str]:
    """The apy-runway arguments of a shell command line, the env vars filled."""
    words = shlex.split(command.replace('"$APY_RUNWAY_BUCKET"', "bucket-x"))
    if words[0].endswith("/sh") and words[1] == "-c":  # systemd: /bin/sh -c '...'
        words = shlex.split(words[2])
    start = next(i for i, w in enumerate(words) if w.endswith("/apy-runway"))
    return [w for w in words[start + 1 :] if w != "$APY_RUNWAY_REFRESH_ARGS" and w != ">>"][:7]


def test_the_service_runs_the_hourly_refresh_and_the_timer_fires_every_hour():
    service, timer = unit("apy-runway-refresh.service"), unit("apy-runway-refresh.timer")
    exec_start = service["Service"]["ExecStart"]
    assert refresh_argv(exec_start) == [
        "refresh",
        "--collect",
        "--mature-labels",
        "--wait",
        "600",
        "--bucket",
        "bucket-x",
    ]
    assert service["Service"]["Type"] == "oneshot"
    assert service["Service"]["EnvironmentFile"] == "/etc/apy-runway/refresh.env"
    # DuckDB's 1GB default fits under the unit's memory cap
    assert service["Service"]["MemoryMax"] == "2G"
    assert re.fullmatch(r"\*-\*-\* \*:\d\d:00", timer["Timer"]["OnCalendar"])
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Timer"]["Unit"] == "apy-runway-refresh.service"
    # the command line parses: refresh --collect --bucket is what `apy-runway` takes
    args = build_parser().parse_args(refresh_argv(exec_start))
    assert (args.command, args.collect, args.bucket) == ("refresh", True, "bucket-x")
    # it waits for another writer (a training build, a manual ingest) up to 10 minutes
    assert args.wait == 600
    # and once a day it matures the track record (labels, ledger sync, outcomes)
    assert args.mature_labels


def test_the_warm_service_runs_the_same_refresh_every_hour_in_one_process():
    warm = unit("apy-runway-refresh-warm.service")["Service"]
    timed = unit("apy-runway-refresh.service")["Service"]
    words = shlex.split(shlex.split(warm["ExecStart"])[2].replace('"$APY_RUNWAY_BUCKET"', "b"))
    assert words[words.index("--every") + 1] == "1h"
    assert refresh_argv(warm["ExecStart"].replace(" --every 1h", "")) == refresh_argv(
        timed["ExecStart"]
    )
    assert (warm["Type"], warm["Restart"]) == ("simple", "always")
    assert warm["EnvironmentFile"] == timed["EnvironmentFile"]
    assert warm["MemoryMax"] == timed["MemoryMax"]
    args = build_parser().parse_args([*refresh_argv(warm["ExecStart"]), "--every", "1h"])
    assert args.every == 3600 and args.mature_labels and args.wait == 600


def test_the_cron_line_runs_the_same_command_every_hour():
    lines = [
        line
        for line in (DEPLOY / "crontab").read_text().splitlines()
        if line.strip() and not line.startswith("#") and "=" not in line.split()[0]
    ]
    [entry] = lines
    minute, hour, day, month, weekday, command = entry.split(maxsplit=5)
    assert (hour, day, month, weekday) == ("*", "*", "*", "*") and minute.isdigit()
    service = unit("apy-runway-refresh.service")["Service"]["ExecStart"]
    assert refresh_argv(command) == refresh_argv(service)
    # the environment file is exported to the command
    assert command.startswith("set -a && . /etc/apy-runway/refresh.env && set +a")
    example = (DEPLOY / "refresh.env.example").read_text()
    assert "APY_RUNWAY_BUCKET=" in example


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_accepts_the_units(tmp_path):
    for name in (
        "apy-runway-refresh.service",
        "apy-runway-refresh.timer",
        "apy-runway-refresh-warm.service",
    ):
        shutil.copy(DEPLOY / name, tmp_path / name)
    result = subprocess.run(
        [
            "systemd-analyze",
            "verify",
            str(tmp_path / "apy-runway-refresh.service"),
            str(tmp_path / "apy-runway-refresh.timer"),
            str(tmp_path / "apy-runway-refresh-warm.service"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    calendar = subprocess.run(
        [
            "systemd-analyze",
            "calendar",
            "--iterations",
            "2",
            unit("apy-runway-refresh.timer")["Timer"]["OnCalendar"],
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    elapses = re.findall(r"(?:Next elapse|Iter\. #2): \w+ (\S+ \S+)", calendar)
    assert len(elapses) == 2  # and they are one hour apart:
    first, second = (elapses[0].split()[1], elapses[1].split()[1])
    assert first[3:] == second[3:] and int(second[:2]) % 24 == (int(first[:2]) + 1) % 24
