"""The model artefact as the Lambda receives it: the spec it reads from
metadata.json, the integrity checks it runs before loading, and the loading.

The sha256 and size of the model file are checked against metadata.json before
a single byte is deserialised; a scikit-learn version other than training's is
refused.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from typing import Any

from inference import contracts


class ModelIntegrityError(RuntimeError):
    """The model artefact does not match its metadata (sha256, library versions)."""


@dataclass(frozen=True)
class ModelSpec:
    """What serving needs from metadata.json, validated once."""

    model_id: str
    features: tuple[str, ...]
    numeric_features: frozenset[str]
    categorical_features: frozenset[str]
    cutpoints: tuple[float, float]
    min_apy_exclusive: float
    min_observed_days: int

    @classmethod
    def from_metadata(cls, metadata: dict) -> ModelSpec:
        try:
            features = tuple(metadata["features"])
            numeric = frozenset(metadata["numeric_features"])
            categorical = frozenset(metadata["categorical_features"])
            cutpoints = tuple(float(x) for x in metadata["confidence_cutpoints"])
            eligibility = metadata.get("eligibility") or {}
            model_id = str(metadata["model_id"])
        except (KeyError, TypeError, ValueError) as error:
            raise ModelIntegrityError(
                f"metadata.json is missing or malformed: {error!r}"
            ) from error
        if not features:
            raise ModelIntegrityError("metadata.json lists no features")
        if set(features) != numeric | categorical or numeric & categorical:
            raise ModelIntegrityError(
                "metadata.json: features must be exactly numeric_features + categorical_features"
            )
        if len(cutpoints) != 2 or not (50.0 <= cutpoints[0] <= cutpoints[1] <= 100.0):
            raise ModelIntegrityError(
                f"metadata.json: confidence_cutpoints must be [q1, q2] within 50..100, "
                f"got {metadata.get('confidence_cutpoints')!r}"
            )
        return cls(
            model_id=model_id,
            features=features,
            numeric_features=numeric,
            categorical_features=categorical,
            cutpoints=(cutpoints[0], cutpoints[1]),
            min_apy_exclusive=float(
                eligibility.get("min_apy_exclusive", contracts.MIN_APY_EXCLUSIVE)
            ),
            min_observed_days=int(
                eligibility.get("min_observed_days", contracts.MIN_OBSERVED_DAYS)
            ),
        )


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def model_file_name(metadata: dict) -> str:
    """The model file named by metadata.json: a plain file name, never a path."""
    name = metadata.get("model_file") or contracts.MODEL_FILE
    if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith("."):
        raise ModelIntegrityError(f"metadata.json: model_file {name!r} is not a plain file name")
    return name


def verify_artefact(data: bytes, metadata: dict) -> None:
    """Refuse an artefact whose bytes do not match metadata.json (before loading)."""
    expected = metadata.get("model_sha256")
    if not expected:
        raise ModelIntegrityError("metadata.json has no model_sha256: refusing to load the model")
    actual = sha256_hex(data)
    if actual != expected:
        raise ModelIntegrityError(
            f"model artefact sha256 mismatch: metadata says {expected}, "
            f"the artefact is {actual}; refusing to load it"
        )
    size = metadata.get("model_size_bytes")
    if size is not None and int(size) != len(data):
        raise ModelIntegrityError(
            f"model artefact size mismatch: metadata says {size} bytes, got {len(data)}"
        )


def installed_versions() -> dict[str, str | None]:
    versions = {}
    for name in ("scikit-learn", "numpy", "scipy", "joblib"):
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def check_library_versions(metadata: dict, installed: dict[str, str | None]) -> list[str]:
    """Refuse a scikit-learn mismatch; return warnings for other libraries."""
    trained = metadata.get("library_versions") or {}
    want = trained.get("scikit-learn")
    have = installed.get("scikit-learn")
    if not want:
        raise ModelIntegrityError("metadata.json has no library_versions['scikit-learn']")
    if want != have:
        raise ModelIntegrityError(
            f"scikit-learn version mismatch: the model was trained with {want}, "
            f"this runtime has {have}; rebuild the layer with the training versions "
            f"(./createlayer.sh <python> --metadata runs/<run_id>/metadata.json)"
        )
    warnings = []
    for name in ("numpy", "scipy", "joblib"):
        if trained.get(name) and installed.get(name) and trained[name] != installed[name]:
            warnings.append(f"{name} {installed[name]} differs from training's {trained[name]}")
    return warnings


def iter_estimators(model: Any) -> Iterator[Any]:
    """The model and every estimator nested in it (pipeline steps, column
    transformers, calibrated classifiers and their base estimators)."""
    stack = [model]
    while stack:
        estimator = stack.pop()
        yield estimator
        stack.extend(step for _, step in getattr(estimator, "steps", []) or [])
        stack.extend(
            step
            for _, step, _ in getattr(estimator, "transformers_", []) or []
            if not isinstance(step, str)
        )
        stack.extend(getattr(estimator, "calibrated_classifiers_", []) or [])
        inner = getattr(estimator, "estimator", None)
        if inner is not None and hasattr(inner, "get_params"):
            stack.append(inner)


def single_threaded(model: Any) -> Any:
    """Set n_jobs = 1 on every nested estimator: on 20k rows a forest's threads
    save nothing (22.5 ms vs 24.1 ms idle) and make latency erratic under load
    (benchmarks/RESULTS.md)."""
    for estimator in iter_estimators(model):
        if getattr(estimator, "n_jobs", None) not in (None, 1):
            estimator.n_jobs = 1
    return model


def load_verified_model(data: bytes, metadata: dict) -> Any:
    """Verify the bytes against metadata.json, then load them single-threaded."""
    verify_artefact(data, metadata)  # before deserialising: never load unverified bytes
    import joblib  # imported here: the layer's heavy imports are paid on first use

    model = single_threaded(joblib.load(io.BytesIO(data)))
    if not hasattr(model, "predict_proba"):
        raise ModelIntegrityError(
            f"{model_file_name(metadata)} holds {type(model).__name__}, "
            f"not a classifier with predict_proba"
        )
    return model
