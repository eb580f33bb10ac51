"""`make bench`: measure the pipeline at scale against the pandas prototype.

    python -m benchmarks.run [--scales 120,1200] [--days 365]
                             [--sections scale,refresh,train,inference,layer]

Every figure is measured in its own child process (wall time, peak RSS via
wait4, which includes dbt's subprocess) and appended as one JSON line, with the
1-minute load average at its start and end, to benchmarks/results/results.jsonl;
`python -m benchmarks.report` renders them, RESULTS.md says what they mean.
The default run: the scale section (0.8M and 7.9M rows, with the pandas anchor,
about 2 minutes on an idle 2-core machine) and the inference section (20,000
pools: the warm invocation / predict_proba ratio, printed, and the cold start;
its home is built like `make run` once, in WORKDIR/home_inference). More (see
RESULTS.md for the figures):

    --scales 300,1200 --sections scale,refresh      # the default size and 7.9M rows
    --scales 6000                                   # ~40M rows with the pandas anchor
    --scales 20000 --days 730 --no-pandas --no-engine --split-months \
        --sections scale,refresh                    # 231M rows, at default settings
    --scales 1200 --sections train,layer
    --sections inference --inference-home HOME      # the Lambda on HOME's latest run
    --scales 300,1200 --sections spark              # Spark vs DuckDB, the same dbt build

Full = `apy-runway ingest` of the whole history + `apy-runway build` (every model and
test, from scratch); the refresh section then lands one more hour, then one more day,
in that home and runs `apy-runway refresh` (no collect, no publish), and records each
against the same run's full figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import sys
import time
from pathlib import Path

from apy_runway.foundation.paths import REPO_ROOT
from benchmarks.measure import Measurement, measure, python_argv
from benchmarks.refresh_input import split_by_month, with_new_snapshots  # noqa: F401
from inference import contracts

RESULTS = Path(__file__).resolve().parent / "results" / "results.jsonl"
SECTIONS = ("scale", "refresh", "train", "inference", "layer", "spark")
# what `make bench` runs without --sections
DEFAULT_SECTIONS = "scale,inference"


def results_path() -> Path:
    """Where figures are appended: RESULTS, or $APY_RUNWAY_BENCH_RESULTS (the
    smoke runs of tests/test_benchmarks.py write to a temporary file)."""
    return Path(os.environ.get(contracts.ENV_BENCH_RESULTS) or RESULTS)


def cli(home: Path, *args: str) -> list[str]:
    return python_argv("apy_runway.cli", "--home", str(home), *args)


def machine() -> str:
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{platform.machine()} {os.cpu_count()} cpu {memory_gb:.0f} GB, "
        f"Python {platform.python_version()}"
    )


def record(section: str, scale: str, **figures) -> dict:
    row = {
        "section": section,
        "scale": scale,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "loadavg_1m_end": round(os.getloadavg()[0], 2),
        **figures,
    }
    results = results_path()
    results.parent.mkdir(parents=True, exist_ok=True)
    with results.open("a") as handle:
        handle.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)
    return row


def figures(m: Measurement) -> dict:
    return {
        "wall_s": round(m.wall_s, 2),
        "peak_rss_mb": round(m.peak_rss_mb, 1),
        "loadavg_1m_start": m.loadavg_start,
    }


def last_json(log: Path) -> dict:
    """The last JSON line a benchmark child printed."""
    for line in reversed(log.read_text().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"no JSON result in {log}")


def generated(workdir: Path, pools: int, days: int, log: Path) -> Path:
    """Generate (once, cached) hourly data for pools x days."""
    path = workdir / f"generated_{pools}x{days}.parquet"
    if not path.exists():
        m = measure(
            cli(
                workdir / "gen-home",
                "generate",
                "--pools",
                str(pools),
                "--days",
                str(days),
                "--out",
                str(path),
            ),
            log_path=log,
        )
        record("generate", f"{pools}x{days}", **figures(m))
    return path


def parquet_rows(path: Path) -> int:
    import duckdb

    return duckdb.connect().execute(f"select count(*) from read_parquet('{path}')").fetchone()[0]


def dbt_profile(home: Path) -> dict:
    """Where dbt build's time went, from its run_results.json (seconds)."""
    from apy_runway.foundation.paths import project_paths
    from apy_runway.warehouse.dbt import dbt_target_dir

    results = json.loads((dbt_target_dir(project_paths(home)) / "run_results.json").read_text())
    models: dict[str, float] = {}
    tests = 0.0
    for node in results["results"]:
        kind, *_, name = node["unique_id"].split(".")
        if kind == "model":
            models[name] = round(node["execution_time"], 2)
        elif kind == "test":  # not the on-run-start hook (an "operation")
            tests += node["execution_time"]
    return {
        "dbt_elapsed_s": round(results["elapsed_time"], 2),
        "models_s": round(sum(models.values()), 2),
        "tests_s_summed_over_threads": round(tests, 2),
        "tests": sum(1 for n in results["results"] if n["unique_id"].startswith("test.")),
        "per_model_s": dict(sorted(models.items(), key=lambda kv: -kv[1])),
    }


def bounded_profiles(workdir: Path, memory_limit: str) -> Path:
    """A copy of profiles.yml whose DuckDB settings add memory_limit and a spill folder."""
    import yaml

    profiles = yaml.safe_load((REPO_ROOT / "profiles.yml").read_text())
    for output in profiles["apy_runway"]["outputs"].values():
        output.setdefault("settings", {}).update(
            {"memory_limit": memory_limit}
        )  # spills to <database>.tmp; temp_directory cannot be re-set per thread
    folder = workdir / f"profiles_{memory_limit}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "profiles.yml").write_text(yaml.safe_dump(profiles, sort_keys=False, width=1000))
    return folder


def bench_scale(
    workdir: Path,
    pools: int,
    days: int,
    log: Path,
    pandas: bool = True,
    engine: bool = True,
    ingest_args: list[str] | None = None,
    wait_before_build: Path | None = None,
    dbt_memory_limit: str | None = None,
    skip_ingest: bool = False,
    split_months: bool = False,
) -> dict:
    scale = f"{pools}x{days}"
    source = generated(workdir, pools, days, log)
    rows = parquet_rows(source)
    home = workdir / f"home_{scale}"
    history = source
    if split_months:
        history = workdir / f"history_{scale}_by_month"
        if not history.exists():
            split_by_month(source, history)
    ingest = (
        None
        if skip_ingest
        else measure(
            cli(home, "ingest", "--replace", *(ingest_args or []), str(history)), log_path=log
        )
    )
    while wait_before_build and not wait_before_build.exists():
        time.sleep(10)  # keep a big build from overlapping another memory-heavy measurement
    build_env = (
        {"DBT_PROFILES_DIR": str(bounded_profiles(workdir, dbt_memory_limit))}
        if dbt_memory_limit
        else None
    )
    build = measure(cli(home, "build"), env=build_env, log_path=log)
    ours_s = (ingest.wall_s if ingest else 0) + build.wall_s
    ours_mb = max(ingest.peak_rss_mb if ingest else 0, build.peak_rss_mb)
    row = {
        "rows": rows,
        "ingest_args": ingest_args or [],
        "history_files": "one per month" if split_months else "one",
        "dbt_memory_limit": dbt_memory_limit or "default (1GB)",
        "ingest": figures(ingest) if ingest else "skipped (already ingested)",
        "dbt_build": figures(build),
        "end_to_end_s": round(ours_s, 2),
        "end_to_end_peak_mb": round(ours_mb, 1),
        "rows_per_s": round(rows / ours_s),
        "dbt_profile": dbt_profile(home),
    }
    if engine:
        engine_log = workdir / f"engine_{scale}.log"
        engine_log.unlink(missing_ok=True)
        m = measure(python_argv("benchmarks.engine_only", str(home)), log_path=engine_log)
        row["engine_only"] = {**last_json(engine_log), **figures(m)}
    if pandas:
        out = workdir / f"pandas_{scale}.parquet"
        proto = measure(
            python_argv("benchmarks.pandas_prototype", str(source), str(out)), log_path=log
        )
        row["pandas"] = figures(proto)
        row["speedup_end_to_end"] = round(proto.wall_s / ours_s, 2)
        row["memory_ratio_end_to_end"] = round(ours_mb / proto.peak_rss_mb, 3)
        if engine:
            row["speedup_engine_only"] = round(proto.wall_s / row["engine_only"]["engine_s"], 2)
            row["memory_ratio_engine_only"] = round(
                row["engine_only"]["peak_rss_mb"] / proto.peak_rss_mb, 3
            )
        out.unlink(missing_ok=True)
    return record("scale", scale, **row)


def dbt_build_argv(target: str) -> list[str]:
    """`dbt build --full-refresh` of the project on one profiles.yml target."""
    from apy_runway.foundation.defaults import DBT_PROJECT_DIR
    from apy_runway.warehouse.dbt import dbt_executable

    return [
        dbt_executable(),
        "--no-use-colors",
        "build",
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--full-refresh",
        "--target",
        target,
        # the ledger's models are DuckDB-only (dbt_project/README.md): both sides alike
        "--exclude",
        "tag:ledger",
    ]


def bench_spark(workdir: Path, pools: int, days: int, log: Path) -> dict:
    """The same `dbt build --full-refresh` on DuckDB (the anchor, dev target) and on
    Spark (the `spark` target: local[2] session in dbt's process, its JVM included in
    the peak memory), over one raw store, one after the other in this run; each with
    its per-model times from run_results.json."""
    import shutil

    from apy_runway.foundation.paths import project_paths
    from apy_runway.warehouse.dbt import dbt_target_dir

    scale = f"{pools}x{days}"
    source = generated(workdir, pools, days, log)
    duck = project_paths(workdir / f"home_{scale}").ensure()
    if not (duck.data / "raw" / "pool_snapshots").exists():
        measure(cli(duck.home, "ingest", "--replace", str(source)), log_path=log)
    spark = project_paths(workdir / f"home_{scale}_spark")
    shutil.rmtree(spark.home, ignore_errors=True)
    spark.ensure()
    shutil.copytree(duck.data / "raw", spark.data / "raw", dirs_exist_ok=True)
    row: dict = {"rows": parquet_rows(source)}
    for name, paths, target in (("duckdb", duck, "dev"), ("spark", spark, "spark")):
        env = {
            **paths.dbt_env(),
            "DBT_LOG_PATH": str(paths.data / "dbt_logs"),
            "DBT_TARGET_PATH": str(dbt_target_dir(paths)),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        }
        m = measure(dbt_build_argv(target), env=env, log_path=log)
        row[name] = {**figures(m), "dbt_profile": dbt_profile(paths.home)}
    row["spark_over_duckdb_wall"] = round(row["spark"]["wall_s"] / row["duckdb"]["wall_s"], 2)
    return record("spark", scale, **row)


def newest_scale_row(scale: str) -> dict | None:
    """The last full (ingest + build) figures of this scale in results.jsonl."""
    results = results_path()
    if not results.exists():
        return None
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    full = [
        r
        for r in rows
        if r["section"] == "scale" and r["scale"] == scale and isinstance(r.get("ingest"), dict)
    ]
    return full[-1] if full else None


def refresh_figures(home: Path, log: Path) -> dict:
    """What the last `apy-runway refresh` printed (its summary line) and dbt's
    execution time (run_results.json) if it ran dbt."""
    summary = next(
        (line for line in reversed(log.read_text().splitlines()) if line.startswith("refresh ok")),
        "",
    )
    figures_ = {"summary": summary}
    if "build incremental" in summary or "build full" in summary:
        figures_["dbt_profile"] = dbt_profile(home)
    return figures_


def timed_refresh(workdir: Path, home: Path, scale: str, full_s: float, step: str, **extra) -> None:
    """One `apy-runway refresh` process in `home`, recorded as `step` with its
    ratio to the full build and what its summary line and dbt say."""
    step_log = workdir / f"refresh_{scale}.log"
    step_log.unlink(missing_ok=True)
    m = measure(cli(home, "refresh"), log_path=step_log)
    record(
        "refresh",
        scale,
        step=step,
        **extra,
        **figures(m),
        full_s=full_s,
        ratio_to_full=round(m.wall_s / full_s, 4),
        **refresh_figures(home, step_log),
    )


def bench_refresh(workdir: Path, pools: int, days: int, log: Path) -> None:
    """`apy-runway refresh` (no collect, no publish) after one more hour, then one
    more day, in the home the scale section built in full; then with nothing new
    (our fixed cost without dbt) and dbt's own start-up + full parse."""
    scale = f"{pools}x{days}"
    source = generated(workdir, pools, days, log)
    home = workdir / f"home_{scale}"
    full = newest_scale_row(scale)
    if not (home / "data" / "build_state.json").exists() or full is None:
        raise RuntimeError(f"refresh needs the scale section's built home first ({home})")
    full_s = full["end_to_end_s"]
    landing = home / "data" / "landing" / "bench"
    # a rerun's scale section started a new store: the last run's refresh
    # inputs would all land in the first refresh
    shutil.rmtree(landing, ignore_errors=True)
    landing.mkdir(parents=True, exist_ok=True)
    for label, hours in (("+1 hour", 1), ("+1 day", 24)):
        new = landing / f"plus_{hours}h.parquet"
        # in a child: a parent grown by DuckDB would hand its RSS high-water mark
        # to every child it forks (Linux copies it at fork), inflating their peaks
        measure(
            python_argv("benchmarks.refresh_input", str(source), str(new), str(hours)),
            log_path=log,
        )
        timed_refresh(
            workdir,
            home,
            scale,
            full_s,
            f"refresh after {label}",
            new_rows=parquet_rows(new),
            full_peak_mb=full["end_to_end_peak_mb"],
        )
    timed_refresh(workdir, home, scale, full_s, "refresh with nothing new (no dbt)")
    bench_backfill_and_warm(workdir, home, source, scale, full)
    parse = measure(cli(home, "build", "--command", "parse"), log_path=log)
    record(
        "refresh",
        scale,
        step="dbt start-up + full parse (apy-runway build --command parse, new vars)",
        **figures(parse),
        full_s=full_s,
        ratio_to_full=round(parse.wall_s / full_s, 4),
    )


def bench_backfill_and_warm(
    workdir: Path, home: Path, source: Path, scale: str, full: dict
) -> None:
    """A refresh after a back-fill of 20 new pools with a year of daily history
    each; then the hourly refresh in one long-lived process (a DbtSession, as
    `refresh --every 1h`): its first build parses, the next hour's is warm, and
    so is the back-fill of 20 more new pools after it."""
    full_s = full["end_to_end_s"]
    new = home / "data" / "landing" / "bench" / "backfill_20x365.parquet"
    measure(
        python_argv("benchmarks.refresh_input", str(source), str(new), "--backfill", "20", "365"),
        log_path=workdir / "bench.log",
    )
    timed_refresh(
        workdir,
        home,
        scale,
        full_s,
        "refresh after a back-fill of 20 new pools, 365 days each",
        new_rows=parquet_rows(new),
    )
    step_log = workdir / f"refresh_{scale}.log"
    step_log.unlink(missing_ok=True)
    m = measure(
        python_argv(
            "benchmarks.warm_refresh", str(home), str(source), "25", "--backfill", "20", "365"
        ),
        log_path=step_log,
    )
    warm = json.loads(
        next(line for line in reversed(step_log.read_text().splitlines()) if line.startswith("{"))
    )
    record(
        "refresh",
        scale,
        step="refresh after +1 hour in a warm process (refresh --every: the manifest kept)",
        **figures(m),
        **warm,
        full_s=full_s,
        ratio_to_full=round(warm["warm_s"] / full_s, 4),
        first_ratio_to_full=round(warm["first_s"] / full_s, 4),
        backfill_ratio_to_full=round(warm["backfill_s"] / full_s, 4),
    )


def bench_train(workdir: Path, pools: int, days: int, log: Path, grid: str) -> None:
    home = workdir / f"home_{pools}x{days}"
    run_id = f"bench_{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    train = measure(cli(home, "train", "--no-report", "--run-id", run_id), log_path=log)
    metadata = json.loads((home / "runs" / run_id / "metadata.json").read_text())
    record(
        "train",
        f"{pools}x{days}",
        step="apy-runway train --no-report",
        **figures(train),
        production=metadata["model_name"],
        artefact_mb=round(metadata["model_size_bytes"] / 1e6, 3),
        predict_proba_latency=metadata.get(
            "predict_proba_latency", metadata.get("predict_proba_ms_20k_rows")
        ),
        train_rows=metadata["training"]["train_rows"],
        test_rows=metadata["training"]["test_rows"],
        models={
            name: {
                "test_auc": round(m["test"]["roc_auc"], 4),
                "fit_s": round(m["fit_seconds"], 2),
                "cv_auc_mean": round(m["cv"]["cv_auc_mean"], 4),
            }
            for name, m in metadata["metrics"].items()
        },
        rf_candidates=[
            {
                **c["params"],
                "cv_auc_mean": round(c["cv_auc_mean"], 4),
                "reference": c["reference"],
                "last_fold_model_mb": round(c["last_fold_model_mb"], 2),
                "chosen": c["chosen"],
            }
            for c in metadata["random_forest"]["candidates_on_folds"]
        ],
    )
    grid_log = workdir / f"train_grid_{pools}x{days}.log"
    grid_log.unlink(missing_ok=True)
    m = measure(python_argv("benchmarks.train_bench", str(home), "--grid", grid), log_path=grid_log)
    record(
        "train",
        f"{pools}x{days}",
        step="benchmarks.train_bench (one time split, each model)",
        **figures(m),
        **last_json(grid_log),
    )


def inference_home(workdir: Path, home: str | None, log: Path) -> Path:
    """The home the inference section publishes from: `home`, or
    workdir/home_inference built once like `make run` (generated default
    data, trained; no scoring or board)."""
    if home:
        return Path(home)
    built = workdir / "home_inference"
    if not (built / "runs" / "latest").exists():
        measure(cli(built, "run-all", "--skip-score", "--skip-board"), log_path=log)
    return built


def bench_inference(
    workdir: Path, log: Path, home: str | None, run: str | None, n_pools: int, extra: list[str]
) -> dict:
    """The hourly Lambda against predict_proba (n_jobs=1) in one run
    (benchmarks/inference_bench.py): the warm invocation / predict_proba ratio
    with its breakdown, cold starts (ours and the scikit-learn way), layers,
    and with --prototype the 100-tree forest (measured, not gated)."""
    home_dir = inference_home(workdir, home, log)
    run_dir = Path(run) if run else (home_dir / "runs" / "latest").resolve()
    inference_log = workdir / "inference.log"
    inference_log.unlink(missing_ok=True)
    m = measure(
        python_argv(
            "benchmarks.inference_bench",
            str(home_dir),
            str(run_dir),
            "--pools",
            str(n_pools),
            "--workdir",
            str(workdir / "inference"),
            *extra,
        ),
        log_path=inference_log,
    )
    figures_ = last_json(inference_log)
    warm = figures_["warm"]
    print(
        f"warm invocation / predict_proba (n_jobs=1) at {n_pools} pools: "
        f"{warm['warm_over_predict_proba']} ({warm['warm_invocation_ms']} ms / "
        f"{warm['predict_proba_n_jobs_1_ms']} ms; median ratio "
        f"{warm['warm_over_predict_proba_median']}), load {figures_['load_1m_at_start']}"
        f"-{figures_['load_1m_at_end']}; breakdown (ms): {warm['breakdown_ms']}, "
        f"overlapped: {warm['overlapped_ms']}; cold start "
        f"{figures_.get('cold', {}).get('cold_start_ms')} ms",
        flush=True,
    )
    return record("inference", f"{n_pools} pools", **figures(m), **figures_)


def bench_layer(workdir: Path, log: Path) -> None:
    """./createlayer.sh for this interpreter's version: its build time and the layer's sizes."""
    import re
    import shutil

    out = workdir / "layer"
    shutil.rmtree(out, ignore_errors=True)
    layer_log = workdir / "layer.log"
    layer_log.unlink(missing_ok=True)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    m = measure(
        [str(REPO_ROOT / "createlayer.sh"), version, "--out-dir", str(out)],
        env={"PYTHON": sys.executable},
        log_path=layer_log,
    )
    sizes = {
        kind: int(n)
        for kind, n in re.findall(r"^(unzipped|zipped): (\d+) bytes", layer_log.read_text(), re.M)
    }
    record(
        "layer",
        f"python {version}",
        step="./createlayer.sh",
        **figures(m),
        unzipped_mb=round(sizes["unzipped"] / 2**20, 1),
        zipped_mb=round(sizes["zipped"] / 2**20, 1),
        lambda_unzipped_limit_mb=250,
    )
    shutil.rmtree(out / "python", ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scales", default="120,1200", help="comma-separated pool counts (hourly, --days each)"
    )
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument(
        "--sections",
        default=DEFAULT_SECTIONS,
        help=f"comma-separated, of {','.join(SECTIONS)} (default {DEFAULT_SECTIONS})",
    )
    parser.add_argument(
        "--no-pandas", action="store_true", help="skip the pandas anchor (e.g. at 350M rows)"
    )
    parser.add_argument(
        "--no-engine", action="store_true", help="skip the engine-only rerun of the SQL"
    )
    parser.add_argument(
        "--ingest-args",
        default="",
        help="extra `apy-runway ingest` arguments, e.g. --memory-limit 3GB",
    )
    parser.add_argument(
        "--train-grid",
        default="10:50,20:50,40:50,40:25,100:50,100:1",
        help="random-forest TREES:MIN_SAMPLES_LEAF cells of the train section",
    )
    parser.add_argument(
        "--run", default=None, help="inference: run folder (default: the home's runs/latest)"
    )
    parser.add_argument(
        "--inference-home",
        default=None,
        help="inference: a built home with a trained run (default: WORKDIR/home_inference, "
        "built like `make run` on first use)",
    )
    parser.add_argument("--inference-pools", type=int, default=20_000)
    parser.add_argument(
        "--inference-args",
        default="--prototype",
        help="more benchmarks.inference_bench arguments, e.g. '--no-layers --repeat 3'",
    )
    parser.add_argument(
        "--wait-before-build",
        type=Path,
        default=None,
        help="scale: start dbt build only once this file exists",
    )
    parser.add_argument(
        "--dbt-memory-limit",
        default=None,
        help="scale: build with a profiles.yml copy setting DuckDB memory_limit (e.g. 1GB)",
    )
    parser.add_argument(
        "--skip-ingest", action="store_true", help="scale: build the already-ingested home"
    )
    parser.add_argument(
        "--split-months",
        action="store_true",
        help="scale: land the generated history as one file per month (as a live store holds "
        "it) instead of one file",
    )
    parser.add_argument("--done-file", type=Path, default=None, help="touched when this run ends")
    parser.add_argument("--workdir", default=str(REPO_ROOT / "data" / "bench"))
    args = parser.parse_args(argv)
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "bench.log"
    sections = set(args.sections.split(","))
    unknown = sections - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")
    if "layer" in sections:
        bench_layer(workdir, log)
    if "inference" in sections:
        bench_inference(
            workdir,
            log,
            args.inference_home,
            args.run,
            args.inference_pools,
            shlex.split(args.inference_args),
        )
    for pools in (int(p) for p in args.scales.split(",")):
        if "scale" in sections:
            bench_scale(
                workdir,
                pools,
                args.days,
                log,
                pandas=not args.no_pandas,
                engine=not args.no_engine,
                ingest_args=shlex.split(args.ingest_args),
                wait_before_build=args.wait_before_build,
                dbt_memory_limit=args.dbt_memory_limit,
                skip_ingest=args.skip_ingest,
                split_months=args.split_months,
            )
        if "refresh" in sections:
            bench_refresh(workdir, pools, args.days, log)
        if "train" in sections:
            bench_train(workdir, pools, args.days, log, args.train_grid)
        if "spark" in sections:
            bench_spark(workdir, pools, args.days, log)
    if args.done_file:
        args.done_file.touch()
    return 0


if __name__ == "__main__":
    sys.exit(main())
