"""Where a run's training data came from: metadata.json's `data_provenance`.

generated (apy-runway generate, with its seed), collected (the first and last
collected /pools hour) or files (real files, names and sha256), read from the
raw store's manifest; a training set given directly is `unknown`. The words
are models_py.quality.describe_provenance's; docs/model.md describes the field.
"""

from __future__ import annotations

import json
from pathlib import Path

from apy_runway.foundation.paths import ProjectPaths
from apy_runway.landing.generate import GENERATED_METADATA_KEY
from apy_runway.landing.ingest.pools_snapshot import snapshot_hour_of
from apy_runway.landing.ingest.store import read_manifest


def _generated_facts(path: Path) -> dict | None:
    """The generator's facts from a parquet file's metadata (None: not generated)."""
    import pyarrow.parquet as pq

    if path.suffix != ".parquet" or not path.is_file():
        return None
    try:
        metadata = pq.read_schema(path).metadata or {}
    except (OSError, ValueError):
        return None
    value = metadata.get(GENERATED_METADATA_KEY.encode())
    return json.loads(value) if value else None


def data_provenance(paths: ProjectPaths, training_set: Path) -> dict:
    """The provenance of the project's own training set (its raw store's landed files)."""
    if Path(training_set).resolve() != paths.training_set.resolve():
        return {"kind": "unknown", "training_set": str(training_set)}
    landed = [entry for entry in read_manifest(paths) if entry.is_landed]
    if not landed:
        return {"kind": "unknown", "training_set": str(training_set)}
    files = [{"name": entry.name, "sha256": entry.sha256} for entry in landed]
    for entry in landed:
        path = Path(entry.name)
        facts = _generated_facts(path if path.is_absolute() else paths.home / path)
        if facts is not None:
            return {"kind": "generated", **facts, "files": files}
    hours = sorted(snapshot_hour_of(Path(e.name)) for e in landed if e.kind == "pools")
    if hours and len(hours) == len(landed):
        return {
            "kind": "collected",
            "first_hour": hours[0].strftime("%Y-%m-%dT%HZ"),
            "last_hour": hours[-1].strftime("%Y-%m-%dT%HZ"),
            "hours": len(hours),
        }
    provenance: dict = {"kind": "files", "files": files}
    if hours:
        provenance["collected_hours"] = [h.strftime("%Y-%m-%dT%HZ") for h in (hours[0], hours[-1])]
    return provenance
