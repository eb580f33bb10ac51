"""The hourly Lambda against scikit-learn's predict_proba (n_jobs=1), in one run:

    python -m benchmarks.inference_bench HOME RUN_DIR [--pools 20000] [--repeat 5]
        [--cold-runs 3] [--prototype] [--no-layers] [--workdir DIR]

HOME's latest features, replicated to --pools pools, and RUN_DIR's model are
published to a local S3 (moto on 127.0.0.1). Each child is a fresh process:
`warm` times whole warm invocations of handler.scheduled (GET to latest.json)
side by side with the pipeline's predict_proba on the same rows, with the
breakdown the handler reports; `cold` and `sklearn` are the cold starts in a
clean interpreter with only a layer (ours, and the old scikit-learn path). It
prints one JSON line (milliseconds unless named); RESULTS.md says what it means.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import time
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BOTO3_CACHE = REPO / "build" / "layer-cache"
BUCKET = "apy-runway-bench"


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def event(day: str, hour: int) -> dict:
    return {
        "version": "0",
        "id": f"bench-{hour}",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "time": f"{day}T{hour:02d}:00:00Z",
        "region": "us-east-1",
        "detail": {},
    }


def single_threaded(model: Any) -> Any:
    """Set n_jobs = 1 on every estimator inside `model` (a Pipeline, training's
    CalibratedClassifier, scikit-learn's CalibratedClassifierCV)."""
    seen: set[int] = set()

    def visit(part: Any) -> None:
        if part is None or id(part) in seen or isinstance(part, (str, int, float)):
            return
        seen.add(id(part))
        if hasattr(part, "n_jobs"):
            part.n_jobs = 1
        for _, step in getattr(part, "steps", []):
            visit(step)
        for name in ("estimator", "base_estimator", "calibrator"):
            visit(getattr(part, name, None))
        for inner in getattr(part, "calibrated_classifiers_", []):
            visit(inner)

    visit(model)
    return model


# --------------------------------------------------------------------------- inputs


def replicated_table(home: Path, pools: int):
    """HOME's latest features (an Arrow table), rows replicated under new pool ids."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from apy_runway.foundation.paths import project_paths

    paths = project_paths(home)
    table = pq.read_table(paths.latest_features)
    copies = -(-pools // table.num_rows)
    parts = []
    for copy in range(copies):
        ids = pc.binary_join_element_wise(table["pool_id"], pa.scalar(f"-copy{copy}"), "")
        parts.append(table.set_column(table.schema.get_field_index("pool_id"), "pool_id", ids))
    feature_columns = json.loads(paths.feature_columns.read_text())
    return pa.concat_tables(parts).slice(0, pools), feature_columns


def object_matrix(model: Any, table: Any) -> Any:
    """The rows of a decoded features file as training feeds the pipeline."""
    import numpy as np

    X = np.empty((table.row_count, len(model.spec.features)), dtype=object)
    for j, name in enumerate(model.spec.features):
        if name in model.spec.numeric_features:
            X[:, j] = table.numeric_column(name)
        else:
            X[:, j] = table.text_column(name)
    return X


def build_layer(workdir: Path, name: str, *argv: str) -> dict:
    out = workdir / f"layer-{name}"
    shutil.rmtree(out, ignore_errors=True)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    started = time.perf_counter()
    done = subprocess.run(
        [str(REPO / "createlayer.sh"), version, "--out-dir", str(out), *argv],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"createlayer.sh {name} failed:\n{done.stderr[-3000:]}")
    sizes = dict(re.findall(r"^(unzipped|zipped): (\d+) bytes", done.stdout, re.M))
    du = subprocess.run(["du", "-sb", str(out / "python")], capture_output=True, text=True)
    return {
        "path": str(out / "python"),
        "du_sb_bytes": int(du.stdout.split()[0]),
        "du_sb_mib": round(int(du.stdout.split()[0]) / 2**20, 1),
        "zipped_mib": round(int(sizes["zipped"]) / 2**20, 1),
        "build_s": round(time.perf_counter() - started, 1),
    }


def boto3_folder() -> Path:
    """boto3 and its dependencies alone (what the Lambda runtime provides);
    shared with tests/test_layer.py's cache."""
    version = importlib_metadata.version("boto3")
    target = BOTO3_CACHE / f"boto3-{version}"
    if not (target / "boto3").is_dir():
        staging = BOTO3_CACHE / f"boto3-{version}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-compile",
                "--target",
                str(staging),
                f"boto3=={version}",
            ],
            check=True,
            capture_output=True,
        )
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    # the runtime's boto3 comes compiled; the clean children run with -B
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "0", str(target)],
        check=True,
        capture_output=True,
    )
    return target


# --------------------------------------------------------------------------- children


def child_cold(day: str, hour: int, spawned: float) -> dict:
    """A clean interpreter (layer + inference/ + boto3): the first scheduled
    invocation after the process was spawned (a newer hour than any before,
    so it writes latest.json as an hourly run does)."""
    from inference import handler

    imported = time.time()
    first = handler.scheduled(event(day, hour), None)
    done = time.time()
    return {
        "pools": first["pools"],
        "scored": first["scored"],
        "cold_start_ms": ms(done - spawned),
        "interpreter_and_imports_ms": ms(imported - spawned),
        "first_invocation_ms": ms(done - imported),
        "first_invocation_parts_ms": first["ms"],
        "modules": sorted(
            {m.split(".")[0] for m in sys.modules} & {"sklearn", "scipy", "joblib", "pandas"}
        ),
    }


def child_sklearn(day: str, spawned: float, repeat: int) -> dict:
    """A clean interpreter with the scikit-learn layer: the Lambda's old path
    (unpickle model.joblib, JSON features, object matrix, predict_proba,
    write the predictions; no reasons, no monitoring)."""
    import io

    import boto3
    import joblib
    import numpy as np

    imported = time.time()
    client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])

    def invocation(model=None):
        if model is None:
            raw = client.get_object(Bucket=BUCKET, Key="models/latest/model.joblib")["Body"].read()
            model = single_threaded(joblib.load(io.BytesIO(raw)))
        key = "features/latest_features.json"
        payload = json.loads(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
        meta = json.loads(
            client.get_object(Bucket=BUCKET, Key="models/latest/metadata.json")["Body"].read()
        )
        columns, names = payload["columns"], meta["features"]
        numeric = set(meta["numeric_features"])
        matrix = np.empty((len(columns["pool_id"]), len(names)), dtype=object)
        for j, name in enumerate(names):
            if name in numeric:
                matrix[:, j] = np.asarray(columns[name], dtype=float)
            else:
                matrix[:, j] = [None if v is None else str(v) for v in columns[name]]
        proba = model.predict_proba(matrix)
        records = [
            {"pool_id": p, "p_down": round(d, 6), "p_keep": round(k, 6)}
            for p, (d, k) in zip(columns["pool_id"], proba.tolist(), strict=True)
        ]
        body = json.dumps({"predictions": records}).encode()
        client.put_object(Bucket=BUCKET, Key="bench/sklearn.json", Body=body)
        return model

    model = invocation()
    cold_done = time.time()
    warm = []
    for _ in range(repeat):
        started = time.perf_counter()
        invocation(model)
        warm.append(time.perf_counter() - started)
    return {
        "cold_start_ms": ms(cold_done - spawned),
        "interpreter_and_imports_ms": ms(imported - spawned),
        "warm_invocation_ms": ms(min(warm)),
        "note": "old path: JSON features, object matrix, predict_proba n_jobs=1, no reasons",
    }


def child_warm(run_dir: str, day: str, repeat: int) -> dict:
    """Warm invocations of handler.scheduled, each followed by the pipeline's
    predict_proba (n_jobs=1) on the same rows; then our scoring alone and
    with reasons against predict_proba, and the largest difference."""
    import joblib
    import numpy as np

    from inference import features, handler, reasons, scoring, settings

    handler.scheduled(event(day, 0), None)  # the cold one, not counted
    current = settings.current()
    model = handler.get_model(current).model
    data = handler.s3(current).get_object(Bucket=current.bucket, Key=current.features_key)
    table = features.decode(data["Body"].read())
    X = object_matrix(model, table)
    pipeline = single_threaded(joblib.load(Path(run_dir) / "model.joblib"))
    numeric, codes = scoring.table_inputs(model, table)
    usable = ~model.out_of_range(numeric).any(axis=1)

    def ours():
        return scoring.score_inputs(model, *scoring.table_inputs(model, table)).proba

    def explained():
        scores = scoring.score_inputs(model, numeric, codes, explain=True)

        def value_of(name):
            if name in model.spec.numeric_features:
                return numeric[:, model.numeric_features.index(name)]
            return table.text_column(name)

        return reasons.explain(model.spec.features, scores.contributions, value_of)

    timings: dict[str, list[float]] = {}
    summaries = []
    steps = (
        ("warm_invocation", lambda hour: summaries.append(handler.scheduled(event(day, hour)))),
        ("predict_proba", lambda hour: pipeline.predict_proba(X)),
        ("scoring", lambda hour: ours()),
        ("scoring_with_reasons", lambda hour: explained()),
    )
    for hour in range(1, repeat + 1):  # interleaved: each sees the same load
        for name, step in steps:
            started = time.perf_counter()
            step(hour)
            timings.setdefault(name, []).append(time.perf_counter() - started)
    best = {name: min(values) for name, values in timings.items()}
    median = {name: statistics.median(values) for name, values in timings.items()}
    fastest = summaries[int(np.argmin(timings["warm_invocation"]))]
    anchor = best["predict_proba"]
    difference = float(np.max(np.abs(ours()[usable] - pipeline.predict_proba(X[usable]))))
    return {
        "pools": fastest["pools"],
        "scored": fastest["scored"],
        "n_trees": getattr(model.estimator, "n_trees", None),
        "warm_invocation_ms": ms(best["warm_invocation"]),
        "predict_proba_n_jobs_1_ms": ms(anchor),
        "warm_over_predict_proba": round(best["warm_invocation"] / anchor, 2),
        "warm_over_predict_proba_median": round(
            median["warm_invocation"] / median["predict_proba"], 2
        ),
        "warm_invocation_ms_all": [ms(s) for s in timings["warm_invocation"]],
        "predict_proba_ms_all": [ms(s) for s in timings["predict_proba"]],
        "breakdown_ms": fastest["ms"],
        "overlapped_ms": fastest["side_ms"],
        "breakdown_over_predict_proba": {
            phase: round(value / 1000 / anchor, 3) for phase, value in fastest["ms"].items()
        },
        "scoring_ms": ms(best["scoring"]),
        "scoring_over_predict_proba": round(best["scoring"] / anchor, 2),
        "scoring_with_reasons_ms": ms(best["scoring_with_reasons"]),
        "max_abs_difference_vs_predict_proba": difference,
        "rows_compared": int(usable.sum()),
    }


def child_prototype(home: str, run_dir: str, repeat: int, pools: int, trees: int) -> dict:
    """Our scoring against predict_proba for a prototype-sized forest (100
    trees, min_samples_leaf 1, all rows) fitted here: measured, not gated."""
    import numpy as np

    from apy_runway.operations.publish import features_binary
    from inference import features, scoring
    from inference.model import portable
    from models_py import config, export
    from models_py.data import load_training_set
    from models_py.pipelines import build_pipeline
    from models_py.splits import time_split

    table_arrow, feature_columns = replicated_table(Path(home), pools)
    table = features.decode(features_binary(table_arrow, feature_columns))
    spec = json.loads((Path(run_dir) / "model_spec.json").read_text())
    exports = Path(home) / "data" / "exports"
    data = load_training_set(exports / "training_set.parquet", exports / "feature_columns.json")
    split = time_split(data.dates, data.label_end_dates, config.TEST_FRACTION)
    params = {**config.RF_REFERENCE, "n_estimators": trees}
    pipeline = build_pipeline("random_forest", data.features, data.categorical, params)
    started = time.perf_counter()
    pipeline.fit(data.matrix()[split.train_index], data.y[split.train_index])
    fit_s = round(time.perf_counter() - started, 1)
    facts = {k: spec[k] for k in export.PORTABLE_FACTS if k in spec}
    spec_bytes, arrays, _ = export.export(pipeline, facts, data.matrix()[split.test_index][:2000])
    model = portable.load(json.loads(spec_bytes), portable.read_arrays(arrays))
    single_threaded(pipeline)
    X = object_matrix(model, table)
    numeric, codes = scoring.table_inputs(model, table)
    timings: dict[str, list[float]] = {}
    for _ in range(repeat):
        for name, step in (
            ("scoring", lambda: scoring.score_inputs(model, numeric, codes)),
            ("predict_proba", lambda: pipeline.predict_proba(X)),
            ("contributions", lambda: scoring.score_inputs(model, numeric, codes, True)),
        ):
            started = time.perf_counter()
            step()
            timings.setdefault(name, []).append(time.perf_counter() - started)
    best = {name: min(values) for name, values in timings.items()}
    ours = scoring.score_inputs(model, numeric, codes).proba
    return {
        "fit_s": fit_s,
        "arrays_mb": round(len(arrays) / 1e6, 2),
        "scoring_ms": ms(best["scoring"]),
        "predict_proba_n_jobs_1_ms": ms(best["predict_proba"]),
        "scoring_over_predict_proba": round(best["scoring"] / best["predict_proba"], 2),
        "scoring_with_contributions_ms": ms(best["contributions"]),
        "max_abs_difference": float(np.max(np.abs(ours - pipeline.predict_proba(X)))),
    }


# --------------------------------------------------------------------------- parent


def spawn(argv: list[str], env: dict, python_path: list[str] | None = None) -> dict:
    """Run a child; return its last JSON line. `python_path`: a clean -I -S
    interpreter whose sys.path is exactly those folders plus the stdlib."""
    spawned = time.time()
    if python_path is not None:
        bootstrap = (
            "import sys; sys.path[:0] = " + json.dumps(python_path) + "; "
            "sys.argv = "
            + json.dumps(["inference_bench", *argv, "--spawned", repr(spawned)])
            + "; "
            "path = " + json.dumps(__file__) + "; "
            "exec(compile(open(path).read(), path, 'exec'), "
            "{'__name__': '__main__', '__file__': path})"
        )
        # -B: nothing compiled here is kept (/var/task and /opt are read-only)
        command = [sys.executable, "-I", "-S", "-B", "-c", bootstrap]
    else:
        command = [sys.executable, "-m", "benchmarks.inference_bench", *argv]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO)
    if done.returncode:
        raise RuntimeError(f"child {argv[:2]} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_child(args: argparse.Namespace) -> int:
    if args.child == "cold":
        figures = child_cold(args.event_day, args.hour, args.spawned)
    elif args.child == "sklearn":
        figures = child_sklearn(args.event_day, args.spawned, args.repeat)
    elif args.child == "warm":
        figures = child_warm(args.run_dir, args.event_day, args.repeat)
    else:
        figures = child_prototype(
            args.home, args.run_dir, args.repeat, args.pools, args.prototype_trees
        )
    print(json.dumps(figures), flush=True)
    return 0


def layers(args: argparse.Namespace, workdir: Path, run_dir: Path) -> tuple[dict, dict]:
    """(ours, scikit-learn's) layer folders: built by createlayer.sh, or with
    --no-layers this interpreter's site-packages for both (a smoke run)."""
    if args.no_layers:
        venv = {"path": sysconfig.get_paths()["purelib"], "note": "--no-layers: site-packages"}
        return venv, dict(venv)
    metadata = str(run_dir / "metadata.json")
    return (
        build_layer(workdir, "numpy", "--metadata", metadata),
        build_layer(workdir, "sklearn", "--sklearn", "--metadata", metadata),
    )


def code_folder(workdir: Path) -> Path:
    """Copies of inference/ (what the function ships) and models_py/ (what
    unpickling model.joblib imports, for the old path only), byte-compiled as
    createlayer.sh compiles the function package (checked-hash), then made
    read-only as /var/task is: a cold child pays what a Lambda cold start pays."""
    code = workdir / "code"
    for folder, _, files in os.walk(code):  # a previous run's read-only copy
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
    shutil.rmtree(code, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "requirements.lock")
    shutil.copytree(REPO / "inference", code / "inference", ignore=ignore)
    shutil.copytree(REPO / "models_py", code / "models_py", ignore=ignore)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "compileall",
            "-q",
            "--invalidation-mode",
            "checked-hash",
            str(code),
        ],
        check=True,
        capture_output=True,
    )
    for folder, _, files in os.walk(code):
        for name in files:
            os.chmod(os.path.join(folder, name), 0o444)
        os.chmod(folder, 0o555)
    return code


def measure(args: argparse.Namespace) -> dict:
    import datetime as dt

    from apy_runway.foundation.s3 import ensure_bucket, local_s3_server, s3_client, upload_run
    from apy_runway.operations.publish import (
        LatestFeatures,
        columnar_payload,
        features_binary,
        publish_features,
    )
    from inference import contracts

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    run_dir = Path(args.run_dir).resolve()
    figures: dict = {"pools": args.pools, "run": run_dir.name}
    figures["load_1m_at_start"] = round(os.getloadavg()[0], 2)
    ours_layer, sklearn_layer = layers(args, workdir, run_dir)
    code, boto = str(code_folder(workdir)), str(boto3_folder())
    table, feature_columns = replicated_table(Path(args.home), args.pools)
    latest = LatestFeatures(
        columnar_payload(table.to_pydict(), feature_columns, source="bench"),
        features_binary(table, feature_columns, source="bench"),
    )
    day = (
        dt.date.fromisoformat(latest.payload["snapshot_date_max"]) + dt.timedelta(days=1)
    ).isoformat()
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for name in ("AWS_PROFILE", "APY_RUNWAY_SIGNING_KEY", "APY_RUNWAY_SIGNING_KEY_PARAMETER"):
        env.pop(name, None)
    with local_s3_server() as endpoint:
        client = s3_client(endpoint, local=True)
        ensure_bucket(client, BUCKET)
        json_size, binary_size = publish_features(client, BUCKET, latest)
        upload_run(client, BUCKET, contracts.MODEL_PREFIX, run_dir)
        env |= {"AWS_ENDPOINT_URL": endpoint, "APY_RUNWAY_BUCKET": BUCKET}
        figures["features_binary_mb"] = round(binary_size / 1e6, 2)
        figures["features_json_mb"] = round(json_size / 1e6, 2)
        common = ["--event-day", day, "--repeat", str(args.repeat)]
        figures["warm"] = spawn(["--child", "warm", args.home, str(run_dir), *common], env)
        sides = {
            "cold": ["--child", "cold", *common],
            "sklearn": ["--child", "sklearn", *common],
        }
        paths = {
            "cold": [ours_layer["path"], code, boto],
            "sklearn": [sklearn_layer["path"], code, boto],
        }
        runs: dict[str, list[dict]] = {side: [] for side in sides}
        for i in range(args.cold_runs):  # alternate, so both sides see the same load
            for side, argv in sides.items():
                hour = ["--hour", str(min(23, args.repeat + 1 + i))]
                runs[side].append(spawn([*argv, *hour], env, paths[side]))
        for side, results in runs.items():
            if results:
                best = min(results, key=lambda r: r["cold_start_ms"])
                figures[side] = {**best, "cold_start_ms_all": [r["cold_start_ms"] for r in results]}
    if args.prototype:
        argv = ["--child", "prototype", args.home, str(run_dir), "--pools", str(args.pools)]
        trees = ["--prototype-trees", str(args.prototype_trees)]
        figures["prototype"] = spawn([*argv, "--repeat", str(args.repeat), *trees], env)
    if "cold" in figures and "sklearn" in figures:
        figures["cold_start_ratio_ours_over_sklearn"] = round(
            figures["cold"]["cold_start_ms"] / figures["sklearn"]["cold_start_ms"], 2
        )
    figures["layer_ours"] = {k: v for k, v in ours_layer.items() if k != "path"}
    figures["layer_sklearn"] = {k: v for k, v in sklearn_layer.items() if k != "path"}
    figures["load_1m_at_end"] = round(os.getloadavg()[0], 2)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("home", nargs="?")
    parser.add_argument("run_dir", nargs="?")
    parser.add_argument("--pools", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--cold-runs", type=int, default=3, help="fresh processes per side (best cold start kept)"
    )
    parser.add_argument("--prototype", action="store_true", help="also the 100-tree forest")
    parser.add_argument(
        "--prototype-trees", type=int, default=100, help="its trees (a smoke run: a few)"
    )
    parser.add_argument(
        "--no-layers",
        action="store_true",
        help="skip createlayer.sh: the clean interpreters use this venv's site-packages",
    )
    parser.add_argument("--workdir", default=str(REPO / "data" / "bench" / "inference"))
    parser.add_argument(
        "--child", choices=["cold", "sklearn", "warm", "prototype"], help=argparse.SUPPRESS
    )
    parser.add_argument("--event-day", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--hour", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--spawned", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return run_child(args)
    if not (args.home and args.run_dir):
        parser.error("HOME and RUN_DIR are required")
    print(json.dumps(measure(args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
