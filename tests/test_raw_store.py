"""The append-only raw store (apy_runway/landing/ingest/store.py): landed files
are never rewritten, the manifest accounts for every row, the most recently
landed file wins per pool and hour, completed days compact, an interrupted
ingest leaves nothing behind, --replace starts
afresh, and a home whose path DuckDB would read as a pattern is refused."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pytest

from apy_runway.cli import main as cli_main
from apy_runway.foundation.console import UserError
from apy_runway.foundation.paths import project_paths
from apy_runway.landing.ingest import ingest
from apy_runway.landing.ingest.pools_snapshot import landed_name
from apy_runway.landing.ingest.store import RawStore, read_manifest
from apy_runway.landing.standin import pools_item
from inference.contracts import RAW_COMPACT_MAX_FILES

HEADER = ["timestamp", "pool", "apy"]


def write_csv(path: Path, rows: list[tuple]) -> Path:
    path.write_text("\n".join([",".join(HEADER), *(",".join(map(str, r)) for r in rows)]) + "\n")
    return path


def current(paths) -> list[tuple]:
    """(pool, timestamp, apy) of the store's current rows, as staging reads them."""
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        return con.execute(f"""
            select stored.pool, strftime(stored."timestamp", '%Y-%m-%dT%H:%M'), stored.apy
            from read_parquet('{paths.raw_store}/*/*.parquet', hive_partitioning = false)
                as stored
            anti join read_parquet('{paths.superseded_rows}') as superseded
                on stored.pool = superseded.pool
                and date_trunc('hour', stored."timestamp") = superseded.snapshot_hour
                and stored.landing_order = superseded.landing_order
            order by all
        """).fetchall()


def quarantined(paths) -> list[tuple]:
    if not any(paths.quarantine_store.glob("*.parquet")):
        return []
    with duckdb.connect() as con:
        return con.execute(
            f"select reason, pool, apy, landing_order from "
            f"read_parquet('{paths.quarantine_store}/*.parquet', union_by_name = true) "
            "order by all"
        ).fetchall()


def accounting_holds(paths) -> None:
    entries = read_manifest(paths)
    for e in entries:
        assert e.rows_in == e.rows_staged + e.rows_quarantined, e
        assert e.rows_quarantined == sum(e.by_reason.values()), e
    assert sum(e.rows_staged for e in entries) == len(current(paths))
    assert sum(e.rows_quarantined for e in entries) == len(quarantined(paths))


def raw_files(paths) -> dict[str, bytes]:
    return {
        str(p.relative_to(paths.raw_store)): p.read_bytes()
        for p in sorted(paths.raw_store.glob("*/*.parquet"))
    }


def test_each_file_lands_once_into_day_partitions_named_by_landing_order(project_home, tmp_path):
    first = write_csv(tmp_path / "a.csv", [("2024-01-01T05:10:00Z", "p", 1.0)])
    second = write_csv(
        tmp_path / "b.csv",
        [("2024-01-01T06:10:00Z", "p", 2.0), ("2024-01-02T01:00:00Z", "q", 3.0)],
    )
    ingest([first], project_home)
    before = raw_files(project_home)
    result = ingest([first, second], project_home)
    assert (result.files_landed, result.files_unchanged) == (1, 1)
    # the first file's raw file is untouched; the second adds its own, per day
    after = raw_files(project_home)
    assert {k: after[k] for k in before} == before
    assert sorted(after) == [
        "snapshot_date=2024-01-01/00000001.parquet",
        "snapshot_date=2024-01-01/00000002.parquet",
        "snapshot_date=2024-01-02/00000002.parquet",
    ]
    entries = read_manifest(project_home)
    assert [(e.landing_order, Path(e.name).name, e.rows_in) for e in entries] == [
        (1, "a.csv", 1),
        (2, "b.csv", 2),
    ]
    assert entries[1].sha256 and entries[1].size == second.stat().st_size
    assert (entries[1].snapshot_date_min, entries[1].snapshot_date_max) == (
        "2024-01-01",
        "2024-01-02",
    )
    accounting_holds(project_home)


def test_a_changed_file_lands_again_and_its_new_version_wins_per_pool_and_hour(
    project_home, tmp_path
):
    path = write_csv(
        tmp_path / "export.csv",
        [("2024-01-01T05:10:00Z", "p", 1.0), ("2024-01-01T06:10:00Z", "p", 1.5)],
    )
    ingest([path], project_home)
    # the new version fixes one hour's value and drops the other hour
    write_csv(path, [("2024-01-01T05:40:00Z", "p", 9.0)])
    result = ingest([path], project_home)
    assert result.earlier_rows_superseded == 1
    assert current(project_home) == [("p", "2024-01-01T05:40", 9.0), ("p", "2024-01-01T06:10", 1.5)]
    first, second = read_manifest(project_home)
    assert second.replaces == first.landing_order and first.sha256 != second.sha256
    assert (first.rows_in, first.rows_staged, first.rows_quarantined) == (2, 1, 1)
    assert first.by_reason == {"superseded": 1}
    assert quarantined(project_home) == [("superseded", "p", "1.0", 1)]
    accounting_holds(project_home)


def pools_snapshot(path: Path, items: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(json.dumps({"status": "success", "data": items}).encode()))
    return path


def test_a_changed_snapshot_file_of_an_hour_replaces_that_hours_values(project_home):
    """An explicit ingest of a corrected file supersedes (collect itself never
    rewrites a landed hour: tests/test_collect.py)."""
    hour = datetime(2024, 3, 1, 5, tzinfo=UTC)
    path = project_home.landed_pools / landed_name(hour)
    pools_snapshot(path, [pools_item("p", apy=1.0), pools_item("q", apy=2.0)])
    ingest([], project_home)
    pools_snapshot(path, [pools_item("p", apy=1.25), pools_item("q", apy=2.5)])
    ingest([], project_home)
    assert current(project_home) == [
        ("p", "2024-03-01T05:00", 1.25),
        ("q", "2024-03-01T05:00", 2.5),
    ]
    assert [r[0] for r in quarantined(project_home)] == ["superseded", "superseded"]
    accounting_holds(project_home)


def chart_file(folder: Path, pool: str, rows: list[tuple[str, float]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = [{"timestamp": t, "apy": apy, "tvlUsd": 10.0} for t, apy in rows]
    path = folder / f"{pool}.json"
    path.write_text(json.dumps({"status": "success", "data": data}))
    return path


def test_a_chart_row_never_replaces_a_collected_hour(project_home, tmp_path):
    """Per pool and UTC hour a snapshot row outranks a /chart row whatever the
    landing order: a later chart row of a collected hour is quarantined as
    `outranked`; a later collected hour supersedes an earlier chart row."""
    collected = datetime(2024, 3, 1, 23, tzinfo=UTC)
    pools_snapshot(
        project_home.landed_pools / landed_name(collected),
        [pools_item("p", apy=5.0), pools_item("q", apy=6.0)],
    )
    ingest([], project_home)
    charts = tmp_path / "chart"
    chart_file(
        charts, "p", [("2024-02-29T23:01:13.171Z", 30.0), ("2024-03-01T23:01:13.171Z", 35.0)]
    )
    result = ingest([charts], project_home, no_pool_metadata=True)
    assert result.by_reason["outranked"] == 1 and result.rows_staged == 1
    # q's chart holds only its collected hour: nothing to add, and not refused
    chart_file(charts, "q", [("2024-03-01T23:59:00Z", 60.0)])
    only = ingest([charts / "q.json"], project_home, no_pool_metadata=True)
    assert (only.files_landed, only.rows_staged, only.by_reason["outranked"]) == (1, 0, 1)
    # a collected hour landing after a chart row of its hour replaces it
    later = datetime(2024, 2, 29, 23, tzinfo=UTC)
    pools_snapshot(project_home.landed_pools / landed_name(later), [pools_item("p", apy=4.0)])
    ingest([], project_home)
    assert current(project_home) == [
        ("p", "2024-02-29T23:00", 4.0),
        ("p", "2024-03-01T23:00", 5.0),
        ("q", "2024-03-01T23:00", 6.0),
    ]
    assert [(r[0], r[1], r[2]) for r in quarantined(project_home)] == [
        ("outranked", "p", "35.0"),
        ("outranked", "q", "60.0"),
        ("superseded", "p", "30.0"),
    ]
    accounting_holds(project_home)


def test_chart_rows_still_supersede_chart_rows(project_home, tmp_path):
    charts = tmp_path / "chart"
    path = chart_file(charts, "p", [("2024-03-01T23:01:00Z", 1.0)])
    ingest([path], project_home, no_pool_metadata=True)
    chart_file(charts, "p", [("2024-03-01T23:02:00Z", 2.0)])
    ingest([path], project_home, no_pool_metadata=True)
    assert current(project_home) == [("p", "2024-03-01T23:02", 2.0)]
    accounting_holds(project_home)


def test_a_pools_snapshot_never_reads_the_model_outputs(project_home):
    """The never-read fields (predictions, mu, sigma, apyPct*, outlier,
    apyMean30d, count) are dropped before anything looks at an item; a
    quarantined row keeps its other fields."""
    item = pools_item("p", apy=1.0)
    bad = pools_item("q", apy=None)
    path = pools_snapshot(
        project_home.landed_pools / landed_name(datetime(2024, 3, 1, 6, tzinfo=UTC)), [item, bad]
    )
    result = ingest([path], project_home, no_pool_metadata=True)
    assert (result.rows_staged, result.by_reason["missing_apy"]) == (1, 1)
    with duckdb.connect() as con:
        (extra,) = con.execute(
            f"select extra_fields from '{project_home.quarantine_store}/*.parquet'"
        ).fetchone()
    kept = json.loads(extra)
    assert "underlyingTokens" in kept
    assert not {"predictions", "mu", "sigma", "apyPct1D", "apyMean30d", "count", "outlier"} & set(
        kept
    )


def test_completed_days_compact_into_one_file_and_the_accounting_stays_exact(
    project_home, tmp_path
):
    for hour in range(3):
        ingest(
            [write_csv(tmp_path / f"h{hour}.csv", [(f"2024-01-01T0{hour}:05:00Z", "p", hour)])],
            project_home,
        )
    # a later file replaces hour 1
    ingest([write_csv(tmp_path / "fix.csv", [("2024-01-01T01:30:00Z", "p", 10)])], project_home)
    before = current(project_home)
    manifest_before = project_home.manifest.read_text()
    with duckdb.connect() as con:
        store = RawStore.open(project_home, con)
        assert store.compact(con, before=date(2024, 1, 1)) == []  # not completed yet
        assert store.compact(con, before=date(2024, 1, 2)) == ["2024-01-01"]
    assert list(raw_files(project_home)) == ["snapshot_date=2024-01-01/c00000004.parquet"]
    assert current(project_home) == before
    assert project_home.manifest.read_text() == manifest_before
    # the superseded row left the raw files; the quarantine still lists it
    with duckdb.connect() as con:
        assert con.execute(
            f"select count(*) from '{project_home.raw_store}/*/*.parquet'"
        ).fetchone() == (3,)
        assert con.execute(f"select count(*) from '{project_home.superseded_rows}'").fetchone() == (
            0,
        )
    assert [r[0] for r in quarantined(project_home)] == ["superseded"]
    accounting_holds(project_home)


def test_a_completed_day_with_a_few_small_files_waits_to_compact(project_home, tmp_path):
    """A back-fill's small file beside a big completed day is not worth rewriting
    the day; the day compacts once its small files weigh enough or are many, and
    the store reads the same rows either way."""
    big = [(f"2024-01-01T{h:02d}:05:00Z", f"p{n}", n + h) for h in range(24) for n in range(40)]
    ingest([write_csv(tmp_path / "day.csv", big)], project_home)
    ingest([write_csv(tmp_path / "new.csv", [("2024-01-01T03:00:00Z", "q0", 1.5)])], project_home)
    day = project_home.raw_store / "snapshot_date=2024-01-01"
    files = RawStore.data_files(day)
    before = current(project_home)
    with duckdb.connect() as con:
        rows = RawStore.row_counts(con, [path for _, _, path in files])
        assert len(files) == 2 and not RawStore.compaction_due(files, rows)
        assert RawStore.open(project_home, con).compact(con, before=date(2024, 1, 2)) == []
    assert current(project_home) == before
    # more small files, one pool each, until the day holds RAW_COMPACT_MAX_FILES
    for n in range(1, RAW_COMPACT_MAX_FILES - 1):
        ingest(
            [write_csv(tmp_path / f"new{n}.csv", [("2024-01-01T03:00:00Z", f"q{n}", 1.5)])],
            project_home,
        )
    before = current(project_home)
    with duckdb.connect() as con:
        files = RawStore.data_files(day)
        rows = RawStore.row_counts(con, [path for _, _, path in files])
        assert RawStore.compaction_due(files, rows)
        assert RawStore.open(project_home, con).compact(con, before=date(2024, 1, 2)) == [
            "2024-01-01"
        ]
    assert list(raw_files(project_home)) == [
        f"snapshot_date=2024-01-01/c{RAW_COMPACT_MAX_FILES:08d}.parquet"
    ]
    assert current(project_home) == before
    accounting_holds(project_home)


def test_an_interrupted_ingest_or_compaction_leaves_nothing_behind(project_home, tmp_path):
    ingest([write_csv(tmp_path / "a.csv", [("2024-01-01T05:10:00Z", "p", 1.0)])], project_home)
    ingest([write_csv(tmp_path / "b.csv", [("2024-01-01T06:10:00Z", "p", 2.0)])], project_home)
    day = project_home.raw_store / "snapshot_date=2024-01-01"
    good = current(project_home)
    # an ingest that wrote its file but died before its manifest line
    (day / "00000003.parquet").write_bytes((day / "00000002.parquet").read_bytes())
    (project_home.quarantine_store / "00000003.parquet").write_bytes(b"partial")
    (day / "00000004.parquet.tmp").write_bytes(b"partial")
    # a compaction that placed its file but died before removing its inputs
    (day / "c00000002.parquet").write_bytes(b"")
    with duckdb.connect() as con:
        con.execute(
            f"copy (select * from read_parquet(['{day / '00000001.parquet'}', "
            f"'{day / '00000002.parquet'}'])) to '{day / 'c00000002.parquet'}' (format parquet)"
        )
    # the next ingest cleans up first
    result = ingest(
        [write_csv(tmp_path / "c.csv", [("2024-01-02T00:10:00Z", "q", 3.0)])], project_home
    )
    assert result.landed[0].landing_order == 3
    assert sorted(raw_files(project_home)) == [
        "snapshot_date=2024-01-01/c00000002.parquet",
        "snapshot_date=2024-01-02/00000003.parquet",
    ]
    assert current(project_home) == [*good, ("q", "2024-01-02T00:10", 3.0)]
    accounting_holds(project_home)


def test_replace_moves_the_old_store_aside(project_home, tmp_path):
    ingest([write_csv(tmp_path / "old.csv", [("2024-01-01T05:10:00Z", "p", 1.0)])], project_home)
    project_home.build_state.write_text("{}")
    ingest(
        [write_csv(tmp_path / "new.csv", [("2024-02-01T05:10:00Z", "q", 2.0)])],
        project_home,
        replace=True,
    )
    assert current(project_home) == [("q", "2024-02-01T05:10", 2.0)]
    assert [e.landing_order for e in read_manifest(project_home)] == [1]
    assert not project_home.build_state.exists()  # the next builds are full
    [moved] = (project_home.data / "replaced").iterdir()
    assert (moved / "raw" / "manifest.jsonl").exists() and (moved / "quarantine").exists()


@pytest.mark.parametrize("character", list("*?[]{}"))
def test_a_home_with_a_glob_character_is_refused(tmp_path, character, capsys):
    home = tmp_path / f"home{character}1"
    with pytest.raises(UserError, match="glob character") as error:
        project_paths(home)
    assert str(home) in str(error.value) and "\n" not in str(error.value)
    assert cli_main(["--home", str(home), "ingest"]) == 2
    assert "glob character" in capsys.readouterr().err
    assert not home.exists()
