"""Load and validate the exported training set; turn it into the model matrix.

The model matrix is a 2-D numpy object array whose columns are the features in
the order of feature_columns.json (numerics as float with NaN for missing,
categoricals as str): exactly what the Lambda builds without pandas.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from inference import contracts
from models_py.errors import TrainingError


@dataclass
class TrainingData:
    frame: pd.DataFrame  # eligible, labelled rows, sorted by date then pool
    numeric: list[str]
    categorical: list[str]
    label: dict  # label settings read from the columns
    dropped: dict = field(default_factory=dict)  # rows removed and why
    # model matrices built so far, by feature list (the frame is not changed after prepare)
    _matrices: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def features(self) -> list[str]:
        return self.numeric + self.categorical

    @property
    def y(self) -> np.ndarray:
        return self.frame[contracts.LABEL_COLUMN].to_numpy(dtype=int)

    @property
    def dates(self) -> np.ndarray:
        return self.frame["snapshot_date"].to_numpy(dtype="datetime64[D]")

    @property
    def label_end_dates(self) -> np.ndarray:
        return self.frame[contracts.LABEL_WINDOW_END_COLUMN].to_numpy(dtype="datetime64[D]")

    def matrix(self, features: list[str] | None = None) -> np.ndarray:
        """The model matrix of `features` (default all), built once per list;
        callers index it (a copy) and never write into it."""
        key = tuple(features or self.features)
        if key not in self._matrices:
            self._matrices[key] = to_matrix(self.frame, list(key), self.categorical)
        return self._matrices[key]


def read_feature_columns(path: Path) -> dict:
    if not Path(path).exists():
        raise TrainingError(f"no feature columns at {path}: run `apy-runway build` first")
    contract = json.loads(Path(path).read_text())
    for key in ("numeric", "categorical"):
        if not isinstance(contract.get(key), list):
            raise TrainingError(f"{path}: key {key!r} is missing or not a list")
    return contract


def to_matrix(frame: pd.DataFrame, features: list[str], categorical: list[str]) -> np.ndarray:
    """Ordered object array: floats (NaN for missing) and str ('unknown' for missing)."""
    matrix = np.empty((len(frame), len(features)), dtype=object)
    for j, name in enumerate(features):
        column = frame[name]
        if name in categorical:
            values = column.astype(object).where(column.notna(), "unknown")
            matrix[:, j] = values.astype(str).to_numpy(dtype=object)
        else:
            matrix[:, j] = pd.to_numeric(column, errors="coerce").to_numpy(
                dtype=float, na_value=np.nan
            )
    return matrix


def label_settings(frame: pd.DataFrame) -> dict:
    """One value per label-setting column; fail on a missing or mixed column."""
    settings = {"column": contracts.LABEL_COLUMN}
    for name in contracts.LABEL_SETTING_COLUMNS:
        if name not in frame.columns:
            raise TrainingError(f"training set has no label-setting column {name!r}")
        values = frame[name].dropna().unique()
        if len(values) != 1:
            shown = sorted(map(str, values))[:5]
            raise TrainingError(
                f"training set column {name!r} holds {len(values)} values {shown}: "
                "mixed label settings; rebuild the training set with one setting"
            )
        value = values[0]
        settings[name] = value.item() if hasattr(value, "item") else value
    settings["horizon_days"] = int(settings["horizon_days"])
    settings["apy_drop_threshold"] = float(settings["apy_drop_threshold"])
    settings["min_future_coverage"] = float(settings["min_future_coverage"])
    settings["dead_pool_is_dropped"] = bool(settings["dead_pool_is_dropped"])
    settings["apy_future_stat"] = str(settings["apy_future_stat"])
    return settings


def prepare(frame: pd.DataFrame, contract: dict) -> TrainingData:
    """Validate the training set against the feature contract; keep eligible labelled rows."""
    numeric, categorical = list(contract["numeric"]), list(contract["categorical"])
    if not numeric + categorical:
        raise TrainingError("feature_columns.json lists no features")
    if frame.empty:
        raise TrainingError("training set is empty: no labelled rows to train on")
    required = [*contracts.KEY_COLUMNS, contracts.LABEL_COLUMN, "apy", "observed_day_count"]
    missing = [c for c in required + numeric + categorical if c not in frame.columns]
    if missing:
        raise TrainingError(
            f"training set misses column(s) {missing} "
            "listed in feature_columns.json or required for training"
        )
    settings = label_settings(frame)
    frame = frame.copy()
    check_values(frame, [*numeric, "apy", "observed_day_count"])
    frame["snapshot_date"] = pd.to_datetime(frame["snapshot_date"]).dt.normalize()
    check_unique_keys(frame)
    if "label_window_end_date" in frame.columns:
        frame["label_window_end_date"] = pd.to_datetime(
            frame["label_window_end_date"]
        ).dt.normalize()
    else:
        frame["label_window_end_date"] = frame["snapshot_date"] + pd.Timedelta(
            days=settings["horizon_days"]
        )
    dropped = {}
    unlabelled = frame[contracts.LABEL_COLUMN].isna()
    dropped["unlabelled"] = int(unlabelled.sum())
    frame = frame[~unlabelled]
    eligible = (frame["apy"] > contracts.MIN_APY_EXCLUSIVE) & (
        frame["observed_day_count"] >= contracts.MIN_OBSERVED_DAYS
    )
    dropped["not_eligible"] = int((~eligible).sum())
    frame = frame[eligible]
    if frame.empty:
        raise TrainingError(
            "training set is empty after dropping unlabelled and ineligible "
            f"rows (eligible: {contracts.describe_eligibility()})"
        )
    labels = set(frame[contracts.LABEL_COLUMN].astype(int).unique())
    if not labels <= {0, 1}:
        raise TrainingError(
            f"label column {contracts.LABEL_COLUMN} holds {sorted(labels)}, not 0/1"
        )
    if len(labels) < 2:
        raise TrainingError(
            f"training set is single-class: every eligible row has "
            f"{contracts.LABEL_COLUMN}={labels.pop()}; nothing to learn"
        )
    frame[contracts.LABEL_COLUMN] = frame[contracts.LABEL_COLUMN].astype(int)
    frame["pool_id"] = frame["pool_id"].astype(str)
    frame = frame.sort_values(["snapshot_date", "pool_id"], kind="stable").reset_index(drop=True)
    return TrainingData(frame, numeric, categorical, settings, dropped)


FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_values(frame: pd.DataFrame, numeric: list[str], what: str = "training set") -> None:
    """Refuse a numeric column holding a value training cannot use (text that
    is not a number, +-inf, or a finite value beyond float32's range, which
    the trees compare as float32 and the portable model refuses at serving),
    naming the column, the row and the value."""
    for name in dict.fromkeys(numeric):
        column = frame[name]
        values = pd.to_numeric(column, errors="coerce")
        not_numeric = values.isna() & column.notna()
        as_float = values.to_numpy(dtype=float, na_value=np.nan)
        infinite = np.isinf(as_float)
        with np.errstate(invalid="ignore"):
            beyond = np.isfinite(as_float) & (np.abs(as_float) > FLOAT32_MAX)
        for kind, bad in (
            ("not a number", not_numeric.to_numpy()),
            ("infinite", infinite),
            (f"beyond float32's range (|x| > {FLOAT32_MAX:.4g})", beyond),
        ):
            if bad.any():
                first = int(np.flatnonzero(bad)[0])
                raise TrainingError(
                    f"{what} column {name!r} holds {int(bad.sum())} value(s) that are "
                    f"{kind}: first at row {first} ({_key(frame, first)}): {column.iloc[first]!r}"
                )
        frame[name] = values


def check_unique_keys(frame: pd.DataFrame, what: str = "training set") -> None:
    """One row per (pool_id, snapshot_date): a duplicate would count a day twice."""
    duplicated = frame.duplicated(list(contracts.KEY_COLUMNS), keep=False)
    if duplicated.any():
        first = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise TrainingError(
            f"{what} has {int(duplicated.sum())} rows sharing a (pool_id, snapshot_date) "
            f"key with another row, first at row {first} ({_key(frame, first)}): "
            "rebuild it with `apy-runway build`"
        )


def _key(frame: pd.DataFrame, row: int) -> str:
    return ", ".join(f"{key}={frame[key].iloc[row]}" for key in contracts.KEY_COLUMNS)


def load_reference_features(path: Path, data: TrainingData) -> pd.DataFrame:
    """The drift reference's rows (the export of the dbt mart
    drift_reference_features: featurized pool-days, no labels): checked like
    the training set (the contract's columns present, numbers usable, one row
    per key), kept when eligible (the scorer scores eligible rows only) and
    within the newest contracts.DRIFT_REFERENCE_DAYS days of the file."""
    path = Path(path)
    frame = pd.read_parquet(path)
    required = [*contracts.KEY_COLUMNS, "apy", "observed_day_count"]
    missing = [c for c in dict.fromkeys(required + data.features) if c not in frame.columns]
    if missing:
        raise TrainingError(
            f"{path} misses column(s) {missing} listed in feature_columns.json: "
            "rebuild it with `apy-runway build`"
        )
    if frame.empty:
        raise TrainingError(f"{path} holds no rows: rebuild it with `apy-runway build`")
    frame = frame.copy()
    check_values(frame, [*data.numeric, "apy", "observed_day_count"], str(path))
    frame["snapshot_date"] = pd.to_datetime(frame["snapshot_date"]).dt.normalize()
    check_unique_keys(frame, str(path))
    newest = frame["snapshot_date"].max()
    recent = frame["snapshot_date"] > newest - pd.Timedelta(days=contracts.DRIFT_REFERENCE_DAYS)
    eligible = (frame["apy"] > contracts.MIN_APY_EXCLUSIVE) & (
        frame["observed_day_count"] >= contracts.MIN_OBSERVED_DAYS
    )
    frame = frame[recent & eligible]
    if frame.empty:
        raise TrainingError(
            f"{path} holds no eligible row in its newest {contracts.DRIFT_REFERENCE_DAYS} "
            f"days (eligible: {contracts.describe_eligibility()})"
        )
    frame = frame.sort_values(["snapshot_date", "pool_id"], kind="stable")
    return frame.reset_index(drop=True)


def load_training_set(training_set: Path, feature_columns: Path) -> TrainingData:
    if not Path(training_set).exists():
        raise TrainingError(f"no training set at {training_set}: run `apy-runway build` first")
    contract = read_feature_columns(feature_columns)
    frame = pd.read_parquet(training_set)
    return prepare(frame, contract)
