"""Inference: cold start and warm latency of the scheduled Lambda on N pools.

    python -m benchmarks.inference_bench HOME RUN_DIR [--pools 20000]

The parent starts a local S3 (moto's ThreadedMotoServer on 127.0.0.1), publishes
the run's artefact and a latest-features document of N pools (HOME's
latest_features rows replicated under new pool ids, as `apy-runway publish`
shapes them), then runs the invocations in a fresh Python process (`child`):

- cold: `import inference.handler` + the first scheduled invocation (reads and
  verifies the model from S3, unpickles it, reads the features, scores, writes
  the predictions back to S3);
- warm: the second invocation in the same process (model cached);
- the warm invocation's parts, timed separately: features GET + json.loads,
  `publication.score_published` (matrix + predict_proba + response rows) and
  `predict_proba` alone on the eligible matrix.

It prints one JSON line with the figures (milliseconds, best of --repeat for
the warm parts).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def replicated_payload(home: Path, pools: int) -> dict:
    """HOME's latest features, rows replicated under new pool ids up to `pools`."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from apy_runway.foundation.paths import project_paths
    from apy_runway.stages.publish import columnar_payload

    paths = project_paths(home)
    table = pq.read_table(paths.latest_features)
    copies = -(-pools // table.num_rows)
    parts = []
    for copy in range(copies):
        ids = pc.binary_join_element_wise(table["pool_id"], pa.scalar(f"-copy{copy}"), "")
        parts.append(table.set_column(table.schema.get_field_index("pool_id"), "pool_id", ids))
    big = pa.concat_tables(parts).slice(0, pools)
    feature_columns = json.loads(paths.feature_columns.read_text())
    return columnar_payload(big.to_pydict(), feature_columns, source=f"{pools} replicated rows")


def child(repeat: int, event_day: str) -> dict:
    started = time.perf_counter()
    from inference import handler, publication, scoring, service, settings

    imported = time.perf_counter()

    def event(hour: int) -> dict:
        return {
            "version": "0",
            "id": f"bench-{hour}",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "time": f"{event_day}T{hour:02d}:00:00Z",
            "region": "us-east-1",
            "detail": {},
        }

    first = handler.scheduled(event(0), None)
    cold_done = time.perf_counter()
    warm = []
    for hour in range(1, repeat + 1):
        t0 = time.perf_counter()
        handler.scheduled(event(hour), None)
        warm.append(time.perf_counter() - t0)

    # the warm invocation's parts
    current = settings.current()
    loaded = handler.get_model(current)
    bucket, features_key = current.bucket, current.features_key
    get_parse, core, proba_only = [], [], []
    event_time = publication.parse_event_time(f"{event_day}T12:00:00Z")
    for _ in range(repeat):
        t0 = time.perf_counter()
        payload = json.loads(service.get_bytes(handler.s3(current), bucket, features_key))
        get_parse.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        result = publication.score_published(loaded.model, loaded.spec, payload, event_time, 48.0)
        core.append(time.perf_counter() - t0)
    import numpy as np

    columns = payload["columns"]
    eligible = [
        i for i, p in enumerate(result["predictions"]) if p["status"] == publication.STATUS_SCORED
    ]
    matrix = np.empty((len(eligible), len(loaded.spec.features)), dtype=object)
    for j, name in enumerate(loaded.spec.features):
        values = columns[name]
        if name in loaded.spec.numeric_features:
            matrix[:, j] = np.array(
                [np.nan if values[i] is None else values[i] for i in eligible], dtype=float
            )
        else:
            matrix[:, j] = [None if values[i] is None else str(values[i]) for i in eligible]
    for _ in range(repeat):
        t0 = time.perf_counter()
        scoring.predict_proba(loaded.model, matrix)
        proba_only.append(time.perf_counter() - t0)

    classifier = getattr(loaded.model, "named_steps", {}).get("classifier", loaded.model)
    ms = lambda s: round(s * 1000, 1)  # noqa: E731
    return {
        "pools": first["pools"],
        "scored": first["scored"],
        "model": loaded.metadata.get("model_name"),
        "model_mb": round(loaded.metadata["model_size_bytes"] / 1e6, 2),
        "n_estimators": getattr(classifier, "n_estimators", None),
        "import_ms": ms(imported - started),
        "first_invocation_ms": ms(cold_done - imported),
        "cold_start_ms": ms(cold_done - started),
        "warm_invocation_ms": ms(min(warm)),
        "warm_invocation_ms_all": [ms(w) for w in warm],
        "features_get_parse_ms": ms(min(get_parse)),
        "score_published_ms": ms(min(core)),
        "predict_proba_ms": ms(min(proba_only)),
        "threads": os.cpu_count(),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("home", nargs="?")
    parser.add_argument("run_dir", nargs="?")
    parser.add_argument("--pools", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--event-day", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.repeat, args.event_day)), flush=True)
        return 0

    import datetime as dt

    from apy_runway.foundation.s3 import ensure_bucket, local_s3_server, s3_client, upload_run
    from apy_runway.stages.publish import upload_features

    payload = replicated_payload(Path(args.home), args.pools)
    event_day = (
        dt.date.fromisoformat(payload["snapshot_date_max"]) + dt.timedelta(days=1)
    ).isoformat()
    bucket = "apy-runway-bench"
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    os.environ.pop("AWS_PROFILE", None)
    with local_s3_server() as endpoint:
        client = s3_client(endpoint)
        ensure_bucket(client, bucket)
        features_bytes = upload_features(client, bucket, "features/latest_features.json", payload)
        upload_run(client, bucket, "models/latest/", Path(args.run_dir))
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": endpoint,
            "APY_RUNWAY_BUCKET": bucket,
            "APY_RUNWAY_MODEL_PREFIX": "models/latest/",
            "APY_RUNWAY_FEATURES_KEY": "features/latest_features.json",
            "APY_RUNWAY_PREDICTIONS_PREFIX": "predictions/",
            "APY_RUNWAY_MAX_BATCH_ROWS": str(max(args.pools, 20_000)),
        }
        started = time.perf_counter()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.inference_bench",
                "--child",
                "--repeat",
                str(args.repeat),
                "--event-day",
                event_day,
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        process_s = time.perf_counter() - started
    if result.returncode != 0:
        sys.stderr.write(result.stderr[-4000:])
        return result.returncode
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    figures["features_json_mb"] = round(features_bytes / 1e6, 2)
    figures["child_process_s"] = round(process_s, 2)
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
