"""Training-run folders as the commands name them: a path, a run id under
runs/, `latest` (the newest trained) or `champion` (the promoted one)."""

from __future__ import annotations

import json
from pathlib import Path

from apy_runway.foundation.console import UserError
from apy_runway.foundation.paths import ProjectPaths
from inference import contracts
from models_py.run_folder import point_link

__all__ = ["point_link", "resolve_run"]


def resolve_run(paths: ProjectPaths, run: str | Path) -> Path:
    """The run folder named by `run`, checked to hold metadata.json and its model file."""
    candidate = Path(run)
    if not candidate.is_dir():
        candidate = paths.runs / str(run)
    if not candidate.is_dir():
        raise UserError(f"no training run at {candidate}: run `apy-runway train` first")
    candidate = candidate.resolve()
    metadata_path = candidate / contracts.MODEL_METADATA_FILE
    if not metadata_path.is_file():
        raise UserError(f"run folder {candidate} lacks {contracts.MODEL_METADATA_FILE}")
    try:
        metadata = json.loads(metadata_path.read_text())
    except json.JSONDecodeError as error:
        raise UserError(f"{metadata_path} is not valid JSON: {error}") from None
    model_file = metadata.get("model_file") or contracts.MODEL_FILE
    if not (candidate / model_file).is_file():
        raise UserError(f"run folder {candidate} lacks its model file {model_file}")
    return candidate
