"""The tiny model the inference tests use honours the training contract."""

from __future__ import annotations

import hashlib
import json

import joblib
import numpy as np
from fixtures.tiny_model import synthetic_rows


def test_tiny_model_follows_the_training_contract(tiny_run):
    metadata = json.loads((tiny_run / "metadata.json").read_text())
    model = joblib.load(tiny_run / "model.joblib")
    X, _ = synthetic_rows(5, seed=3)
    X[0, 4] = "NeverSeenChain"
    X[1, 3] = np.nan
    proba = model.predict_proba(X)
    assert metadata["features"] == metadata["numeric_features"] + metadata["categorical_features"]
    assert proba.shape == (5, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (
        hashlib.sha256((tiny_run / "model.joblib").read_bytes()).hexdigest()
        == metadata["model_sha256"]
    )
