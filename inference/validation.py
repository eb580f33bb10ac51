"""HTTP request validation: JSON bodies and feature rows checked into the model's
input matrix, every problem named by row and field.

Imports: numpy, the standard library and inference/ (floor 1). A number beyond
float32's range (|x| > 3.4e38) is refused, not clipped: the model's trees
compare float32 values, so it would become infinite. Integer literals are kept
as text past MAX_INTEGER_CHARS (Python refuses int() of more than 4,300
digits), and a body nested deeper than the JSON parser follows is located at
the row and field where it passes MAX_REPORTED_DEPTH.

The input rules as a caller sees them: docs/serving.md (Lambda API).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np

from inference import contracts
from inference.model.artefact import ModelSpec
from inference.model.portable import FLOAT32_MAX


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


# An integer literal this long (sign included) is beyond float64's range, let
# alone float32's: it stays text, so no int() of 4,300+ digits is attempted.
MAX_INTEGER_CHARS = 400
# Rows need depth 2 (array > object > value) and lookups too (object > array >
# id); anything deeper is a wrong type, named once parsed. A body too deep to
# parse at all is located where it first passes this depth.
MAX_REPORTED_DEPTH = 64


class _RefusedConstant:
    """Placeholder for NaN/Infinity literals so the error can name row and field."""

    __slots__ = ("literal",)

    def __init__(self, literal: str) -> None:
        self.literal = literal


class _LongInteger:
    """Placeholder for an integer literal of MAX_INTEGER_CHARS or more."""

    __slots__ = ("digits",)

    def __init__(self, literal: str) -> None:
        self.digits = len(literal.lstrip("-"))


def _parse_int(literal: str) -> int | _LongInteger:
    return int(literal) if len(literal) < MAX_INTEGER_CHARS else _LongInteger(literal)


def kind(value: Any) -> str:
    """The JSON kind of a parsed value, for messages (never its text)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float, _LongInteger)):
        return "number"
    if isinstance(value, _RefusedConstant):
        return value.literal
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


# strings (with their escapes) and the structural characters of JSON text
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},:]')


def _key(token: str) -> str:
    try:
        return json.loads(token)
    except ValueError:
        return token[1:-1]


def locate_depth(text: str, limit: int = MAX_REPORTED_DEPTH) -> tuple[int | None, str | None]:
    """(row, field) where JSON `text` first nests deeper than `limit`: the index
    in a top-level array and the key of that row's object (or the key of a
    top-level object). Scans only up to that point."""
    depth, top, row, field, last_string = 0, None, None, None, None
    for match in _JSON_TOKENS.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            if depth == 0:
                top, row = token, (0 if token == "[" else None)
            depth += 1
            if depth > limit:
                return row, field
        elif token in ("]", "}"):
            depth -= 1
        elif token == ",":
            if depth == 1 and top == "[":
                row, field = (row or 0) + 1, None
        elif token == ":":
            if (depth == 2 and top == "[") or (depth == 1 and top == "{"):
                field = last_string
        else:
            last_string = _key(token)
    return row, field


def parse_json_body(body: str | bytes | None) -> Any:
    """json.loads that keeps NaN/Infinity literals and integers too long for a
    float out of the numbers, and refuses a body nested too deep to parse."""
    if body is None or (isinstance(body, (str, bytes)) and not body.strip()):
        raise InputError(
            'request body is empty; send a JSON array of feature rows or {"pools": [...]}',
            code="empty_body",
        )
    try:
        return json.loads(body, parse_constant=_RefusedConstant, parse_int=_parse_int)
    except RecursionError:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        row, field = locate_depth(text)
        where = [f"row {row}"] if row is not None else []
        where += [f"field {field!r}"] if field is not None else []
        raise InputError(
            f"{', '.join(where) + ': ' if where else ''}arrays/objects are nested deeper than "
            f"{MAX_REPORTED_DEPTH} levels; a feature takes a number, a string or null",
            row=row,
            field=field,
            code="too_deeply_nested",
        ) from None
    except (ValueError, UnicodeDecodeError) as error:
        raise InputError(f"request body is not valid JSON: {error}", code="invalid_json") from error


def _describe_number(value: int | float | _LongInteger) -> str:
    if isinstance(value, _LongInteger):
        return f"an integer of {value.digits} digits"
    if isinstance(value, int) and abs(value) >= 10**20:
        return f"an integer of {len(str(abs(value)))} digits"
    return repr(value)


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
    if isinstance(value, bool) or not isinstance(value, (int, float, _LongInteger)):
        raise InputError(
            f"row {row}, field {field!r}: expected a number or null, got {kind(value)}",
            row=row,
            field=field,
            code="non_numeric_value",
        )
    try:
        number = math.inf if isinstance(value, _LongInteger) else float(value)
    except OverflowError:  # an integer beyond float64's range (about 1.8e308)
        number = math.inf
    if math.isinf(number) and not isinstance(value, float):
        raise InputError(
            f"row {row}, field {field!r}: {_describe_number(value)} is beyond float32's "
            f"range (|x| <= {FLOAT32_MAX:.4g}), which the model compares in",
            row=row,
            field=field,
            code="value_out_of_range",
        )
    if not math.isfinite(number):
        raise InputError(
            f"row {row}, field {field!r}: {value!r} does not fit a finite float",
            row=row,
            field=field,
            code="non_finite_value",
        )
    if abs(number) > FLOAT32_MAX:
        raise InputError(
            f"row {row}, field {field!r}: {_describe_number(value)} is beyond float32's range "
            f"(|x| <= {FLOAT32_MAX:.4g}), which the model compares in",
            row=row,
            field=field,
            code="value_out_of_range",
        )
    return number


def _categorical_value(value: Any, row: int, field: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InputError(
        f"row {row}, field {field!r}: expected a string or null, got {kind(value)}",
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
            f"body must be a JSON array of feature rows, got {kind(rows)}",
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
                f"row {i}: expected an object keyed by feature name, got {kind(row)}",
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
                f"pools[{i}] must be a string pool id, got {kind(pool_id)}",
                row=i,
                field="pools",
                code="unknown_type",
            )
    return pool_ids
