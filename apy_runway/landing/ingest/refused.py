"""Landing files ingest refused, set aside so they never stop the loop.

A file of data/landing/ that ingest refuses (unreadable, malformed, or no row
to stage) moves to data/landing/refused/<its path under landing/>, beside
<name>.reason.txt saying why; later ingests of the landing folder skip it.
`ingest --retry-refused` moves them back (their reasons go to
refused/retried/<UTC time>/) so the next ingest offers them again. Nothing is
deleted. May import foundation and the standard library.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from apy_runway.foundation.console import log
from apy_runway.foundation.paths import ProjectPaths

REASON_SUFFIX = ".reason.txt"
RETRIED = "retried"


def is_set_aside(paths: ProjectPaths, path: Path) -> bool:
    return paths.landing_refused in Path(path).resolve().parents


def set_aside(paths: ProjectPaths, path: Path, reason: str) -> str:
    """Move a refused landing file to refused/ beside its reason; returns its
    path under landing/ (how health and the summary name it)."""
    path = Path(path).resolve()
    relative = path.relative_to(paths.landing.resolve())
    target = paths.landing_refused / relative
    if target.exists():  # refused before and landed again: keep both
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = target.with_name(f"{stamp}-{target.name}")
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, target)
    reason_file = target.with_name(target.name + REASON_SUFFIX)
    reason_file.write_text(
        f"{relative}: refused by ingest at {datetime.now(UTC).isoformat()}\n{reason}\n"
    )
    log(f"ingest: set aside {relative} -> {target} ({reason})")
    return str(relative)


def refused_files(paths: ProjectPaths) -> list[Path]:
    """The files waiting in refused/ (not their reasons, not retried/)."""
    root = paths.landing_refused
    if not root.is_dir():
        return []
    retried = root / RETRIED
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not p.name.endswith(REASON_SUFFIX) and retried not in p.parents
    )


def retry_refused(paths: ProjectPaths) -> list[Path]:
    """Move every set-aside file back to its place under landing/ (its reason
    to refused/retried/<time>/); returns the files moved back."""
    moved = []
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    for path in refused_files(paths):
        relative = path.relative_to(paths.landing_refused)
        back = paths.landing / relative
        if back.exists():
            back = back.with_name(f"retried-{stamp}-{back.name}")
        back.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, back)
        reason = path.with_name(path.name + REASON_SUFFIX)
        if reason.exists():
            kept = paths.landing_refused / RETRIED / stamp / relative.parent / reason.name
            kept.parent.mkdir(parents=True, exist_ok=True)
            os.replace(reason, kept)
        moved.append(back)
    log(f"ingest --retry-refused: {len(moved)} file(s) moved back to {paths.landing}")
    return moved
