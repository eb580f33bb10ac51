"""`apy-runway backtest --months N`: a track record from day one. Replays the rows
the monthly walk-forward backtest (models_py/backtest.py, run by training) scored
in its last N months into the prediction ledger as source `backtest`, each with
the p_keep of the model refitted before its month, the class and bin by the
contracts' rules, its label settings and the midnight after its feature day.
Nothing is refitted here: there is one backtest. Then rebuilds the ledger's dbt
models (tag ledger).

Imports: numpy, pandas, the standard library, apy_runway/foundation and
operations, and inference/ (floor 6, operations). What it writes and why no row
is "not scored": docs/monitoring.md#the-prediction-ledger.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from apy_runway.foundation.console import UserError, log
from apy_runway.foundation.lock import locked
from apy_runway.foundation.paths import ProjectPaths
from apy_runway.operations import ledger
from apy_runway.operations.runs import resolve_run
from inference import contracts, service

BACKTEST_FILE = "backtest_predictions.parquet"


OWN_BIN_COLUMNS = ("binned_confidence", "cutpoint_low", "cutpoint_high")


def _bins(predictions: pd.DataFrame, p_keep: np.ndarray, cutpoints: list) -> dict:
    """The backtest's own bins and each day's cut-points (by its month's refit's
    levels, as the Lambda bins an hour); a run written before them: the run's
    stored cut-points."""
    if all(column in predictions.columns for column in OWN_BIN_COLUMNS):
        return {column: predictions[column].to_numpy() for column in OWN_BIN_COLUMNS}
    shown = contracts.predicted_probability(p_keep)
    return {
        "binned_confidence": np.asarray(contracts.confidence_bin(shown, cutpoints), dtype=int),
        "cutpoint_low": float(cutpoints[0]),
        "cutpoint_high": float(cutpoints[1]),
    }


def ledger_frame(predictions: pd.DataFrame, metadata: dict, run_id: str) -> pd.DataFrame:
    """The backtest's rows as ledger rows (pure)."""
    p_keep = predictions["p_keep"].to_numpy(dtype=np.float64)
    days = pd.to_datetime(predictions["snapshot_date"]).dt.normalize()
    label = metadata["label"]
    frame = pd.DataFrame(
        {
            "source": "backtest",
            "pool_id": predictions["pool_id"].astype(str).to_numpy(),
            "hour": (days + pd.Timedelta(days=1)).dt.strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy(),
            "model_id": [
                f"{run_id}/backtest-trained-to-{t}" for t in predictions["model_trained_to"]
            ],
            "feature_date": days.dt.strftime("%Y-%m-%d").to_numpy(),
            "p_keep": p_keep,
            "predicted_class": np.where(
                contracts.predicted_class_is_down(p_keep),
                contracts.CLASS_DOWN,
                contracts.CLASS_KEEP,
            ),
            **_bins(predictions, p_keep, metadata["confidence_cutpoints"]),
        }
    )
    for column in contracts.LABEL_SETTING_COLUMNS:
        frame[column] = label.get(column)
    frame["reasons"] = [[] for _ in range(len(frame))]
    return frame


@locked("backtest")
def replay(
    paths: ProjectPaths,
    run: str = "latest",
    months: int | None = None,
    out: Path | None = None,
    build: bool = True,
) -> dict:
    """Write the backtest's last `months` months to the ledger; rebuild its models."""
    if months is not None and months < 1:
        raise UserError(f"--months must be at least 1, got {months}")
    run_dir = resolve_run(paths, run)
    metadata = json.loads((run_dir / contracts.MODEL_METADATA_FILE).read_text())
    source = run_dir / BACKTEST_FILE
    if not source.is_file():
        raise UserError(
            f"{source} does not exist: the run was trained without its monthly backtest "
            "(train without --no-backtest)"
        )
    predictions = pd.read_parquet(source)
    held = sorted(predictions["month"].unique().tolist())
    chosen = held[-months:] if months else held
    if months and months > len(held):
        raise UserError(
            f"{source} holds {len(held)} backtest months ({held[0]}..{held[-1]}), not {months}"
        )
    predictions = predictions[predictions["month"].isin(chosen)]
    frame = ledger_frame(predictions, metadata, run_dir.name)
    out = Path(out or ledger.default_folder(paths))
    for old in out.glob("date=*/*.backtest.json.gz"):
        old.unlink()
    files = 0
    for (_day, hour), rows in frame.groupby(["feature_date", "hour"], sort=True):
        when = dt.datetime.fromisoformat(hour.replace("Z", "+00:00"))
        target = out / contracts.ledger_key("", when, "backtest")
        target.parent.mkdir(parents=True, exist_ok=True)
        records = rows.to_dict(orient="records")
        partial = target.with_name(f".{target.name}.partial")
        partial.write_bytes(service.ledger_body(records))
        os.replace(partial, target)
        files += 1
    log(
        f"backtest: {len(frame)} rows of {len(chosen)} months ({chosen[0]}..{chosen[-1]}) "
        f"of run {run_dir.name} -> {files} ledger files in {out}"
    )
    if build:
        ledger.build_ledger_models(paths)
    return {"rows": len(frame), "months": len(chosen), "files": files, "out": out}
