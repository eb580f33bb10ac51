"""dbt's own idioms on one small generated home (30 pools x 120 days, daily):

- the selectors: the home is built by `dbt build --selector serving` (only the
  hourly scorer's path: no labels, no training_set) and then
  `dbt build --selector training`; the run results show what each one built,
- the enforced contracts of the marts: declared types = built types, not_null
  keys and the primary key exist (and hold) in DuckDB, and the parquet exports
  follow the declared column order,
- `dbt docs generate`: the exposures and the docs blocks (each feature's
  description resolved once, the same in both marts),
- `dbt source freshness`: the generated 2024 history is stale (error), a
  fixture whose newest snapshot is now passes,
- tags (`serving` / `training` on the models; `hourly` on the tests a refresh
  runs, selector hourly_refresh), and dbt's test config `where:`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from fixtures.dbt_nodes import SERVING_MODELS

from apy_runway.foundation.defaults import DBT_PROJECT_DIR
from apy_runway.foundation.paths import PROFILES_DIR, ProjectPaths, project_paths
from apy_runway.landing.generate import generate_snapshots
from apy_runway.landing.ingest import ingest
from apy_runway.warehouse.build import feature_columns_from_manifest
from apy_runway.warehouse.dbt import dbt_executable, run_dbt

pytestmark = pytest.mark.slow

MARTS = ("training_set", "latest_features")
KEY = ["pool_id", "snapshot_date"]
STAGING = "stg_defillama__pool_snapshots"
# a filtered hourly test's `where`, by whether it is staging's (the refresh's pools only)
WHERE_REBUILT = {
    False: "snapshot_date >= __refresh_from_date__",
    True: "snapshot_date >= __refresh_from_date__ and __in_refresh_scope__",
}
TRAINING_ONLY_MODELS = {"int_pool_days_labeled", "training_set", "drift_reference_features"}
EXPOSURES = {
    "hourly_scorer": ("application", "latest_features"),
    "model_training": ("ml", "drift_reference_features", "training_set"),
    "runway_board": (
        "dashboard",
        "int_pool_snapshots_downsampled_to_daily",
        "prediction_outcomes",
        "prediction_outcomes_by_bin",
        "prediction_outcomes_by_month",
    ),
}


def dbt(
    paths: ProjectPaths, *args: str, target: Path, warehouse: Path | None = None
) -> subprocess.CompletedProcess:
    """Run one dbt command against a home and return it, whatever its exit code
    (run_dbt raises on failure, and a stale source is what one test wants to
    see). `warehouse` replaces the home's DuckDB file."""
    argv = [
        dbt_executable(),
        "--no-use-colors",
        *args,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(PROFILES_DIR),
        "--target-path",
        str(target),
    ]
    env = {
        **os.environ,
        **paths.dbt_env(),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_LOG_PATH": str(target / "logs"),
    }
    if warehouse:
        env["APY_RUNWAY_DUCKDB_PATH"] = str(warehouse)
    return subprocess.run(argv, cwd=DBT_PROJECT_DIR, env=env, text=True, capture_output=True)


def node_names(run_results: dict, resource: str) -> set[str]:
    prefix = f"{resource}.apy_runway."
    return {
        r["unique_id"].removeprefix(prefix)
        for r in run_results["results"]
        if r["unique_id"].startswith(prefix)
    }


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """One home, built by `dbt build --selector serving` then `--selector training`."""
    root = tmp_path_factory.mktemp("contracts")
    paths = project_paths(root / "home").ensure()
    landing = root / "generated.parquet"
    generate_snapshots(
        landing, n_pools=30, n_days=120, seed=5, start_date=date(2024, 1, 1), freq="daily"
    )
    ingest([landing], paths)
    # both builds share a target folder, so the second reuses the first's parse
    target = root / "target"
    results = {}
    for selector in ("serving", "training"):
        run_dbt(paths, "build", extra_args=["--selector", selector], target_path=target, quiet=True)
        results[selector] = json.loads((target / "run_results.json").read_text())
    return {"paths": paths, "root": root, "target": target, "run_results": results}


def fresh_snapshots(source: ProjectPaths, home: Path) -> ProjectPaths:
    """A home whose raw store holds two pools of `source`'s, shifted in time so
    that the newest snapshot is now."""
    paths = project_paths(home).ensure()
    stored = f"read_parquet('{source.raw_store}/*/*.parquet', hive_partitioning = false)"
    landing = paths.landing / "fresh.parquet"
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        con.execute(f"""
            copy (
                select * exclude (landing_order) replace (
                    "timestamp" + (now() - max("timestamp") over ()) as "timestamp")
                from {stored}
                where pool in (select distinct pool from {stored} order by pool limit 2)
            ) to '{landing}' (format parquet)""")
    ingest([landing], paths)
    return paths


@pytest.fixture(scope="module")
def checks(home):
    """docs generate and two source freshness runs on the built home. Most of a
    small dbt command is dbt's start-up and parse, so they run in the builds'
    target folder and reuse its parse (dbt parses from scratch when the
    profile, i.e. the DuckDB path, changes: freshness reads only the raw
    parquet, so the fresh fixture's run borrows the home's DuckDB file)."""
    paths, root, target = home["paths"], home["root"], home["target"]
    # the builds compiled every node already
    docs = dbt(paths, "docs", "generate", "--no-compile", target=target)
    assert docs.returncode == 0, docs.stdout[-4000:]
    manifest = json.loads((target / "manifest.json").read_text())
    catalog = json.loads((target / "catalog.json").read_text())
    stale = dbt(paths, "source", "freshness", target=target)
    stale_source = sources_json(target)
    fresh = fresh_snapshots(paths, root / "fresh")
    fresh_run = dbt(fresh, "source", "freshness", target=target, warehouse=paths.warehouse)
    return {
        "manifest": manifest,
        "catalog": catalog,
        "stale": (stale.returncode, stale_source),
        "fresh": (fresh_run.returncode, sources_json(target)),
    }


def sources_json(target: Path) -> dict:
    sources = json.loads((target / "sources.json").read_text())["results"]
    assert [s["unique_id"] for s in sources] == ["source.apy_runway.defillama.pool_snapshots"]
    return sources[0]


def model(manifest: dict, name: str) -> dict:
    return manifest["nodes"][f"model.apy_runway.{name}"]


def test_the_serving_selector_builds_only_the_scorers_path(home, checks):
    manifest = checks["manifest"]
    serving = home["run_results"]["serving"]
    assert node_names(serving, "model") == SERVING_MODELS
    assert node_names(serving, "exposure") == {"hourly_scorer"}
    assert all(r["status"] in ("success", "pass", "no-op") for r in serving["results"])
    # no test of the serving build reads the labels or the training set
    tests = [
        manifest["nodes"].get(r["unique_id"]) or manifest["unit_tests"][r["unique_id"]]
        for r in serving["results"]
        if r["unique_id"].startswith(("test.", "unit_test."))
    ]
    assert len(tests) > 40
    for test in tests:
        read = {n.split(".")[-1] for n in test["depends_on"]["nodes"]}
        assert read <= SERVING_MODELS, (test["unique_id"], read)
    assert "test_latest_features_is_newest_day" in node_names(serving, "test")

    training = node_names(home["run_results"]["training"], "model")
    assert training == (SERVING_MODELS - {"latest_features"}) | TRAINING_ONLY_MODELS
    # cautious test selection: the training build does not test latest_features
    assert "test_latest_features_is_newest_day" not in node_names(
        home["run_results"]["training"], "test"
    )
    assert "test_training_set_rows_match_labels" in node_names(
        home["run_results"]["training"], "test"
    )
    assert "test_drift_reference_features_not_empty" in node_names(
        home["run_results"]["training"], "test"
    )


def test_the_tags_mark_the_same_two_paths(checks):
    models = [n for n in checks["manifest"]["nodes"].values() if n["resource_type"] == "model"]
    assert {n["name"] for n in models if "serving" in n["tags"]} == SERVING_MODELS
    assert {n["name"] for n in models if "training" in n["tags"]} == TRAINING_ONLY_MODELS
    assert all(n["tags"] for n in models)


def test_the_hourly_tests_check_the_new_days_and_each_incremental_key(checks):
    """What `apy-runway refresh` runs (selector hourly_refresh): tests tagged
    hourly, each on a serving model: one whole-table key-uniqueness test per
    incremental model, the other checks filtered to the rebuilt days."""
    nodes = checks["manifest"]["nodes"]
    hourly = [n for n in nodes.values() if n["resource_type"] == "test" and "hourly" in n["tags"]]
    attached = {n["attached_node"].split(".")[-1] for n in hourly}
    assert attached == SERVING_MODELS
    incremental = {
        n["name"]
        for n in nodes.values()
        if n["resource_type"] == "model" and n["config"]["materialized"] == "incremental"
    }
    assert incremental == (SERVING_MODELS - {"stg_defillama__pool_snapshots"}) | {
        "int_pool_days_labeled"
    }
    unique = [n for n in hourly if n["test_metadata"]["name"] == "unique_combination_of_columns"]
    assert sorted(n["attached_node"].split(".")[-1] for n in unique) == sorted(
        (incremental & SERVING_MODELS) | {"stg_defillama__pool_snapshots"}
    )
    for test in hourly:
        where = test["config"]["where"]
        model_name = test["attached_node"].split(".")[-1]
        if test in unique and model_name != "stg_defillama__pool_snapshots":
            assert not where, test["unique_id"]  # the whole table
        else:
            # the placeholders, filled at execution (this full build: every
            # row); staging's hourly rows: the refresh's pools only
            assert where == WHERE_REBUILT[model_name == STAGING], test["unique_id"]
            compiled = test.get("compiled_code") or ""
            assert "__refresh_from_date__" not in compiled, test["unique_id"]
            assert "__in_refresh_scope__" not in compiled, test["unique_id"]
            assert "snapshot_date >= cast('0001-01-01' as date)" in compiled, test["unique_id"]
            if model_name == STAGING:
                assert "cast('0001-01-01' as date) and true" in compiled, test["unique_id"]


# the contracts' portable type names (Spark's) that DuckDB reports under another name
DUCKDB_TYPE_NAMES = {"string": "varchar"}


def test_the_marts_enforce_their_contract(home, checks):
    manifest, catalog = checks["manifest"], checks["catalog"]
    with duckdb.connect(str(home["paths"].warehouse), read_only=True) as con:
        for name in MARTS:
            node = model(manifest, name)
            assert node["config"]["contract"]["enforced"] is True
            declared = {c: col["data_type"] for c, col in node["columns"].items()}
            assert all(declared.values()), name
            assert [(c["type"], c["columns"]) for c in node["constraints"]] == [
                ("primary_key", KEY)
            ]
            for key in KEY:
                assert [c["type"] for c in node["columns"][key]["constraints"]] == ["not_null"]
            # declared = built, in the declared order (dbt inserts through the list); the
            # YAML names types both engines read (`string` is DuckDB's varchar)
            as_duckdb = {c: DUCKDB_TYPE_NAMES.get(t, t) for c, t in declared.items()}
            built = con.execute(f"describe {name}").fetchall()
            assert [(c, t.lower()) for c, t, *_ in built] == list(as_duckdb.items())
            listed = catalog["nodes"][f"model.apy_runway.{name}"]["columns"]
            assert {c: col["type"].lower() for c, col in listed.items()} == as_duckdb
            constraints = con.execute(
                "select constraint_type, constraint_column_names from duckdb_constraints() "
                "where table_name = ? and constraint_type in ('PRIMARY KEY', 'NOT NULL') "
                "order by all",
                [name],
            ).fetchall()
            assert constraints == [
                ("NOT NULL", ["pool_id"]),
                ("NOT NULL", ["snapshot_date"]),
                ("PRIMARY KEY", KEY),
            ]
            # the post-hook export still runs, with the same rows and columns
            exported = pd.read_parquet(home["paths"].exports / f"{name}.parquet")
            rows = con.execute(f"select count(*) from {name}").fetchone()[0]
            assert len(exported) == rows > 0
            assert list(exported.columns) == list(declared)
    # the export's feature columns come in the feature order of latest_features' YAML
    contract = feature_columns_from_manifest(manifest)
    features = contract["numeric"] + contract["categorical"]
    assert len(features) == 68
    exported = pd.read_parquet(home["paths"].latest_features)
    assert [c for c in exported.columns if c in set(features)] == features


@pytest.mark.parametrize("mart", MARTS)
def test_duckdb_enforces_the_key_constraints(home, tmp_path, mart):
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(home["paths"].warehouse, copy)
    with duckdb.connect(str(copy)) as con:
        with pytest.raises(duckdb.ConstraintException, match=r"(?i)duplicate key"):
            con.execute(f"insert into {mart} select * from {mart} limit 1")
        with pytest.raises(duckdb.ConstraintException, match=r"(?i)not null"):
            con.execute(
                f"insert into {mart} select * replace (null as pool_id) from {mart} limit 1"
            )


def test_docs_generate_holds_the_exposures(checks):
    exposures = checks["manifest"]["exposures"]
    assert {e["name"] for e in exposures.values()} == set(EXPOSURES)
    for name, (kind, *marts) in EXPOSURES.items():
        exposure = exposures[f"exposure.apy_runway.{name}"]
        assert exposure["type"] == kind
        assert sorted(exposure["depends_on"]["nodes"]) == [f"model.apy_runway.{m}" for m in marts]
        assert exposure["owner"]["name"] and exposure["maturity"]
        assert len(exposure["description"]) > 100


def test_docs_blocks_describe_each_feature_once_for_both_marts(checks):
    manifest = checks["manifest"]
    docs = {
        d["name"]: d["block_contents"]
        for d in manifest["docs"].values()
        if d["package_name"] == "apy_runway"
    }
    assert "latest_features" in docs["__overview__"] and "serving" in docs["__overview__"]
    training, latest = (model(manifest, name)["columns"] for name in MARTS)
    assert list(training)[: len(latest)] == list(latest)
    for name, column in latest.items():
        text = column["description"]
        assert text and "{{" not in text and "doc(" not in text, name
        assert training[name]["description"] == text, name
        assert text == docs[name], name
    # the labels add their model's null policy to the shared rule
    labeled = model(manifest, "int_pool_days_labeled")["columns"]
    for name in ("is_apy_kept", "apy_future"):
        assert training[name]["description"].startswith(docs[name])
        assert labeled[name]["description"].startswith(docs[name])
    # intermediate columns that carry a feature show the same text
    rolling = model(manifest, "int_pool_days_rolling_features")["columns"]
    assert rolling["observed_day_count"]["description"] == docs["observed_day_count"]
    # and the feature_type meta stayed on the mart columns
    contract = feature_columns_from_manifest(manifest)
    assert contract["categorical"] == ["chain", "project", "il_risk", "exposure", "stablecoin"]


def test_expression_is_true_filters_with_dbt_test_config_where(checks):
    tests = [
        n
        for n in checks["manifest"]["nodes"].values()
        if n["resource_type"] == "test"
        and n.get("test_metadata", {}).get("name") == "expression_is_true"
    ]
    filtered = [t for t in tests if t["config"]["where"]]
    by_label = [t for t in filtered if t["config"]["where"] == "is_apy_kept is not null"]
    assert {t["attached_node"] for t in by_label} == {"model.apy_runway.int_pool_days_labeled"}
    assert len(by_label) == 1
    # the others check the days a refresh rebuilt (every day without the var)
    assert all(
        t["config"]["where"] == WHERE_REBUILT[t["attached_node"].endswith(STAGING)]
        and "hourly" in t["tags"]
        for t in filtered
        if t not in by_label
    )
    assert all("where" not in t["test_metadata"]["kwargs"] for t in tests)


def test_source_freshness_flags_the_2024_history_and_passes_a_fresh_snapshot(checks):
    code, stale = checks["stale"]
    assert stale["status"] == "error" and code != 0
    assert stale["max_loaded_at"].startswith("2024-")
    assert stale["criteria"]["warn_after"] == {"count": 2, "period": "hour"}
    assert stale["criteria"]["error_after"] == {"count": 26, "period": "hour"}
    code, fresh = checks["fresh"]
    assert fresh["status"] == "pass" and code == 0, fresh
    newest = datetime.fromisoformat(fresh["max_loaded_at"])
    assert abs((datetime.now(UTC) - newest).total_seconds()) < 600
