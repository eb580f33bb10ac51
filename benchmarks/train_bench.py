"""Training costs: fit time, artefact size, test AUC and 20k-row predict_proba
time of each model, and a random-forest settings grid (trees x leaf size).

    python -m benchmarks.train_bench HOME [--grid 20:50,40:50,40:25,100:1] [--models ...]

Uses models_py's own pieces (load_training_set, time_split, build_pipeline) on
HOME's exported training set: one purged time split (train before, test after),
every model fitted once on the training rows. Sizes are joblib compress=3 bytes,
as models_py.run_folder saves model.joblib. The `apy-runway train` CLI does more
(walk-forward CV, calibration check, size guard, report); its own wall time is
measured separately by benchmarks.run's train section.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from apy_runway.foundation.paths import project_paths
from models_py import config
from models_py.data import load_training_set
from models_py.pipelines import build_pipeline
from models_py.splits import time_split
from models_py.training import pickled_size


def timed_fit(pipeline, X, y) -> float:
    started = time.perf_counter()
    pipeline.fit(X, y)
    return time.perf_counter() - started


def proba_ms(pipeline, X, rows: int = 20_000, repeat: int = 3) -> float:
    sample = X[np.resize(np.arange(len(X)), rows)]
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        pipeline.predict_proba(sample)
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("home")
    parser.add_argument("--models", default=",".join(config.MODEL_NAMES))
    parser.add_argument(
        "--grid",
        default="10:50,20:50,40:50,40:25,100:50,100:1",
        help="random-forest settings TREES:MIN_SAMPLES_LEAF (max_samples 0.3 unless leaf 1)",
    )
    parser.add_argument(
        "--latency-rows", type=int, default=20_000, help="rows of the predict_proba timing"
    )
    args = parser.parse_args(argv)
    paths = project_paths(args.home)
    started = time.perf_counter()
    data = load_training_set(paths.training_set, paths.feature_columns)
    X, y = data.matrix(), data.y
    split = time_split(data.dates, data.label_end_dates)
    train, test = split.train_index, split.test_index
    load_s = time.perf_counter() - started
    rows = []

    def fit_row(name: str, params: dict | None, trees: int, label: str) -> None:
        pipeline = build_pipeline(name, data.features, data.categorical, params, trees)
        fit_s = timed_fit(pipeline, X[train], y[train])
        auc = roc_auc_score(y[test], pipeline.predict_proba(X[test])[:, 1])
        classifier = pipeline.named_steps["classifier"]
        oob = getattr(classifier, "oob_decision_function_", None)
        row = {
            "model": label,
            "fit_s": round(fit_s, 2),
            "artefact_mb": round(pickled_size(pipeline) / 1e6, 3),
            # out-of-bag predictions of every training row, pickled with the forest
            "of_which_oob_decision_function_mb": round(pickled_size(oob) / 1e6, 3)
            if oob is not None
            else 0,
            "test_auc": round(float(auc), 4),
            "predict_proba_20k_ms": proba_ms(pipeline, X, args.latency_rows),
        }
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)

    default_rf = dict(config.RF_CANDIDATES[1])
    for name in args.models.split(","):
        fit_row(name, default_rf, config.RF_TREES, name)
    for cell in filter(None, args.grid.split(",")):
        trees, leaf = (int(v) for v in cell.split(":"))
        params = (
            dict(config.RF_REFERENCE) if leaf == 1 else {**default_rf, "min_samples_leaf": leaf}
        )
        fit_row("random_forest", params, trees, f"random_forest trees={trees} {params}")
    print(
        json.dumps(
            {
                "train_rows": len(train),
                "test_rows": len(test),
                "features": len(data.features),
                "load_s": round(load_s, 2),
                "test_start": str(split.test_start),
                "models": rows,
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
