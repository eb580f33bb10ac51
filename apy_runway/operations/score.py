"""`apy-runway score`: run the scheduled inference Lambda's core once, locally.

Starts a local S3 (moto's server on 127.0.0.1, a free port), publishes the
trained artefact (runs/latest) and the latest features there exactly as
`apy-runway publish` does, runs the scheduled function's core
(``inference.service``: load the model, score the hour) with a Settings object
for that S3 (no environment variables), and prints the pools with the highest and lowest runway
probability (p_keep) with their top reason and the counts scored / not scored / stale. A copy of the
predictions is written to data/exports/predictions_latest.json.
"""

from __future__ import annotations

import datetime as dt
import json
import os

from apy_runway.foundation.console import UserError, log
from apy_runway.foundation.paths import ProjectPaths
from apy_runway.foundation.s3 import ensure_bucket, local_s3_server, s3_client, upload_run
from apy_runway.operations import ledger
from apy_runway.operations.publish import load_latest_features, publish_features
from apy_runway.operations.runs import resolve_run
from inference import contracts, service
from inference.model.artefact import ModelIntegrityError
from inference.publication import STATUS_SCORED, parse_event_time
from inference.settings import Settings

LOCAL_BUCKET = "apy-runway-local"


def _empty(client, bucket: str) -> None:
    """Start from an empty local bucket: moto keeps its buckets for the whole
    process, so a second `score` in one process (the tests, a notebook) would
    otherwise meet the first one's latest.json (its hour, pool count and
    model version)."""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys})


def default_event_time(feature_date_max: str | None) -> str:
    if not feature_date_max:
        raise UserError("the latest features have no snapshot_date: cannot pick an event time")
    day = dt.date.fromisoformat(feature_date_max[:10]) + dt.timedelta(days=1)
    return f"{day.isoformat()}T00:00:00Z"


def score_locally(
    paths: ProjectPaths,
    run: str = "latest",
    event_time: str | None = None,
    stale_after_hours: float = contracts.FEATURES_STALE_AFTER_HOURS,
) -> dict:
    """Publish run + features to a local S3, score one hour with the Lambda's
    core, write data/exports/predictions_latest.json; return the hour's document."""
    run_dir = resolve_run(paths, run)
    latest = load_latest_features(paths)
    payload = latest.payload
    event_time = event_time or default_event_time(payload["snapshot_date_max"])
    try:
        when = parse_event_time(event_time)
    except ValueError as error:
        raise UserError(str(error)) from error

    with local_s3_server() as endpoint:
        settings = Settings(
            bucket=LOCAL_BUCKET,
            stale_after_hours=stale_after_hours,
            endpoint_url=endpoint,
            signing_key=os.environ.get(contracts.ENVIRONMENT["signing_key"]) or None,
        )
        client = s3_client(endpoint, local=True)
        ensure_bucket(client, LOCAL_BUCKET)
        _empty(client, LOCAL_BUCKET)
        publish_features(client, LOCAL_BUCKET, latest, settings.features_key)
        upload_run(client, LOCAL_BUCKET, settings.model_prefix, run_dir)
        log(
            f"local S3 at {endpoint}: published {payload['row_count']} pools and "
            f"run {run_dir.name}; scoring the hour {event_time}"
        )
        try:
            loaded = service.load_model(settings, client, service.signing_key(settings))
        except ModelIntegrityError as error:
            raise UserError(f"run {run_dir.name}: {error}") from error
        summary, _ = service.score_hour(settings, client, loaded, when)
        body = client.get_object(Bucket=LOCAL_BUCKET, Key=summary["hourly_key"])["Body"].read()
        # the hour's ledger file and health document, as `ledger sync` copies them
        ledger.sync_bucket(
            client, LOCAL_BUCKET, settings.ledger_prefix, ledger.default_folder(paths)
        )
        if summary["monitoring_key"]:
            monitored = client.get_object(Bucket=LOCAL_BUCKET, Key=summary["monitoring_key"])
            target = paths.data / summary["monitoring_key"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(monitored["Body"].read())
            log(f"health {summary['health']} {summary['health_reasons']}: wrote {target}")
    published = json.loads(body)
    out = paths.exports / "predictions_latest.json"
    out.write_text(json.dumps(published, indent=1) + "\n")
    log(f"wrote {out}")
    return published


def _money(value: object) -> str:
    if not isinstance(value, (int, float)):
        return "-"
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"${value / size:.3g}{unit}"
    return f"${value:.0f}"


def _top_reason(record: dict) -> str:
    reasons = record.get("reasons") or []
    if not reasons:
        return ""
    first = reasons[0]
    contribution = first.get("contribution") if isinstance(first, dict) else None
    arrow = "↑" if isinstance(contribution, (int, float)) and contribution > 0 else "↓"
    if not isinstance(contribution, (int, float)) or not contribution:
        arrow = "·"
    text = first.get("text", "") if isinstance(first, dict) else str(first)
    return f"{arrow} {text}"


def _row(rank: int, p: dict) -> str:
    apy = p.get("apy")
    call = "Down" if contracts.predicted_class_is_down(p["p_keep"]) else "Stable/Up"
    percent = round(p.get("predicted_probability") or 100 * max(p["p_keep"], 1 - p["p_keep"]))
    return (
        f"{rank:>3} {str(p['pool_id'])[:36]:36} {str(p.get('symbol') or '')[:12]:12} "
        f"{str(p.get('project') or '')[:14]:14} {str(p.get('chain') or '')[:9]:9} "
        f"{f'{apy:.2f}%' if isinstance(apy, (int, float)) else '-':>8} "
        f"{_money(p.get('tvl_usd')):>7} {p['p_keep']:6.3f} {f'{call} {percent}%':14} "
        f"{p.get('confidence_words') or p.get('binned_confidence') or ''!s:6} "
        f"{_top_reason(p)}{' (stale)' if p.get('is_stale') else ''}"
    )


def render_report(published: dict, top: int) -> str:
    """Highest / lowest runway probability table and the counts; each pool with
    its project, chain, APY, TVL, call and top reason (↑ supports keeping the
    APY, ↓ a risk)."""
    scored = [p for p in published["predictions"] if p["status"] == STATUS_SCORED]
    ranked = sorted(scored, key=lambda p: (-p["p_keep"], p["pool_id"]))
    counts = published["counts"]
    lines = [
        f"model {published['model_id']}  event {published['event_time']}  "
        f"features of {published['feature_date_max']}",
        f"pools {counts['pools']}: scored {counts['scored']}, not scored {counts['not_scored']}, "
        f"stale {counts['stale']}, unseen category {counts.get('unseen_category', 0)}",
    ]
    for code, n in sorted((counts.get("not_scored_by_reason") or {}).items()):
        lines.append(f"  not scored: {code}: {n}")
    if not ranked:
        return "\n".join(lines)
    header = (
        f"{'#':>3} {'pool_id':36} {'symbol':12} {'project':14} {'chain':9} {'APY':>8} "
        f"{'TVL':>7} {'p_keep':>6} {'call':14} {'conf':6} top reason"
    )
    if len(ranked) <= 2 * top:
        sections = [("all scored pools, highest runway probability first", ranked)]
    else:
        sections = [
            (f"highest runway probability (top {top})", ranked[:top]),
            (f"lowest runway probability (bottom {top})", ranked[-top:]),
        ]
    for title, rows in sections:
        lines += ["", title, header]
        lines += [_row(rank, p) for rank, p in enumerate(rows, 1)]
    return "\n".join(lines)
