"""The binary features file `publish` writes and the hourly Lambda reads
(contracts.FEATURES_KEY): a JSON header, then an uncompressed .npz of the
numeric matrix, the categorical codes with their vocabularies, the pool ids and
the feature dates. Writer and reader.

Imports: numpy, the standard library and inference/ (floor 1). Reading needs no
pickle and no pandas, so the Lambda reads it with numpy alone; the header's
sha256 and size are checked before the body is read.

The layout, byte by byte: docs/serving.md#the-features-files-format.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from inference import contracts
from inference.model.artefact import ArchiveError, npz_bytes, read_npz

KEY_COLUMNS = ("pool_id", "snapshot_date")
MAX_HEADER_BYTES = 1 << 20
# feature days outside these are not calendar days (ISO 8601's four-digit years)
FIRST_DAY, LAST_DAY = np.datetime64("0001-01-01", "D"), np.datetime64("9999-12-31", "D")


class FeatureContractError(RuntimeError):
    """Published features are malformed or do not match the model's feature list."""


@dataclass(frozen=True)
class FeatureTable:
    """The decoded file: one row per pool."""

    header: dict
    numeric: np.ndarray  # (rows, numeric columns) float64
    codes: np.ndarray  # (rows, categorical columns) int32, -1 = missing
    vocabularies: tuple[tuple[str, ...], ...]
    pool_ids: list[str]
    feature_dates: list[str | None]

    @property
    def row_count(self) -> int:
        return len(self.pool_ids)

    @property
    def numeric_columns(self) -> list[str]:
        return self.header["numeric_columns"]

    @property
    def categorical_columns(self) -> list[str]:
        return self.header["categorical_columns"]

    def numeric_column(self, name: str) -> np.ndarray:
        return self.numeric[:, self.numeric_columns.index(name)]

    def categorical_column(self, name: str) -> tuple[tuple[str, ...], np.ndarray]:
        """(vocabulary, codes with -1 = missing) of a categorical column."""
        j = self.categorical_columns.index(name)
        return self.vocabularies[j], self.codes[:, j]

    def text_column(self, name: str) -> list[str | None]:
        vocabulary, codes = self.categorical_column(name)
        values = [*vocabulary, None]  # code -1 picks the last entry
        return [values[c] for c in codes.tolist()]


# --------------------------------------------------------------------------- writing


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) or value is None


def _numeric(values: Sequence, name: str) -> np.ndarray:
    """Numbers (None = missing, booleans 1/0) -> float64; any other value is refused."""
    if not any(isinstance(v, (str, bytes)) for v in values):
        try:
            return np.asarray(values, dtype=np.float64)  # None -> NaN
        except (TypeError, ValueError):
            pass
    out = np.empty(len(values), dtype=np.float64)
    for i, value in enumerate(values):
        if value is None:
            out[i] = math.nan
        elif isinstance(value, (bool, np.bool_, int, float, np.integer, np.floating)):
            out[i] = float(value)
        else:
            raise FeatureContractError(
                f"column {name!r}, row {i}: {value!r} is not a number (the column is numeric)"
            )
    return out


def _date(value: Any, row: int) -> np.datetime64:
    if value is None:
        return np.datetime64("NaT", "D")
    if isinstance(value, (dt.date, dt.datetime)):
        return np.datetime64(value.isoformat()[:10], "D")
    try:
        return np.datetime64(str(value)[:10], "D")
    except ValueError as error:
        raise FeatureContractError(
            f"column 'snapshot_date', row {row}: {value!r} is not a date"
        ) from error


def _text_codes(values: Sequence) -> tuple[np.ndarray, list[str]]:
    index: dict[str, int] = {}
    codes = np.empty(len(values), dtype=np.int32)
    for i, value in enumerate(values):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            codes[i] = -1
            continue
        text = str(value)
        codes[i] = index.setdefault(text, len(index))
    return codes, list(index)


def _placed(columns: dict[str, Sequence], feature_columns: dict) -> tuple[list, list]:
    """(numeric columns, categorical columns): the contract's features where
    it says, any other column by its values (numbers and booleans numeric)."""
    numeric_features = set(feature_columns.get("numeric", []))
    categorical_features = set(feature_columns.get("categorical", []))
    numeric_columns, categorical_columns = [], []
    for name, values in columns.items():
        if name in KEY_COLUMNS:
            continue
        if name in numeric_features:
            numeric_columns.append(name)
        elif name in categorical_features:
            categorical_columns.append(name)
        elif (isinstance(values, np.ndarray) and values.dtype.kind in "biuf") or all(
            _is_number(v) for v in values
        ):
            numeric_columns.append(name)
        else:
            categorical_columns.append(name)
    return numeric_columns, categorical_columns


def _keys(columns: dict[str, Sequence], published_at: str) -> tuple[list[str], np.ndarray]:
    """(pool ids, feature days), refused when a pool id is empty or listed
    twice, or a day is after publication plus one day."""
    pool_ids = [str(p) for p in columns["pool_id"]]
    if any(not p for p in pool_ids):
        raise FeatureContractError(f"pool_id is empty in row {pool_ids.index('')}")
    repeated = repeated_pool_ids(pool_ids)
    if repeated:
        raise FeatureContractError(
            f"pool_id {repeated[0]!r} is listed more than once"
            + (f" (and {len(repeated) - 1} more pool ids)" if len(repeated) > 1 else "")
            + "; the features hold one row per pool"
        )
    dates = np.array(
        [_date(v, i) for i, v in enumerate(columns["snapshot_date"])], dtype="datetime64[D]"
    )
    late = future_days(
        pool_ids,
        day_texts(dates),
        dt.datetime.fromisoformat(published_at.replace("Z", "+00:00")),
        what="publication at",
    )
    if late:
        raise FeatureContractError(late)
    return pool_ids, dates


def encode(
    columns: dict[str, Sequence],
    feature_columns: dict,
    *,
    source: str = "",
    allow_shrink: bool = False,
    published_at: str | None = None,
    refresh: dict | None = None,
) -> bytes:
    """Column-wise latest features (lists or arrays per column) -> the file.

    `feature_columns` is the feature contract (feature_columns.json: features,
    numeric, categorical); its numeric features go to the numeric matrix, its
    categorical ones to codes, whatever their values look like. Other columns
    are placed by their values: numbers and booleans numeric, anything else text.
    `refresh` (refresh_fields) goes in the header as it is.
    """
    missing = [n for n in [*feature_columns["features"], *KEY_COLUMNS] if n not in columns]
    if missing:
        raise FeatureContractError(f"latest features lack columns {missing}")
    lengths = {len(values) for values in columns.values()}
    if len(lengths) != 1:
        raise FeatureContractError(f"columns have different lengths: {sorted(lengths)}")
    rows = lengths.pop()
    numeric_columns, categorical_columns = _placed(columns, feature_columns)
    # column-major: a column is contiguous, as the model reads them
    numeric = np.empty((rows, len(numeric_columns)), dtype=np.float64, order="F")
    for j, name in enumerate(numeric_columns):
        values = columns[name]
        if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
            numeric[:, j] = values.astype(np.float64)
        else:
            numeric[:, j] = _numeric(values, name)
    codes = np.empty((rows, len(categorical_columns)), dtype=np.int32)
    arrays: dict[str, np.ndarray] = {"numeric": numeric, "codes": codes}
    for j, name in enumerate(categorical_columns):
        codes[:, j], vocabulary = _text_codes(columns[name])
        arrays[f"vocabulary_{j}"] = np.array(vocabulary, dtype=str)
    published_at = published_at or dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    pool_ids, dates = _keys(columns, published_at)
    arrays["pool_id"] = np.array(pool_ids, dtype=str)
    arrays["snapshot_date"] = dates
    body = npz_bytes(arrays)
    known = dates[~np.isnat(dates)]
    header = {
        "format": contracts.FEATURES_FORMAT,
        "row_count": rows,
        "feature_date": str(known.max()) if len(known) else None,
        "allow_shrink": bool(allow_shrink),
        "numeric_columns": numeric_columns,
        "categorical_columns": categorical_columns,
        "features": list(feature_columns["features"]),
        "numeric": list(feature_columns.get("numeric", [])),
        "categorical": list(feature_columns.get("categorical", [])),
        "published_at": published_at,
        "source": source,
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "body_size_bytes": len(body),
    }
    header.update(checked_refresh(refresh))
    encoded = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    return contracts.FEATURES_MAGIC + struct.pack("<Q", len(encoded)) + encoded + body


# --------------------------------------------------------------------------- the refresh's fields


def refresh_hour_text(moment: dt.datetime) -> str:
    """An aware moment -> its UTC hour as the header writes it (YYYY-MM-DDTHH:00:00Z)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:00:00Z")


def refresh_fields(
    refreshed_hour: dt.datetime | None = None,
    input_notes: Sequence[str] = (),
    refused_inputs: Sequence[str] = (),
) -> dict[str, Any]:
    """The header fields (contracts.FEATURES_REFRESH_FIELDS) of the refresh that
    publishes the features: its hour, its input notes and its set-aside files
    (each left out when empty). One dict for the JSON copy and the binary file."""
    fields: dict[str, Any] = {}
    if refreshed_hour is not None:
        fields[contracts.FEATURES_REFRESHED_HOUR_FIELD] = refresh_hour_text(refreshed_hour)
    if input_notes:
        fields[contracts.FEATURES_INPUT_NOTES_FIELD] = [str(note) for note in input_notes]
    if refused_inputs:
        fields[contracts.FEATURES_REFUSED_INPUTS_FIELD] = [str(name) for name in refused_inputs]
    return fields


def checked_refresh(refresh: dict | None) -> dict[str, Any]:
    """`refresh` (refresh_fields' dict) checked to hold the refresh's fields only."""
    refresh = dict(refresh or {})
    unknown = sorted(set(refresh) - set(contracts.FEATURES_REFRESH_FIELDS))
    if unknown:
        raise FeatureContractError(f"{unknown} are not refresh fields of the features header")
    return refresh


# --------------------------------------------------------------------------- reading


def read_header(data: bytes) -> tuple[dict, int]:
    """(header, offset of the body); raises FeatureContractError naming the problem."""
    magic = contracts.FEATURES_MAGIC
    if len(data) < len(magic) + 8 or data[: len(magic)] != magic:
        raise FeatureContractError(
            f"the features file does not start with {magic!r}: not an apy-runway "
            f"binary features file ({contracts.FEATURES_FORMAT})"
        )
    (length,) = struct.unpack_from("<Q", data, len(magic))
    start = len(magic) + 8
    if length > MAX_HEADER_BYTES or start + length > len(data):
        raise FeatureContractError(f"the features header length {length} is impossible")
    try:
        header = json.loads(data[start : start + length])
    except (ValueError, UnicodeDecodeError) as error:
        raise FeatureContractError(f"the features header is not JSON: {error}") from error
    if not isinstance(header, dict) or header.get("format") != contracts.FEATURES_FORMAT:
        found = header.get("format") if isinstance(header, dict) else header
        raise FeatureContractError(
            f"published features have format {found!r}, expected {contracts.FEATURES_FORMAT!r}"
        )
    return header, start + length


def _field(header: dict, name: str, kind: type) -> Any:
    value = header.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise FeatureContractError(f"features header field {name!r} is missing or malformed")
    return value


def decode(data: bytes) -> FeatureTable:
    """The file -> a FeatureTable, every field checked against the header."""
    header, offset = read_header(data)
    body = data[offset:]
    rows = _field(header, "row_count", int)
    numeric_columns = _field(header, "numeric_columns", list)
    categorical_columns = _field(header, "categorical_columns", list)
    if len(body) != _field(header, "body_size_bytes", int):
        raise FeatureContractError(
            f"features body is {len(body)} bytes, the header says {header['body_size_bytes']}"
        )
    if hashlib.sha256(body).hexdigest() != _field(header, "body_sha256", str):
        raise FeatureContractError("features body sha256 does not match its header")
    try:
        arrays = read_npz(body)
    except ArchiveError as error:
        raise FeatureContractError(f"features body is not a readable .npz: {error}") from None

    def array(key: str, kinds: str, shape: tuple) -> np.ndarray:
        value = arrays.get(key)
        if value is None or value.dtype.kind not in kinds or value.shape != shape:
            got = None if value is None else f"{value.dtype} {value.shape}"
            raise FeatureContractError(
                f"features body array {key!r} is {got}, expected kind {kinds!r} shape {shape}"
            )
        return value

    numeric = array("numeric", "f", (rows, len(numeric_columns))).astype(np.float64, copy=False)
    codes = array("codes", "i", (rows, len(categorical_columns)))
    vocabularies = []
    for j, name in enumerate(categorical_columns):
        vocabulary = arrays.get(f"vocabulary_{j}")
        if vocabulary is None or vocabulary.dtype.kind != "U" or vocabulary.ndim != 1:
            raise FeatureContractError(f"features body lacks the vocabulary of {name!r}")
        column = codes[:, j]
        if len(column) and (column.min() < -1 or column.max() >= len(vocabulary)):
            raise FeatureContractError(f"features column {name!r} has codes outside its vocabulary")
        vocabularies.append(tuple(vocabulary.tolist()))
    pool_ids = array("pool_id", "U", (rows,)).tolist()
    repeated = repeated_pool_ids(pool_ids)
    if repeated:
        raise FeatureContractError(
            f"features list pool {repeated[0]!r} more than once"
            + (f" (and {len(repeated) - 1} more pool ids)" if len(repeated) > 1 else "")
        )
    feature_dates = day_texts(array("snapshot_date", "M", (rows,)))
    return FeatureTable(header, numeric, codes, tuple(vocabularies), pool_ids, feature_dates)


# --------------------------------------------------------------------------- soundness


def day_texts(dates: np.ndarray) -> list[str | None]:
    """datetime64 days -> 'YYYY-MM-DD' (None = NaT); a day outside years
    1..9999 is no calendar day (FeatureContractError)."""
    days = dates.astype("datetime64[D]")
    known = days[~np.isnat(days)]
    if len(known) and (known.min() < FIRST_DAY or known.max() > LAST_DAY):
        odd = known.min() if known.min() < FIRST_DAY else known.max()
        raise FeatureContractError(f"features column snapshot_date holds {odd}, not a calendar day")
    # formatted once per distinct day (datetime_as_string costs ~1 us a value)
    distinct, where = np.unique(days, return_inverse=True)
    texts = [None if d == "NaT" else d for d in np.datetime_as_string(distinct).tolist()]
    return np.array(texts, dtype=object)[where.reshape(-1)].tolist()


def repeated_pool_ids(pool_ids: Sequence[str]) -> list[str]:
    """The pool ids listed more than once, sorted (one row per pool is the contract)."""
    if len(set(pool_ids)) == len(pool_ids):
        return []
    seen: set[str] = set()
    return sorted({p for p in pool_ids if p in seen or seen.add(p)})


def future_days(
    pool_ids: Sequence[str],
    feature_dates: Sequence[str | None],
    hour: dt.datetime,
    what: str = "the scoring hour",
) -> str | None:
    """Why features must not be used at `hour` (aware UTC): a feature day
    after the hour plus one day, which would never count as stale (a clock or
    a feed gone wrong); the message names the day and a pool. None: none."""
    limit = (hour.astimezone(dt.UTC) + dt.timedelta(days=1)).date().isoformat()
    late = [(d, p) for d, p in zip(feature_dates, pool_ids, strict=True) if d and d > limit]
    if not late:
        return None
    day, pool = max(late)
    return (
        f"feature day {day} (pool {pool!r}; {len(late)} pool(s) after {limit}) is after "
        f"{what} {hour:%Y-%m-%dT%H:%MZ} plus one day"
    )
