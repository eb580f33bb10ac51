"""The Lambda's settings: one object built from the environment, cached by the
environment's values (a warm container re-reads nothing; a changed variable,
as in the tests, gives a fresh object).

The core functions (inference/service.py) take a Settings and an S3 client as
arguments, so callers such as `apy-runway score` build a Settings directly and
never set environment variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from inference import contracts
from inference.alerts import WebhookUrlError, check_webhook_url

ENVIRONMENT = contracts.ENVIRONMENT  # field -> environment variable


class ConfigError(RuntimeError):
    """A missing or malformed setting of the function."""


@dataclass(frozen=True)
class Settings:
    bucket: str
    model_prefix: str = contracts.MODEL_PREFIX
    features_key: str = contracts.FEATURES_KEY
    predictions_prefix: str = contracts.PREDICTIONS_PREFIX
    stale_after_hours: float = contracts.FEATURES_STALE_AFTER_HOURS
    max_batch_rows: int = contracts.MAX_BATCH_ROWS
    endpoint_url: str | None = None
    signing_key: str | None = field(default=None, repr=False)
    signing_key_parameter: str | None = None
    monitoring_prefix: str = contracts.MONITORING_PREFIX
    ledger_prefix: str = contracts.LEDGER_PREFIX
    webhook_url: str | None = field(default=None, repr=False)
    webhook_url_parameter: str | None = None

    def __post_init__(self) -> None:
        if not self.bucket:
            raise ConfigError(f"environment variable {ENVIRONMENT['bucket']} is not set")
        if self.signing_key and self.signing_key_parameter:
            raise ConfigError(
                f"set {ENVIRONMENT['signing_key']} or {ENVIRONMENT['signing_key_parameter']}, "
                "not both"
            )
        if self.webhook_url and self.webhook_url_parameter:
            raise ConfigError(
                f"set {ENVIRONMENT['webhook_url']} or {ENVIRONMENT['webhook_url_parameter']}, "
                "not both"
            )
        if self.webhook_url:
            try:
                check_webhook_url(self.webhook_url, ENVIRONMENT["webhook_url"])
            except WebhookUrlError as error:
                raise ConfigError(str(error)) from None
        for name in ("model_prefix", "predictions_prefix", "monitoring_prefix", "ledger_prefix"):
            value = getattr(self, name)
            if value and not value.endswith("/"):
                raise ConfigError(f"{ENVIRONMENT[name]}={value!r} must end with '/'")
        if not (self.stale_after_hours > 0 and self.stale_after_hours != float("inf")):
            raise ConfigError(
                f"{ENVIRONMENT['stale_after_hours']}="
                f"{self.stale_after_hours!r} must be a positive number of hours"
            )
        if self.max_batch_rows < 1:
            raise ConfigError(
                f"{ENVIRONMENT['max_batch_rows']}={self.max_batch_rows!r} "
                "must be a positive number of rows"
            )

    @property
    def latest_predictions_key(self) -> str:
        return contracts.latest_predictions_key(self.predictions_prefix)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        def text(field: str, default: str) -> str:
            return environ.get(ENVIRONMENT[field]) or default

        def number(field: str, default: float, kind: type) -> float:
            raw = environ.get(ENVIRONMENT[field])
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise ConfigError(
                    f"environment variable {ENVIRONMENT[field]}={raw!r} is not a number"
                ) from None
            if kind is int and not value.is_integer():
                raise ConfigError(
                    f"environment variable {ENVIRONMENT[field]}={raw!r} is not a whole number"
                )
            return kind(value)

        return cls(
            bucket=environ.get(ENVIRONMENT["bucket"], ""),
            model_prefix=text("model_prefix", contracts.MODEL_PREFIX),
            features_key=text("features_key", contracts.FEATURES_KEY),
            predictions_prefix=text("predictions_prefix", contracts.PREDICTIONS_PREFIX),
            stale_after_hours=number(
                "stale_after_hours", contracts.FEATURES_STALE_AFTER_HOURS, float
            ),
            max_batch_rows=number("max_batch_rows", contracts.MAX_BATCH_ROWS, int),
            endpoint_url=(
                environ.get(ENVIRONMENT["endpoint_url"])
                or environ.get(contracts.ENV_S3_ENDPOINT)
                or None
            ),
            signing_key=environ.get(ENVIRONMENT["signing_key"]) or None,
            signing_key_parameter=environ.get(ENVIRONMENT["signing_key_parameter"]) or None,
            monitoring_prefix=text("monitoring_prefix", contracts.MONITORING_PREFIX),
            ledger_prefix=text("ledger_prefix", contracts.LEDGER_PREFIX),
            webhook_url=environ.get(ENVIRONMENT["webhook_url"]) or None,
            webhook_url_parameter=environ.get(ENVIRONMENT["webhook_url_parameter"]) or None,
        )


_cache: dict[tuple[str | None, ...], Settings] = {}


def current(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings of this process's environment, rebuilt only when a value changes."""
    environ = os.environ if environ is None else environ
    key = tuple(environ.get(name) for name in (*ENVIRONMENT.values(), contracts.ENV_S3_ENDPOINT))
    cached = _cache.get(key)
    if cached is None:
        cached = _cache[key] = Settings.from_environ(environ)
    return cached
