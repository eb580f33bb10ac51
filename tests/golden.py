"""The golden fixture (tests/fixtures/golden/): a small trained run, its input
features, and what training and serving computed from them when it was made
(serving by scikit-learn at the time; the Lambda now serves the run's portable
model, which must give the same numbers).

`record_expected` writes the fixture (see fixtures/golden/regenerate.py);
tests/test_golden.py recomputes the same things with today's code and compares.
Only this module knows how to call training and serving, so a refactor that
moves code updates the calls here and leaves the expected numbers alone.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

GOLDEN = Path(__file__).resolve().parent / "fixtures" / "golden"
RF_TREES = 10
RUN_ID = "golden"
# the inputs' origin (fixtures/golden/regenerate.py): generated, seed 7
PROVENANCE = {"kind": "generated", "seed": 7, "pools": 40, "days": 200}


def inputs(folder: Path = GOLDEN) -> dict[str, Path]:
    base = folder / "inputs"
    return {
        "training_set": base / "training_set.parquet",
        "feature_columns": base / "feature_columns.json",
        "latest_features": base / "latest_features.parquet",
    }


def train(folder: Path = GOLDEN):
    """Train every model on the golden training set (10-tree forests)."""
    from models_py.data import load_training_set
    from models_py.training import Settings, train_models

    files = inputs(folder)
    data = load_training_set(files["training_set"], files["feature_columns"])
    return train_models(data, Settings(rf_trees=RF_TREES))


def training_metrics(result) -> dict:
    return {
        "production": result.production,
        "models": {
            name: {
                "test_roc_auc": res.test["roc_auc"],
                "cv_auc_mean": res.cv["cv_auc_mean"],
                "test_p_keep_sum": float(np.sum(res.p_test)),
            }
            for name, res in result.results.items()
        },
    }


def features_payload(folder: Path = GOLDEN) -> dict:
    """The golden latest features as publish's JSON copy (for the event time)."""
    from apy_runway.operations.publish import columnar_payload

    files = inputs(folder)
    contract = json.loads(files["feature_columns"].read_text())
    table = pq.read_table(files["latest_features"])
    return columnar_payload(table.to_pydict(), contract, source="golden")


def features_file(folder: Path = GOLDEN) -> bytes:
    """The golden latest features as the binary file the Lambda reads."""
    from apy_runway.operations.publish import features_binary

    files = inputs(folder)
    contract = json.loads(files["feature_columns"].read_text())
    return features_binary(pq.read_table(files["latest_features"]), contract, source="golden")


def event_time(payload: dict) -> str:
    from apy_runway.operations.score import default_event_time

    return default_event_time(payload["snapshot_date_max"])


def load_portable(run_dir: Path):
    """The run's portable model, through the Lambda's own checks (sizes, sha256)."""
    from inference.model import artefact, portable

    metadata = json.loads((run_dir / "metadata.json").read_text())
    pointer = artefact.Pointer.from_metadata(metadata)
    spec = (run_dir / pointer.spec_file).read_bytes()
    artefact.verify_bytes(
        spec, pointer.spec_file, pointer.spec_sha256, pointer.spec_size_bytes, "metadata.json"
    )
    document = json.loads(spec)
    arrays = (run_dir / document["arrays"]["file"]).read_bytes()
    artefact.verify_bytes(
        arrays,
        document["arrays"]["file"],
        document["arrays"]["sha256"],
        document["arrays"]["size_bytes"],
        pointer.spec_file,
    )
    return portable.load(document, portable.read_arrays(arrays))


def serve(run_dir: Path, payload: dict, binary: bytes, http_rows: list | None = None) -> dict:
    """What the hourly handler's core publishes for the golden features, plus
    the unrounded p_keep of every scored pool (served by the portable model,
    recorded by scikit-learn when the fixture was made)."""
    from inference import features, publication, scoring

    model = load_portable(run_dir)
    table = features.decode(binary)
    when = publication.parse_event_time(event_time(payload))
    published = publication.score_published(model, table, when, 48.0)
    scored = np.array(
        [i for i, p in enumerate(published["predictions"]) if p["status"] == "scored"]
    )
    numeric, codes = scoring.table_inputs(model, table)
    raw = scoring.score_inputs(
        model, numeric[scored], {k: v[scored] for k, v in codes.items()}
    ).proba
    columns = payload["columns"]
    rows = http_rows or [
        {name: columns[name][i] for name in model.spec.features} for i in scored[:25]
    ]
    http = scoring.score_rows(model, rows)
    return {
        "event_time": published["event_time"],
        "counts": published["counts"],
        "records": [
            {
                k: p[k]
                for k in (
                    "pool_id",
                    "status",
                    "reason",
                    "p_keep",
                    "predicted_class",
                    "binned_confidence",
                )
            }
            for p in published["predictions"]
        ],
        "raw_p_keep": {
            table.pool_ids[i]: float(p) for i, p in zip(scored.tolist(), raw[:, 1], strict=True)
        },
        "http_rows": rows,
        "http_predictions": http["predictions"],
        "http_binned_confidence": [r["binned_confidence"] for r in http["rows"]],
        "cutpoints": published["confidence_cutpoints"],  # the hour's
        "http_cutpoints": http["confidence_cutpoints"],  # the request's
        # the served document's own account of its model (issue 22)
        "document": {
            key: published[key] for key in ("confidence_cutpoints", "confidence", "data_provenance")
        },
        "published": published,
    }


def record_expected(folder: Path = GOLDEN) -> None:
    from models_py.run_folder import write_run
    from models_py.training import Settings

    result = train(folder)
    run_dir = folder / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    write_run(
        result,
        run_dir,
        RUN_ID,
        Settings(rf_trees=RF_TREES),
        with_report=False,
        provenance=PROVENANCE,
    )
    payload = features_payload(folder)
    served = serve(run_dir, payload, features_file(folder))
    served.pop("published")
    expected = {"training": training_metrics(result), "serving": served}
    (folder / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
