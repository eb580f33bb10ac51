"""Ingest says what it did not read (issue 20, item 8): a near-miss of a
contract column is an error naming both names, any other unknown column is
named, and /chart files without their /pools metadata are refused unless
--no-pool-metadata says null chain and project are intended."""

from __future__ import annotations

from pathlib import Path

import pytest

from apy_runway.cli import main as cli_main
from apy_runway.foundation.console import UserError
from apy_runway.landing.ingest import ingest

FIXTURES = Path(__file__).parent / "fixtures" / "defillama"
CHART_DIR = FIXTURES / "chart"
POOLS_JSON = FIXTURES / "pools.json"


def csv_with(path: Path, header: list[str], row: list[str]) -> Path:
    path.write_text(",".join(header) + "\n" + ",".join(row) + "\n")
    return path


@pytest.mark.parametrize(
    ("found", "meant"),
    [
        ("tvlUSD", "tvlUsd"),
        ("tvl_usd", "tvlUsd"),
        ("APY_base", "apyBase"),
        ("Pool_Meta", "poolMeta"),
    ],
)
def test_a_near_miss_of_a_contract_column_fails_naming_both(project_home, tmp_path, found, meant):
    path = csv_with(
        tmp_path / "near.csv",
        ["timestamp", "pool", "apy", found],
        ["2024-01-01T00:00:00Z", "p", "1.5", "100"],
    )
    with pytest.raises(UserError) as error:
        ingest([path], project_home)
    message = str(error.value)
    assert f"'{found}'" in message and f"'{meant}'" in message and "near.csv" in message
    assert not project_home.manifest.exists() or project_home.manifest.read_text() == ""


def test_a_csv_with_tvlUSD_fails_naming_tvlUsd_on_the_command_line(project_home, tmp_path, capsys):
    path = csv_with(
        tmp_path / "export.csv",
        ["timestamp", "pool", "apy", "tvlUSD"],
        ["2024-01-01T00:00:00Z", "p", "1.5", "100"],
    )
    assert cli_main(["--home", str(project_home.home), "ingest", str(path)]) == 2
    err = capsys.readouterr().err
    assert "'tvlUSD'" in err and "'tvlUsd'" in err


def test_an_uppercase_APY_is_named_as_the_contracts_apy(project_home, tmp_path):
    path = csv_with(tmp_path / "upper.csv", ["timestamp", "pool", "APY"], ["2024-01-01", "p", "1"])
    with pytest.raises(UserError, match=r"'APY' look like the contract's 'apy'"):
        ingest([path], project_home)


def test_unknown_columns_are_named_and_known_ignored_ones_are_not(project_home, tmp_path, capsys):
    path = csv_with(
        tmp_path / "extra.csv",
        ["timestamp", "pool", "apy", "tvlUsd", "myNote", "il7d", "apyPct7D"],
        ["2024-01-01T00:00:00Z", "p", "1.5", "100", "hello", "0.1", "3"],
    )
    result = ingest([path], project_home)
    assert result.rows_staged == 1
    err = capsys.readouterr().err
    [line] = [line for line in err.splitlines() if "not read" in line]
    assert "extra.csv" in line and "myNote" in line
    assert "il7d" not in line and "apyPct7D" not in line


def test_chart_files_without_pools_metadata_are_refused_unless_intended(project_home):
    with pytest.raises(UserError, match=r"--pools-json .* or --no-pool-metadata"):
        ingest([CHART_DIR], project_home)
    assert not project_home.manifest.exists()
    landed = ingest([CHART_DIR], project_home, no_pool_metadata=True)
    assert landed.files_landed == 3
    with_metadata = ingest([CHART_DIR], project_home, pools_json=POOLS_JSON)
    assert with_metadata.files_landed == 0  # the same files, already landed
