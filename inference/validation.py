"""HTTP request validation: JSON bodies and feature rows checked into the
model's input matrix, every problem named by row and field.

JSON input rules (HTTP rows):
- keys are feature names in any order; extra keys are ignored;
- a numeric feature takes a JSON number, or ``null`` for a missing value (the
  pipeline imputes it); ``NaN`` / ``Infinity`` literals and numbers that
  overflow a float are refused (use null for missing);
- a categorical feature takes a JSON string, or ``null`` (imputed 'unknown');
- a number beyond float32's range (|x| > 3.4e38) is refused: the model's
  trees compare float32 values, so it would become infinite.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from inference import contracts
from inference.artefact import ModelSpec
from inference.portable import FLOAT32_MAX


class InputError(ValueError):
    """A caller's input problem: HTTP 400 (or 404/405/413) naming the row and field."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        row: int | None = None,
        field: str | None = None,
        code: str = "bad_request",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.row = row
        self.field = field
        self.code = code

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.row is not None:
            body["row"] = self.row
        if self.field is not None:
            body["field"] = self.field
        return body


class _RefusedConstant:
    """Placeholder for NaN/Infinity literals so the error can name row and field."""

    __slots__ = ("literal",)

    def __init__(self, literal: str) -> None:
        self.literal = literal


def parse_json_body(body: str | bytes | None) -> Any:
    """json.loads that keeps NaN/Infinity literals out of the numbers."""
    if body is None or (isinstance(body, (str, bytes)) and not body.strip()):
        raise InputError(
            'request body is empty; send a JSON array of feature rows or {"pools": [...]}',
            code="empty_body",
        )
    try:
        return json.loads(body, parse_constant=_RefusedConstant)
    except (ValueError, UnicodeDecodeError) as error:
        raise InputError(f"request body is not valid JSON: {error}", code="invalid_json") from error


def _numeric_value(value: Any, row: int, field: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, _RefusedConstant):
        raise InputError(
            f"row {row}, field {field!r}: {value.literal} is not accepted; "
            f"use null for a missing value",
            row=row,
            field=field,
            code="non_finite_value",
        )
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "string" if isinstance(value, str) else type(value).__name__
        raise InputError(
            f"row {row}, field {field!r}: expected a number or null, got {kind}",
            row=row,
            field=field,
            code="non_numeric_value",
        )
    number = float(value)
    if not math.isfinite(number):
        raise InputError(
            f"row {row}, field {field!r}: {value!r} does not fit a finite float",
            row=row,
            field=field,
            code="non_finite_value",
        )
    if abs(number) > FLOAT32_MAX:
        raise InputError(
            f"row {row}, field {field!r}: {value!r} is beyond float32's range "
            f"(|x| <= {FLOAT32_MAX:.4g}), which the model compares in",
            row=row,
            field=field,
            code="value_out_of_range",
        )
    return number


def _categorical_value(value: Any, row: int, field: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    kind = type(value).__name__
    if isinstance(value, _RefusedConstant):
        kind = value.literal
    raise InputError(
        f"row {row}, field {field!r}: expected a string or null, got {kind}",
        row=row,
        field=field,
        code="unknown_type",
    )


def rows_to_inputs(
    rows: Any, spec: ModelSpec, max_rows: int = contracts.MAX_BATCH_ROWS
) -> tuple[np.ndarray, dict[str, list]]:
    """Validate HTTP feature rows (list of objects) into the model's inputs:
    (numeric matrix (rows, numeric features in spec order; NaN = missing),
    {categorical feature: [str or None, ...]})."""
    if not isinstance(rows, list):
        raise InputError(
            f"body must be a JSON array of feature rows, got {type(rows).__name__}",
            code="not_a_list",
        )
    if not rows:
        raise InputError("body is an empty list; send at least one feature row", code="empty_list")
    if len(rows) > max_rows:
        raise InputError(
            f"batch of {len(rows)} rows is over the limit of {max_rows} rows per request; split it",
            status=413,
            code="batch_too_large",
        )
    numeric_names = [f for f in spec.features if f in spec.numeric_features]
    numeric = np.empty((len(rows), len(numeric_names)), dtype=np.float64)
    text: dict[str, list] = {f: [] for f in spec.features if f in spec.categorical_features}
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InputError(
                f"row {i}: expected an object keyed by feature name, got {type(row).__name__}",
                row=i,
                code="unknown_type",
            )
        j = 0
        for name in spec.features:
            if name not in row:
                raise InputError(
                    f"row {i}: missing feature {name!r}", row=i, field=name, code="missing_feature"
                )
            if name in spec.numeric_features:
                numeric[i, j] = _numeric_value(row[name], i, name)
                j += 1
            else:
                text[name].append(_categorical_value(row[name], i, name))
    return numeric, text


def lookup_pool_ids(pool_ids: Any, max_pools: int = contracts.MAX_LOOKUP_POOLS) -> list[str]:
    """Validate the `pools` list of a lookup request."""
    if not isinstance(pool_ids, list) or not pool_ids:
        raise InputError(
            "`pools` must be a non-empty JSON array of pool ids", field="pools", code="bad_lookup"
        )
    if len(pool_ids) > max_pools:
        raise InputError(
            f"lookup of {len(pool_ids)} pools is over the limit of {max_pools}",
            status=413,
            field="pools",
            code="batch_too_large",
        )
    for i, pool_id in enumerate(pool_ids):
        if not isinstance(pool_id, str):
            raise InputError(
                f"pools[{i}] must be a string pool id, got {type(pool_id).__name__}",
                row=i,
                field="pools",
                code="unknown_type",
            )
    return pool_ids
