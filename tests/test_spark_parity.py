"""The same dbt project built on Apache Spark equals the DuckDB build (issue 15).

One small fixed dataset (12 generated pools over 120 days, seed 3: late launches,
dying pools, missing days and hours, one-hour APY spikes) is ingested once, built on
DuckDB (the dev target) and, from a copy of the same raw store, built on Spark (the
`spark` target: one `dbt build --target spark`, so one local Spark session for the
whole run, its web UI off and 4 shuffle partitions). That build runs every data test
and every dbt unit test (the unit-test fixtures) on Spark and must pass them all.

Then every intermediate and mart table (found in the manifest: a new model is compared
without editing this file) and both parquet exports are compared cell by cell
(tests/parity.py: both null, or |a - b| <= 1e-9 * max(1, |a|, |b|); rows as sets, found
by the key of the model's uniqueness test). The comparison is shown to fail on a
perturbed copy of one table.
"""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from parity import table_differences

from apy_runway.foundation.paths import project_paths
from apy_runway.landing.generate import generate_snapshots
from apy_runway.landing.ingest import ingest
from apy_runway.operations.publish import load_latest_features
from apy_runway.warehouse.build import export_feature_columns
from apy_runway.warehouse.dbt import run_dbt
from models_py.data import load_training_set

# `make test-spark` (after `make test` in .ci/run); `make test` deselects it
pytestmark = [pytest.mark.slow, pytest.mark.spark]

pytest.importorskip(
    "dbt.adapters.spark", reason="the optional `spark` group: pip install '.[spark]'"
)
if shutil.which("java") is None:
    pytest.fail("a Java 17 runtime (`java` on PATH) is needed to build on Spark", pytrace=False)

COMPARED_LAYERS = ("models/intermediate/", "models/marts/")
EXPORTS = {"training_set": ["pool_id", "snapshot_date"], "latest_features": ["pool_id"]}


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """(duckdb home, its dbt target, spark home, its dbt target), both built in full."""
    root = tmp_path_factory.mktemp("parity")
    duck = project_paths(root / "duckdb").ensure()
    landing = root / "generated.parquet"
    generate_snapshots(landing, n_pools=12, n_days=120, seed=3, start_date=date(2024, 1, 1))
    ingest([landing], duck)
    duck_target = root / "duckdb_target"
    # the prediction ledger's models (tag ledger) read DuckDB's read_json and are
    # DuckDB-only (dbt_project/README.md, "Not alike on Spark"): left out of both
    run_dbt(
        duck,
        "build",
        target_path=duck_target,
        quiet=True,
        full_refresh=True,
        extra_args=["--exclude", "tag:ledger"],
    )

    spark = project_paths(root / "spark").ensure()
    shutil.copytree(duck.data / "raw", spark.data / "raw", dirs_exist_ok=True)
    spark_target = root / "spark_target"
    run_dbt(
        spark,
        "build",
        target_path=spark_target,
        quiet=True,
        full_refresh=True,
        extra_args=["--target", "spark", "--exclude", "tag:ledger"],
    )
    return duck, duck_target, spark, spark_target


@pytest.fixture(scope="module")
def compared_models(builds) -> dict[str, list[str]]:
    """Every intermediate and mart table of the project -> the key its uniqueness test names."""
    _, duck_target, _, _ = builds
    manifest = json.loads((duck_target / "manifest.json").read_text())
    nodes = manifest["nodes"].values()
    models = {
        node["unique_id"]: node["name"]
        for node in nodes
        if node["resource_type"] == "model"
        and node["original_file_path"].startswith(COMPARED_LAYERS)
        and node["config"]["materialized"] in ("table", "incremental")
        and "ledger" not in node["tags"]
    }
    keys: dict[str, list[str]] = {}
    for node in nodes:
        metadata = node.get("test_metadata") or {}
        model = models.get(node.get("attached_node"))
        if model is None:
            continue
        if metadata.get("name") == "unique_combination_of_columns":
            keys[model] = list(metadata["kwargs"]["combination_of_columns"])
        elif metadata.get("name") == "unique" and model not in keys:
            keys[model] = [node["column_name"]]
    unkeyed = sorted(set(models.values()) - set(keys))
    assert not unkeyed, f"models without a uniqueness test (parity needs a key): {unkeyed}"
    return keys


def duckdb_table(paths, name: str) -> pa.Table:
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        con.execute("set TimeZone = 'UTC'")
        return con.sql(f"select * from {name}").to_arrow_table()


def parquet_table(location: Path) -> pa.Table:
    """A parquet file or a folder of part files (day partitions as hive folders)."""
    pattern = location / "**" / "*.parquet" if location.is_dir() else location
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        return con.read_parquet(str(pattern), hive_partitioning=True).to_arrow_table()


def spark_table(paths, name: str) -> pa.Table:
    return parquet_table(paths.data / "spark" / "warehouse" / "apy_runway.db" / name)


def test_spark_build_runs_every_model_data_test_and_unit_test(builds, compared_models):
    _, _, _, spark_target = builds
    results = json.loads((spark_target / "run_results.json").read_text())["results"]
    by_kind: dict[str, set[str]] = {}
    for result in results:
        by_kind.setdefault(result["unique_id"].split(".")[0], set()).add(result["status"])
    # dbt build stops on an error (run_dbt raises); every node ran and passed
    assert by_kind["model"] <= {"success"}, by_kind
    assert by_kind["unit_test"] == {"pass"}, by_kind
    assert by_kind["test"] == {"pass"}, by_kind
    built = {r["unique_id"].split(".")[-1] for r in results if r["unique_id"].startswith("model.")}
    assert set(compared_models) <= built


def test_the_parity_dataset_has_gaps_spikes_late_launches_and_dying_pools(builds):
    duck, *_ = builds
    with duckdb.connect(str(duck.warehouse), read_only=True) as con:
        late, dying, gap_days, spiky = con.execute(
            """
            select
                (select count(distinct pool_id) from int_pool_days_densified
                 where first_observed_date
                    > (select min(snapshot_date) from int_pool_days_densified)),
                (select count(distinct pool_id) from int_pool_days_labeled
                 where is_pool_dead),
                (select count(*) from int_pool_days_densified where apy is null),
                (select count(*) from (
                    select pool_id, snapshot_date, max(apy) / median(apy) as ratio
                    from stg_defillama__pool_snapshots
                    group by all
                ) where ratio > 3)
            """
        ).fetchone()
    assert (late > 0, dying > 0, gap_days > 0, spiky > 0) == (True,) * 4, (
        late,
        dying,
        gap_days,
        spiky,
    )


def test_every_intermediate_and_mart_table_equals_the_duckdb_build(builds, compared_models):
    duck, _, spark, _ = builds
    assert {"int_pool_days_featurized", "training_set", "latest_features"} <= set(compared_models)
    problems = []
    for name, key in sorted(compared_models.items()):
        reference = duckdb_table(duck, name)
        assert reference.num_rows > 0, f"{name} is empty: the comparison would prove nothing"
        problems += table_differences(name, reference, spark_table(spark, name), key)
    assert not problems, "\n".join(problems)


def test_the_parquet_exports_are_equal(builds):
    duck, _, spark, _ = builds
    problems = []
    for name, key in EXPORTS.items():
        reference = parquet_table(duck.data / "exports" / f"{name}.parquet")
        problems += table_differences(
            f"exports/{name}",
            reference,
            parquet_table(spark.data / "exports" / f"{name}.parquet"),
            key,
        )
    assert not problems, "\n".join(problems)


def test_training_and_publish_read_the_spark_exports_as_the_duckdb_ones(builds):
    """What stays the same: training loads the exported training_set and publish the
    exported latest_features, whichever engine wrote them (a file or a folder of parts)."""
    duck, duck_target, spark, _ = builds
    export_feature_columns(duck, duck_target)
    shutil.copy(duck.feature_columns, spark.feature_columns)
    loaded = {
        name: load_training_set(
            paths.data / "exports" / "training_set.parquet", duck.feature_columns
        )
        for name, paths in (("duckdb", duck), ("spark", spark))
    }
    assert loaded["spark"].frame.shape == loaded["duckdb"].frame.shape
    assert loaded["spark"].label == loaded["duckdb"].label
    assert (
        table_differences(
            "loaded training data",
            pa.Table.from_pandas(loaded["duckdb"].frame, preserve_index=False),
            pa.Table.from_pandas(loaded["spark"].frame, preserve_index=False),
            ["pool_id", "snapshot_date"],
        )
        == []
    )
    # publish: the JSON payload for people and the binary file the scorer reads
    latest = {
        name: load_latest_features(paths) for name, paths in (("duckdb", duck), ("spark", spark))
    }
    assert latest["spark"].binary and latest["duckdb"].binary
    assert (
        table_differences(
            "published features",
            pa.table(latest["duckdb"].payload["columns"]),
            pa.table(latest["spark"].payload["columns"]),
            ["pool_id"],
        )
        == []
    )


# The test of the test: the same comparison on a perturbed copy of one table.
PERTURBED = "int_pool_days_featurized"
KEY = ["pool_id", "snapshot_date"]


@pytest.fixture(scope="module")
def featurized(builds) -> pa.Table:
    _, _, spark, _ = builds
    return spark_table(spark, PERTURBED)


def _set_cell(table: pa.Table, row: int, column: str, value) -> pa.Table:
    values = table[column].to_pylist()
    values[row] = value
    index = table.column_names.index(column)
    return table.set_column(index, column, pa.array(values, type=table.schema.field(column).type))


def _first_row_with(table: pa.Table, column: str) -> int:
    return pc.index(pc.is_valid(table[column]), True).as_py()


@pytest.mark.parametrize(
    ("change", "found"),
    [
        ("relative error 1e-7 in one cell", "apy_rolling_30d_mean"),
        ("a value made null", "apy_rolling_7d_std"),
        ("a text value changed", "project"),
        ("one row dropped", "only in the reference"),
        ("one row repeated", "occurs more than once"),
        ("one column dropped", "column pool_age_days only in the reference"),
    ],
)
def test_the_comparison_fails_on_a_perturbed_copy(builds, featurized, change, found):
    duck, *_ = builds
    reference = duckdb_table(duck, PERTURBED)
    assert table_differences(PERTURBED, reference, featurized, KEY) == []
    if change.startswith("relative"):
        row = _first_row_with(featurized, found)
        value = featurized[found][row].as_py()
        copy = _set_cell(featurized, row, found, value + 1e-7 * max(1.0, abs(value)))
    elif change.startswith("a value made null"):
        copy = _set_cell(featurized, _first_row_with(featurized, found), found, None)
    elif change.startswith("a text"):
        copy = _set_cell(featurized, 0, found, featurized[found][0].as_py() + "x")
    elif change.startswith("one row dropped"):
        copy = featurized.slice(1)
    elif change.startswith("one row repeated"):
        copy = pa.concat_tables([featurized, featurized.slice(0, 1)])
    else:
        copy = featurized.drop_columns(["pool_age_days"])
    problems = table_differences(PERTURBED, reference, copy, KEY)
    assert any(found in problem for problem in problems), problems


def test_the_comparison_accepts_differences_within_the_tolerance(builds, featurized):
    duck, *_ = builds
    column = "apy_rolling_30d_mean"
    row = _first_row_with(featurized, column)
    value = featurized[column][row].as_py()
    nudged = _set_cell(featurized, row, column, value + 1e-10 * max(1.0, abs(value)))
    assert table_differences(PERTURBED, duckdb_table(duck, PERTURBED), nudged, KEY) == []
