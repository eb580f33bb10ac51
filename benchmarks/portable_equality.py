"""The portable model against scikit-learn's predict_proba on full data.

    python -m benchmarks.portable_equality HOME [HOME ...]

For each built home (e.g. the default `make run` data and the README's
"Real data" run), every model training can ship (random_forest, logistic,
anchor) bare and isotonic- / sigmoid-calibrated is fitted with training's own
settings on the rows before the test period, exported, and compared with the
pipeline's own predict_proba on the test rows plus rows with every numeric
missing, every category missing or unseen, and numerics at +-3e38. Prints one
JSON line per home: rows, max |difference| per model, and the export sizes.
(tests/test_portable.py does the same on the small golden data set.)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.pipeline import Pipeline

from apy_runway.foundation.paths import project_paths
from inference.model import portable
from models_py import config, export
from models_py.data import load_training_set
from models_py.pipelines import build_pipeline
from models_py.splits import calibration_split, time_split

MODELS = ("random_forest", "logistic", "anchor")
CALIBRATIONS = (None, "isotonic", "sigmoid")


def hard_rows(data, X: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(0)
    extra = X[rng.choice(len(X), 30)].copy()
    numeric = [data.features.index(n) for n in data.numeric]
    categorical = [data.features.index(n) for n in data.categorical]
    extra[:10, numeric] = np.nan
    extra[10:15, categorical] = None
    extra[15:20, categorical] = "never-seen-category"
    extra[20:30, numeric] = 3e38 * np.sign(rng.normal(size=(10, len(numeric))))
    return np.vstack([X, extra])


def check_home(home: Path) -> dict:
    paths = project_paths(home)
    data = load_training_set(paths.training_set, paths.feature_columns)
    split = time_split(data.dates, data.label_end_dates, config.TEST_FRACTION)
    X, y = data.matrix(), data.y
    train, test = split.train_index, split.test_index
    rows = hard_rows(data, X[test])
    out = {"home": str(home), "train_rows": len(train), "test_rows": len(test), "models": {}}
    for name in MODELS:
        for calibration in CALIBRATIONS:
            started = time.perf_counter()
            pipeline = build_pipeline(
                name, data.features, data.categorical, dict(config.RF_CANDIDATES[1])
            )
            if calibration:
                cut = calibration_split(
                    data.dates[train],
                    data.label_end_dates[train],
                    np.arange(len(train)),
                    config.CALIBRATION_FRACTION,
                )
                pipeline = Pipeline(
                    [
                        ("preprocess", pipeline.named_steps["preprocess"]),
                        (
                            "classifier",
                            CalibratedClassifierCV(
                                pipeline.named_steps["classifier"], method=calibration, cv=[cut]
                            ),
                        ),
                    ]
                )
            pipeline.fit(X[train], y[train])
            facts = {
                "model_id": "equality",
                "model_name": name,
                "features": data.features,
                "numeric_features": data.numeric,
                "categorical_features": data.categorical,
                "label": data.label,
                "eligibility": {"min_apy_exclusive": 0, "min_observed_days": 7},
                "confidence_cutpoints": [60.0, 75.0],
                "library_versions": {},
            }
            spec, arrays, on_test = export.export(pipeline, facts, X[test])
            model = portable.load(json.loads(spec), portable.read_arrays(arrays))
            on_hard = export.check(pipeline, model, rows)
            out["models"][f"{name}/{calibration or 'none'}"] = {
                "max_abs_difference_test_rows": on_test,
                "max_abs_difference_with_hard_rows": on_hard,
                "arrays_kb": round(len(arrays) / 1e3, 1),
                "seconds": round(time.perf_counter() - started, 1),
            }
    out["max_abs_difference"] = max(
        m["max_abs_difference_with_hard_rows"] for m in out["models"].values()
    )
    return out


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    for home in argv:
        print(json.dumps(check_home(Path(home))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
