"""Training-run folders as the commands name them: a path, a run id under
runs/, `latest` (the newest trained) or `champion` (the promoted one)."""

from __future__ import annotations

import json
from pathlib import Path

from apy_runway.foundation.console import UserError
from apy_runway.foundation.paths import ProjectPaths
from inference import contracts
from models_py import config
from models_py.run_folder import LATEST, point_link

__all__ = ["check_fit_to_ship", "existing_runs", "point_link", "resolve_run"]


def existing_runs(paths: ProjectPaths) -> list[str]:
    """What `--run` may name under runs/: `latest` and `champion` when they
    lead to a folder, then the run folders by name."""
    if not paths.runs.is_dir():
        return []
    links = [name for name in (LATEST, config.CHAMPION) if (paths.runs / name).is_dir()]
    folders = sorted(
        p.name
        for p in paths.runs.iterdir()
        if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")
    )
    return links + [name for name in folders if name not in links]


def resolve_run(paths: ProjectPaths, run: str | Path) -> Path:
    """The run folder named by `run`, checked to hold metadata.json and its model file."""
    candidate = Path(run)
    if not candidate.is_dir():
        candidate = paths.runs / str(run)
    if not candidate.is_dir():
        existing = existing_runs(paths)
        if not existing:
            raise UserError(f"no training run at {candidate}: run `apy-runway train` first")
        raise UserError(f"no training run at {candidate}; the runs are: {', '.join(existing)}")
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


def check_fit_to_ship(
    metadata: dict, action: str, allow_weak: bool = False, allow_synthetic: bool = False
) -> None:
    """Refuse to `action` (publish, promote) a weak run without --allow-weak,
    or one trained on generated data without --allow-synthetic
    (metadata.json's `quality` and `data_provenance`; docs/model.md)."""
    run = metadata.get("model_id", "?")
    verdict = metadata.get("quality") or {}
    if verdict.get("weak") and not allow_weak:
        raise UserError(
            f"run {run} is a WEAK model ({'; '.join(verdict.get('reasons', []))}); "
            f"nothing was done. Pass --allow-weak to {action} it anyway"
        )
    provenance = metadata.get("data_provenance") or {}
    if provenance.get("kind") == "generated" and not allow_synthetic:
        raise UserError(
            f"run {run} was trained on GENERATED data (seed {provenance.get('seed')}): a "
            f"demonstration model; nothing was done. Pass --allow-synthetic to {action} it anyway"
        )
