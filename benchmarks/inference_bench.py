"""Inference: the scikit-learn-free Lambda against the scikit-learn way, in one run.

    python -m benchmarks.inference_bench HOME RUN_DIR [--pools 20000] [--prototype]

The parent builds both layers (``createlayer.sh``: ours from
inference/requirements.lock, the baseline with ``--sklearn --metadata``),
starts a local S3 (moto's ThreadedMotoServer on 127.0.0.1), publishes the
run and N pools of latest features (HOME's latest_features rows replicated
under new pool ids: the binary file the Lambda reads and the JSON copy), then
measures, each in a fresh process:

- ``ours``: a ``python -I -S`` interpreter whose path holds only the layer, a
  copy of inference/ and boto3 (as the runtime provides it). Cold start =
  from spawning the process to the end of the first scheduled invocation
  (imports, model and features read from the local S3, scoring with reasons,
  writes); warm = the next invocations (best of --repeat); and the warm
  invocation's parts.
- ``sklearn``: the same kind of interpreter with the scikit-learn layer,
  serving as the Lambda did before: import scikit-learn + joblib, GET and
  unpickle model.joblib, GET and parse the JSON features, build the object
  matrix, predict_proba, write the predictions (no reasons).
- ``scoring``: the venv's interpreter, same rows, interleaved best of
  --repeat: our scoring (model inputs from the features file -> encode ->
  forest) and our reasons (contributions, top 3, phrases) against the
  pipeline's own ``predict_proba`` (n_jobs=1) on the object matrix.
- ``--prototype``: the same ``scoring`` figures for a prototype-sized forest
  (100 trees, min_samples_leaf 1, all rows) fitted here on HOME's training
  set and exported: measured, not gated.

It prints one JSON line with every figure (milliseconds unless named).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from importlib import metadata as importlib_metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BOTO3_CACHE = REPO / "build" / "layer-cache"


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def best_ms(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - started)
    return ms(best), out


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
    return target


# --------------------------------------------------------------------------- children


def child_ours(repeat: int, day: str, spawned: float) -> dict:
    """In a clean interpreter (layer + inference/ + boto3 on the path)."""
    from inference import contracts, features, handler, publication, service, settings

    imported = time.time()
    first = handler.scheduled(event(day, 0), None)
    cold_done = time.time()
    warm = []
    for hour in range(1, repeat + 1):
        started = time.perf_counter()
        handler.scheduled(event(day, hour), None)
        warm.append(time.perf_counter() - started)
    current = settings.current()
    client = handler.s3(current)
    loaded = handler.get_model(current)
    model = loaded.model
    when = publication.parse_event_time(f"{day}T12:00:00Z")
    get_ms, data = best_ms(
        lambda: service.get_bytes(client, current.bucket, current.features_key), repeat
    )
    decode_ms, table = best_ms(lambda: features.decode(data), repeat)
    document_ms, document = best_ms(
        lambda: publication.score_published(model, table, when, 48.0), repeat
    )
    json_ms, body = best_ms(lambda: service.encode_json(document), repeat)
    put_ms, _ = best_ms(
        lambda: service.put_json(client, current.bucket, "bench/put-test.json", body, {}), repeat
    )
    return {
        "pools": first["pools"],
        "scored": first["scored"],
        "model_id": loaded.spec.model_id,
        "n_trees": getattr(model.estimator, "n_trees", None),
        "cold_start_ms": ms(cold_done - spawned),
        "interpreter_and_imports_ms": ms(imported - spawned),
        "first_invocation_ms": ms(cold_done - imported),
        "warm_invocation_ms": ms(min(warm)),
        "warm_invocation_ms_all": [ms(w) for w in warm],
        "features_get_ms": get_ms,
        "features_decode_ms": decode_ms,
        "score_published_ms": document_ms,
        "predictions_json_encode_ms": json_ms,
        "predictions_json_mb": round(len(body) / 1e6, 2),
        "predictions_put_ms": put_ms,
        "features_file_mb": round(len(data) / 1e6, 2),
        "model_files_kb": round(loaded.size_bytes / 1e3, 1),
        "modules": sorted(
            {m.split(".")[0] for m in sys.modules} & {"sklearn", "scipy", "joblib", "pandas"}
        ),
        "reasons_per_prediction": contracts.REASONS_PER_PREDICTION,
    }


def child_sklearn(repeat: int, day: str, spawned: float, bucket: str, json_key: str) -> dict:
    """In a clean interpreter with the scikit-learn layer: the Lambda's old path."""
    import io

    import boto3
    import joblib
    import numpy as np
    import sklearn.compose
    import sklearn.ensemble
    import sklearn.pipeline  # noqa: F401

    imported = time.time()
    client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])

    def invocation(model=None):
        if model is None:
            raw = client.get_object(Bucket=bucket, Key="models/latest/model.joblib")["Body"].read()
            model = joblib.load(io.BytesIO(raw))
            for step in model.steps:
                if hasattr(step[1], "n_jobs"):
                    step[1].n_jobs = 1
        payload = json.loads(client.get_object(Bucket=bucket, Key=json_key)["Body"].read())
        meta = json.loads(
            client.get_object(Bucket=bucket, Key="models/latest/metadata.json")["Body"].read()
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
        client.put_object(Bucket=bucket, Key="bench/sklearn.json", Body=body)
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


def child_scoring(home: str, run_dir: str, repeat: int, pools: int, prototype: bool) -> dict:
    """Ours vs the pipeline's predict_proba (n_jobs=1) on the same rows, interleaved."""
    import joblib
    import numpy as np

    from apy_runway.operations.publish import features_binary
    from inference import features, reasons, scoring
    from inference.model import portable

    table_arrow, feature_columns = replicated_table(Path(home), pools)
    table = features.decode(features_binary(table_arrow, feature_columns))
    run = Path(run_dir)
    pipeline = joblib.load(run / "model.joblib")
    spec = json.loads((run / "model_spec.json").read_text())
    model = portable.load(spec, portable.read_arrays((run / "model_arrays.npz").read_bytes()))
    out = {}
    if prototype:
        pipeline, model, fit_s = prototype_forest(Path(home), spec)
        out["prototype_fit_s"] = fit_s
        out["prototype_arrays_mb"] = model["arrays_mb"]
        model = model["model"]
    for step in pipeline.steps[-1:]:
        if hasattr(step[1], "n_jobs"):
            step[1].n_jobs = 1
        inner = getattr(step[1], "calibrated_classifiers_", [])
        for calibrated in inner:
            calibrated.estimator.n_jobs = 1
    numeric, codes = scoring.table_inputs(model, table)
    X = np.empty((table.row_count, len(model.spec.features)), dtype=object)
    for j, name in enumerate(model.spec.features):
        if name in model.spec.numeric_features:
            X[:, j] = table.numeric_column(name)
        else:
            X[:, j] = table.text_column(name)

    def ours():
        numeric_, codes_ = scoring.table_inputs(model, table)
        return scoring.score_inputs(model, numeric_, codes_).proba

    def theirs():
        return pipeline.predict_proba(X)

    def explained():
        scores = scoring.score_inputs(model, numeric, codes, explain=True)

        def value_of(name):
            if name in model.spec.numeric_features:
                return numeric[:, model.numeric_features.index(name)]
            return table.text_column(name)

        return reasons.explain(model.spec.features, scores.contributions, value_of)

    timings = {"ours": [], "sklearn": [], "ours_with_contributions": [], "reasons": []}
    for _ in range(repeat):
        for name, fn in (
            ("ours", ours),
            ("sklearn", theirs),
            ("ours_with_contributions", lambda: scoring.score_inputs(model, numeric, codes, True)),
            ("reasons", explained),
        ):
            started = time.perf_counter()
            fn()
            timings[name].append(time.perf_counter() - started)
    difference = float(np.max(np.abs(ours() - theirs())))
    best = {name: min(values) for name, values in timings.items()}
    contributions_only = best["ours_with_contributions"] - best["ours"]
    render = best["reasons"] - best["ours_with_contributions"]
    out.update(
        {
            "rows": table.row_count,
            "n_trees": getattr(model.estimator, "n_trees", None),
            "ours_scoring_ms": ms(best["ours"]),
            "sklearn_predict_proba_n_jobs_1_ms": ms(best["sklearn"]),
            "scoring_ratio_ours_over_sklearn": round(best["ours"] / best["sklearn"], 2),
            "ours_scoring_with_contributions_ms": ms(best["ours_with_contributions"]),
            "reasons_contributions_ms": ms(contributions_only),
            "reasons_top3_and_phrases_ms": ms(render),
            "reasons_total_ms": ms(contributions_only + render),
            "reasons_standalone_ms": ms(best["reasons"]),
            "max_abs_difference": difference,
        }
    )
    return out


def prototype_forest(home: Path, spec: dict):
    """A prototype-sized forest (100 trees, min_samples_leaf 1, all rows) on
    HOME's training rows before the test period, exported."""
    from inference.model import portable
    from models_py import config, export
    from models_py.data import load_training_set
    from models_py.pipelines import build_pipeline
    from models_py.splits import time_split

    paths_training = home / "data" / "exports" / "training_set.parquet"
    data = load_training_set(paths_training, home / "data" / "exports" / "feature_columns.json")
    split = time_split(data.dates, data.label_end_dates, config.TEST_FRACTION)
    params = dict(config.RF_REFERENCE)
    pipeline = build_pipeline("random_forest", data.features, data.categorical, params)
    started = time.perf_counter()
    pipeline.fit(data.matrix()[split.train_index], data.y[split.train_index])
    fit_s = round(time.perf_counter() - started, 1)
    facts = {k: spec[k] for k in export.PORTABLE_FACTS}
    spec_bytes, arrays, _ = export.export(pipeline, facts, data.matrix()[split.test_index][:2000])
    model = portable.load(json.loads(spec_bytes), portable.read_arrays(arrays))
    return pipeline, {"model": model, "arrays_mb": round(len(arrays) / 1e6, 2)}, fit_s


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
        command = [sys.executable, "-I", "-S", "-c", bootstrap]
    else:
        command = [sys.executable, "-m", "benchmarks.inference_bench", *argv]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO)
    if done.returncode:
        raise RuntimeError(f"child {argv[:2]} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
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
    parser.add_argument("--workdir", default=str(REPO / "data" / "bench" / "inference"))
    parser.add_argument("--child", choices=["ours", "sklearn", "scoring"], help=argparse.SUPPRESS)
    parser.add_argument("--event-day", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--spawned", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--bucket", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "ours":
        print(json.dumps(child_ours(args.repeat, args.event_day, args.spawned)), flush=True)
        return 0
    if args.child == "sklearn":
        figures = child_sklearn(
            args.repeat, args.event_day, args.spawned, args.bucket, "features/latest_features.json"
        )
        print(json.dumps(figures), flush=True)
        return 0
    if args.child == "scoring":
        figures = child_scoring(args.home, args.run_dir, args.repeat, args.pools, args.prototype)
        print(json.dumps(figures), flush=True)
        return 0

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
    figures: dict = {
        "pools": args.pools,
        "run": run_dir.name,
        "load_1m_at_start": round(os.getloadavg()[0], 2),
    }
    figures["layer_ours"] = build_layer(
        workdir, "numpy", "--metadata", str(run_dir / "metadata.json")
    )
    figures["layer_sklearn"] = build_layer(
        workdir, "sklearn", "--sklearn", "--metadata", str(run_dir / "metadata.json")
    )
    code = workdir / "code"
    shutil.rmtree(code, ignore_errors=True)
    shutil.copytree(
        REPO / "inference",
        code / "inference",
        ignore=shutil.ignore_patterns("__pycache__", "requirements.lock"),
    )
    boto = str(boto3_folder())
    table, feature_columns = replicated_table(Path(args.home), args.pools)
    latest = LatestFeatures(
        columnar_payload(table.to_pydict(), feature_columns, source="bench"),
        features_binary(table, feature_columns, source="bench"),
    )
    day = (
        dt.date.fromisoformat(latest.payload["snapshot_date_max"]) + dt.timedelta(days=1)
    ).isoformat()
    bucket = "apy-runway-bench"
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    env.pop("AWS_PROFILE", None)
    with local_s3_server() as endpoint:
        client = s3_client(endpoint, local=True)
        ensure_bucket(client, bucket)
        json_size, binary_size = publish_features(client, bucket, latest)
        upload_run(client, bucket, contracts.MODEL_PREFIX, run_dir)
        env.update(
            {
                "AWS_ENDPOINT_URL": endpoint,
                "APY_RUNWAY_BUCKET": bucket,
                "APY_RUNWAY_FEATURES_KEY": contracts.FEATURES_KEY,
            }
        )
        figures["features_binary_mb"] = round(binary_size / 1e6, 2)
        figures["features_json_mb"] = round(json_size / 1e6, 2)
        common = ["--repeat", str(args.repeat), "--event-day", day]
        sides = {
            "ours": (
                ["--child", "ours", *common],
                [figures["layer_ours"]["path"], str(code), boto],
            ),
            "sklearn": (
                ["--child", "sklearn", *common, "--bucket", bucket],
                [figures["layer_sklearn"]["path"], boto],
            ),
        }
        runs: dict[str, list[dict]] = {side: [] for side in sides}
        for _ in range(args.cold_runs):  # alternate, so both sides see the same load
            for side, (argv_side, path) in sides.items():
                runs[side].append(spawn(argv_side, env, path))
        for side, results in runs.items():
            best = min(results, key=lambda r: r["cold_start_ms"])
            best["cold_start_ms_all"] = [r["cold_start_ms"] for r in results]
            best["warm_invocation_ms"] = min(r["warm_invocation_ms"] for r in results)
            figures[side] = best
    figures["scoring"] = spawn(
        [
            "--child",
            "scoring",
            args.home,
            str(run_dir),
            "--repeat",
            str(args.repeat),
            "--pools",
            str(args.pools),
        ],
        env,
    )
    if args.prototype:
        figures["prototype"] = spawn(
            [
                "--child",
                "scoring",
                args.home,
                str(run_dir),
                "--repeat",
                str(args.repeat),
                "--pools",
                str(args.pools),
                "--prototype",
            ],
            env,
        )
    figures["cold_start_ratio_ours_over_sklearn"] = round(
        figures["ours"]["cold_start_ms"] / figures["sklearn"]["cold_start_ms"], 2
    )
    figures["layer_ratio_ours_over_sklearn"] = round(
        figures["layer_ours"]["du_sb_bytes"] / figures["layer_sklearn"]["du_sb_bytes"], 3
    )
    for layer in ("layer_ours", "layer_sklearn"):
        figures[layer].pop("path")
    figures["load_1m_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
