"""What issue 13's serving guards cost, each against its anchor in the same run:

    python -m benchmarks.serving_guards_bench [--pools 20000] [--rows 2000] [--repeat 7]

1. **latest.json.** The hourly run's writes with a body the size of the
   20,000-pool document (12.4 MB of JSON; the bytes do not matter to S3):
   the anchor is the code before (PUT the hour's key, HEAD latest.json, then a
   server-side copy); ours is the conditional write (PUT the hour's key, HEAD,
   then PUT the same bytes with If-Match). Against moto's ThreadedMotoServer on
   127.0.0.1, best of `--repeat`, alternating.
2. **Request parsing.** json.loads of the largest deployed batch (2,000 rows of
   the 66-feature model's width: numbers with a few integers, text and nulls) with
   the hooks the handler now passes (parse_constant, parse_int) against
   json.loads with parse_constant only, best of `--repeat`.

One JSON line in benchmarks/results/results.jsonl (section "serving-guards");
RESULTS.md says what the figures mean. Under a minute.
"""

from __future__ import annotations

import argparse
import json
import random
import time

from apy_runway.foundation.s3 import local_s3_server, s3_client
from benchmarks.run import record
from inference import service
from inference.settings import Settings
from inference.validation import _parse_int, _RefusedConstant, parse_json_body

DOCUMENT_BYTES_PER_POOL = 620  # 12.4 MB / 20,000 pools (RESULTS.md, issue 11)
FEATURES = 66


def hourly_body(pools: int) -> bytes:
    record_text = json.dumps({"pool_id": "x" * 36, "pad": "y" * (DOCUMENT_BYTES_PER_POOL - 60)})
    return ("[" + ",".join([record_text] * pools) + "]").encode()


def request_body(rows: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    values = [
        lambda: rng.uniform(-1e6, 1e9),
        lambda: rng.randint(0, 10**6),
        lambda: None,
        lambda: rng.choice(["Ethereum", "Arbitrum", "Base"]),
    ]
    weights = [0.8, 0.1, 0.05, 0.05]
    names = [f"feature_{i:02d}" for i in range(FEATURES)]
    return json.dumps([{n: rng.choices(values, weights)[0]() for n in names} for _ in range(rows)])


def best(seconds: list[float]) -> float:
    return round(1000 * min(seconds), 1)


def latest_writes(endpoint: str, pools: int, repeat: int) -> dict:
    client = s3_client(endpoint, local=True)
    bucket = "serving-guards-bench"
    client.create_bucket(Bucket=bucket)
    settings = Settings(bucket=bucket, endpoint_url=endpoint)
    body = hourly_body(pools)
    hourly, latest = "predictions/hourly/2025-06-06T00Z.json", settings.latest_predictions_key
    times: dict[str, list[float]] = {"copy": [], "conditional_put": []}
    for i in range(2 * repeat):
        side = "copy" if i % 2 == 0 else "conditional_put"
        event_time = f"2025-06-06T{i % 24:02d}:00:00Z"
        metadata = {"event-time": event_time}
        started = time.perf_counter()
        client.put_object(Bucket=bucket, Key=hourly, Body=body, Metadata=metadata)
        if side == "copy":  # the code before: HEAD, then a server-side copy
            if i:  # (absent before the first write)
                client.head_object(Bucket=bucket, Key=latest)
            client.copy_object(
                Bucket=bucket, Key=latest, CopySource={"Bucket": bucket, "Key": hourly}
            )
        else:
            assert service.publish_latest(settings, client, body, metadata, event_time).written
        times[side].append(time.perf_counter() - started)
    return {
        "document_mb": round(len(body) / 1e6, 1),
        "anchor_put_head_copy_ms": best(times["copy"]),
        "ours_put_head_conditional_put_ms": best(times["conditional_put"]),
        "ratio": round(min(times["conditional_put"]) / min(times["copy"]), 2),
    }


def parsing(rows: int, repeat: int) -> dict:
    text = request_body(rows)
    times: dict[str, list[float]] = {"anchor": [], "ours": []}
    for _ in range(repeat):
        started = time.perf_counter()
        json.loads(text, parse_constant=_RefusedConstant)
        times["anchor"].append(time.perf_counter() - started)
        started = time.perf_counter()
        json.loads(text, parse_constant=_RefusedConstant, parse_int=_parse_int)
        times["ours"].append(time.perf_counter() - started)
    assert parse_json_body(text) == json.loads(text)
    return {
        "body_mb": round(len(text) / 1e6, 2),
        "rows": rows,
        "anchor_ms": best(times["anchor"]),
        "ours_ms": best(times["ours"]),
        "ratio": round(min(times["ours"]) / min(times["anchor"]), 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=20000)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    with local_s3_server() as endpoint:
        writes = latest_writes(endpoint, args.pools, args.repeat)
    record(
        "serving-guards",
        f"{args.pools} pools, {args.rows} rows",
        latest_json=writes,
        request_parsing=parsing(args.rows, args.repeat),
    )


if __name__ == "__main__":
    main()
