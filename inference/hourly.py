"""The scheduled function's hourly run around service.score_hour: a model
rollback met mid-run (read the published model again), features refused
(logged, nothing written), the run's warnings and its summary line. The
handler hands in the model cache; this module holds no state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from inference import service
from inference.health import STATUS_OK
from inference.logs import log_event
from inference.publication import without_cyclic_gc
from inference.settings import Settings


def _scored(
    settings: Settings,
    client: Any,
    model_of: Callable[[], service.LoadedModel],
    forget_models: Callable[[], None],
    event_time: datetime,
    webhook: str | None,
) -> tuple[dict, dict]:
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="features-get") as pool:
        # on a cold start the features' GET overlaps the model's load
        body = pool.submit(service.get_bytes, client, settings.bucket, settings.features_key)
        loaded = model_of()  # a rollback refused at load fails the run
        try:
            return service.score_hour(settings, client, loaded, event_time, webhook, body)
        except service.ModelRollback:
            # a newer model was served since this container loaded its own:
            # read the published one again (a rollback is refused there)
            forget_models()
        return service.score_hour(settings, client, model_of(), event_time, webhook, body)


def _warn(settings: Settings, summary: dict, result: dict, request_id: str | None) -> None:
    """The run's warnings: degraded health, published features the model does
    not use, stale features."""
    if result["health"]["status"] != STATUS_OK:
        log_event(
            logging.WARNING,
            "degraded",
            request_id=request_id,
            reasons=result["health"]["reasons"],
            feature_date_max=result["feature_date_max"],
            event_time=result["event_time"],
        )
    if result["unused_published_features"]:
        log_event(
            logging.WARNING,
            "unused_published_features",
            request_id=request_id,
            features=result["unused_published_features"],
        )
    if summary["stale"]:
        log_event(
            logging.WARNING,
            "stale_features",
            request_id=request_id,
            stale=summary["stale"],
            pools=summary["pools"],
            feature_date_max=result["feature_date_max"],
            event_time=result["event_time"],
            stale_after_hours=settings.stale_after_hours,
        )


def run(
    settings: Settings,
    client: Any,
    model_of: Callable[[], service.LoadedModel],
    forget_models: Callable[[], None],
    event_time: datetime,
    webhook: str | None,
    request_id: str | None,
    started: float,
) -> dict:
    """Score the hour and log it; the summary (or {"refused": why}). The
    cyclic collector stays off until the hour's document is freed: switched
    on while the ~200k containers live, its first pass would walk them all."""
    with without_cyclic_gc():
        try:
            summary, result = _scored(
                settings, client, model_of, forget_models, event_time, webhook
            )
        except service.FeaturesRefused as refused:
            # not transient: a retry would refuse again; nothing is written
            log_event(logging.ERROR, "features_refused", request_id=request_id, reason=str(refused))
            return {"refused": str(refused)}
        _warn(settings, summary, result, request_id)
        del result
    log_event(
        logging.INFO,
        "scheduled_scored",
        request_id=request_id,
        seconds=round(time.perf_counter() - started, 3),
        **summary,
    )
    return summary
