"""latest.json under two hourly runs at once (an EventBridge retry of hour H-1
overlapping hour H): two processes, released together by a barrier, score H and
H-1 against moto's server on 127.0.0.1, 20 times. latest.json must end on H
every time, and the run that reports its write succeeded is the one whose
bytes are there.

Even trials start with no latest.json (both writes are If-None-Match: *), odd
ones with an older hour's (both are If-Match on its ETag).
"""

from __future__ import annotations

import json
import multiprocessing
import queue

from fixtures.race_worker import score_trials, trial_prefix

TRIALS = 20
HOUR = "2025-06-06T05:00:00+00:00"
HOUR_BEFORE = "2025-06-06T04:00:00+00:00"
TWO_HOURS_BEFORE = "2025-06-06T03:00:00Z"


def _event_time(hour: str) -> str:
    return hour.replace("+00:00", "Z")


def test_two_overlapping_hours_always_leave_the_newer_one_in_latest(
    lambda_env, moto_endpoint, s3_client
):
    for trial in range(1, TRIALS, 2):
        s3_client.put_object(
            Bucket=lambda_env,
            Key=f"{trial_prefix(trial)}latest.json",
            Body=json.dumps({"event_time": TWO_HOURS_BEFORE, "predictions": []}).encode(),
            Metadata={"event-time": TWO_HOURS_BEFORE},
        )
    # spawn, not fork: the parent runs moto's server threads
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(2), spawn.Queue()
    workers = [
        spawn.Process(
            target=score_trials,
            args=(moto_endpoint, lambda_env, hour, TRIALS, barrier, results),
        )
        for hour in (HOUR, HOUR_BEFORE)
    ]
    for worker in workers:
        worker.start()
    reports = []
    try:
        for _ in range(2 * TRIALS):
            reports.append(results.get(timeout=120))
    except queue.Empty:
        barrier.abort()
    finally:
        for worker in workers:
            worker.join(timeout=60)
            if worker.is_alive():
                worker.kill()
    errors = [r[4] for r in reports if r[4]]
    assert not errors, errors[0]
    assert len(reports) == 2 * TRIALS, f"only {len(reports)} of {2 * TRIALS} runs reported"

    ended = {}
    for trial in range(TRIALS):
        latest = s3_client.get_object(Bucket=lambda_env, Key=f"{trial_prefix(trial)}latest.json")
        ended[trial] = (json.loads(latest["Body"].read())["event_time"], latest["ETag"])
    rolled_back = [t for t, (event_time, _) in ended.items() if event_time != _event_time(HOUR)]
    assert not rolled_back, (
        f"latest.json ended on an older hour in {len(rolled_back)} of {TRIALS} trials: "
        f"{sorted(rolled_back)}"
    )
    by_run = {(trial, hour): (written, etag) for trial, hour, written, etag, _ in reports}
    for trial, (_, etag) in ended.items():
        written, written_etag = by_run[(trial, HOUR)]
        assert written is True and written_etag == etag, (trial, by_run[(trial, HOUR)], etag)
        # the older hour either declined (a newer hour was there) or wrote first
        # and was then replaced: never the bytes that stayed
        older_written, older_etag = by_run[(trial, HOUR_BEFORE)]
        assert older_written in (True, False)
        assert older_etag != etag and (older_etag is None) == (not older_written)
