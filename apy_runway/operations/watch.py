"""`apy-runway watch add|remove|list POOL…`: the watchlist in the bucket
(contracts.WATCHLIST_KEY), the pools whose flips and moves the hourly scorer
posts to the webhook (inference/watchlist.py says when).

Each change is a read, then a conditional PUT (If-Match the ETag read,
If-None-Match: * for a new list), again from the read when someone else
wrote in between: two operators never lose each other's pools.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from apy_runway.foundation.console import UserError
from inference import contracts, watchlist
from inference.service import CONFLICT_CODES, NOT_FOUND_CODES

WRITE_ATTEMPTS = 5


def read(client: Any, bucket: str, key: str = contracts.WATCHLIST_KEY) -> tuple[str | None, list]:
    """(ETag or None when there is no list yet, the watched pool ids)."""
    try:
        response = client.get_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in NOT_FOUND_CODES:
            return None, []
        if error.response.get("Error", {}).get("Code") == "NoSuchBucket":
            raise UserError(f"no bucket {bucket!r}: check --bucket") from error
        raise
    where = f"s3://{bucket}/{key}"
    try:
        document = json.loads(response["Body"].read())
        return response["ETag"], watchlist.read_watchlist(document, where)
    except (ValueError, watchlist.WatchlistError) as error:
        raise UserError(
            f"{where} is not a watchlist ({error}): fix or delete it, then run again"
        ) from error


def check_pool_ids(pool_ids: list[str]) -> list[str]:
    problems = [p for p in (contracts.watch_pool_id_problem(i) for i in pool_ids) if p]
    if problems:
        raise UserError("cannot watch: " + "; ".join(problems))
    return list(dict.fromkeys(pool_ids))


def change(
    client: Any,
    bucket: str,
    add: list[str] | tuple = (),
    remove: list[str] | tuple = (),
    key: str = contracts.WATCHLIST_KEY,
) -> tuple[list[str], list[str]]:
    """Add and remove pools; (the list now, the pools that changed it)."""
    add, remove = check_pool_ids(list(add)), list(remove)
    for _ in range(WRITE_ATTEMPTS):
        etag, pools = read(client, bucket, key)
        changed = [p for p in add if p not in pools] + [p for p in remove if p in pools]
        pools = [p for p in pools if p not in remove] + [p for p in add if p not in pools]
        if not changed:
            return pools, []
        if len(pools) > contracts.WATCHLIST_MAX_POOLS:
            raise UserError(
                f"the watchlist would hold {len(pools)} pools, more than "
                f"{contracts.WATCHLIST_MAX_POOLS}: remove some first"
            )
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            client.put_object(
                Bucket=bucket,
                Key=key,
                Body=json.dumps(watchlist.watchlist_document(pools, now), indent=1).encode(),
                ContentType="application/json",
                **condition,
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in CONFLICT_CODES:
                continue
            raise
        return pools, changed
    raise UserError(f"s3://{bucket}/{key} kept changing under {WRITE_ATTEMPTS} writes: run again")


def describe(pools: list[str], predictions: dict | None) -> list[str]:
    """One line per watched pool, with its latest local call when known."""
    if not pools:
        return ["no pools watched: apy-runway watch add POOL"]
    known = {r["pool_id"]: r for r in (predictions or {}).get("predictions", [])}
    lines = []
    for pool_id in pools:
        record = known.get(pool_id)
        if record is None:
            note = "(not in the local predictions)" if predictions else ""
        elif record.get("p_keep") is None:
            note = f"{record.get('symbol') or ''}  not scored: {record.get('reason')}"
        else:
            p = record["p_keep"]
            down = contracts.predicted_class_is_down(p)
            call = f"{'Down' if down else 'Stable/Up'} {round(100 * (1 - p if down else p))}%"
            where = ", ".join(str(v) for v in (record.get("project"), record.get("chain")) if v)
            note = f"{record.get('symbol') or ''} ({where})  {call}"
        lines.append(f"{pool_id}  {note}".rstrip())
    return lines
