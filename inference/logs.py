"""The Lambda's structured log: one JSON line per event, which CloudWatch
Logs Insights parses. Standard library only."""

from __future__ import annotations

import json
import logging
from typing import Any

logger = logging.getLogger("apy_runway.inference")
logger.setLevel(logging.INFO)


def log_event(level: int, event: str, **fields: Any) -> None:
    """One structured JSON line per event."""
    logger.log(
        level,
        json.dumps({"level": logging.getLevelName(level), "event": event, **fields}, default=str),
    )
