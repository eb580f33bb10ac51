"""`apy-runway ledger sync`: copy the prediction ledger (the served predictions the
hourly Lambda writes, and the backtest's replay) from an S3 bucket or a folder
into data/ledger/ with the same layout, where the dbt source
`ledger.served_predictions` reads it.

Imports: the standard library, apy_runway/foundation and warehouse, and
inference/ (floor 6, operations). Every file is checked before it is copied: a
corrupt file or a missing day is reported by name and skipped (never counted as
"no predictions"; data/ledger/_sync_report.json), and an earlier good copy is
kept. Layout and fields: docs/monitoring.md#the-prediction-ledger.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from apy_runway.foundation.console import UserError, log
from apy_runway.foundation.lock import locked
from apy_runway.foundation.paths import ProjectPaths
from inference import contracts

REPORT_FILE = "_sync_report.json"
# the fields every ledger row carries (inference/publication.py ledger_rows)
REQUIRED_FIELDS = (
    "source",
    "pool_id",
    "hour",
    "model_id",
    "feature_date",
    "p_keep",
    "predicted_class",
    "binned_confidence",
    "cutpoint_low",
    "cutpoint_high",
    *contracts.LABEL_SETTING_COLUMNS,
    "reasons",
)
FILE_NAME = re.compile(
    r"^date=(\d{4}-\d{2}-\d{2})/\d{4}-\d{2}-\d{2}T\d{2}Z(\.backtest)?\.json\.gz$"
)


class LedgerFileError(ValueError):
    """A ledger file that cannot be read (the message names the line and field)."""


def default_folder(paths: ProjectPaths) -> Path:
    return paths.data / "ledger"


# --------------------------------------------------------------------------- checks


def read_rows(body: bytes, name: str) -> list[dict]:
    """The rows of one ledger file; LedgerFileError naming the file, line and field."""
    try:
        text = gzip.decompress(body)
    except (OSError, EOFError) as error:
        raise LedgerFileError(f"{name}: not a gzip file ({error})") from None
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as error:
            raise LedgerFileError(f"{name}: line {number} is not JSON ({error})") from None
        if not isinstance(row, dict):
            raise LedgerFileError(f"{name}: line {number} is not a JSON object")
        missing = [f for f in REQUIRED_FIELDS if f not in row]
        if missing:
            raise LedgerFileError(f"{name}: line {number} lacks {missing}")
        p = row["p_keep"]
        if not isinstance(p, float | int) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
            raise LedgerFileError(f"{name}: line {number} has p_keep = {p!r}")
        if row["source"] not in contracts.LEDGER_SOURCES:
            raise LedgerFileError(f"{name}: line {number} has source = {row['source']!r}")
        rows.append(row)
    return rows


@dataclass
class SyncReport:
    out: Path
    copied: list[str] = field(default_factory=list)
    rows: int = 0
    corrupt: dict[str, str] = field(default_factory=dict)  # file -> what is wrong
    missing_days: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # keys outside the layout

    def describe(self) -> str:
        lines = [f"ledger: {len(self.copied)} files, {self.rows} rows copied into {self.out}"]
        for name, why in sorted(self.corrupt.items()):
            lines.append(f"  SKIPPED corrupt partition file {name}: {why}")
        for day in self.missing_days:
            lines.append(f"  MISSING partition date={day}: no ledger file (not 'no predictions')")
        for name in self.ignored:
            lines.append(f"  ignored {name}: not a ledger file name")
        return "\n".join(lines)

    def write(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / REPORT_FILE).write_text(
            json.dumps(
                {
                    "files": len(self.copied),
                    "rows": self.rows,
                    "corrupt": self.corrupt,
                    "missing_days": self.missing_days,
                    "ignored": self.ignored,
                },
                indent=1,
            )
            + "\n"
        )


def _missing_days(days: set[str]) -> list[str]:
    if not days:
        return []
    first, last = date.fromisoformat(min(days)), date.fromisoformat(max(days))
    every = (first + timedelta(days=i) for i in range((last - first).days + 1))
    return [d.isoformat() for d in every if d.isoformat() not in days]


def _sync(files: dict[str, Any], read: Any, out: Path) -> SyncReport:
    """Check and copy `files` (relative name -> handle, `read(handle)` gives bytes)."""
    report = SyncReport(out=out)
    days: set[str] = set()
    for name in sorted(files):
        match = FILE_NAME.match(name)
        if not match:
            report.ignored.append(name)
            continue
        days.add(match.group(1))
        body = read(files[name])
        try:
            rows = read_rows(body, name)
        except LedgerFileError as error:
            report.corrupt[name] = str(error).split(": ", 1)[1]
            log(f"ledger: skipped {error}")
            continue
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_bytes(body)
        os.replace(partial, target)
        report.copied.append(name)
        report.rows += len(rows)
    report.missing_days = _missing_days(days)
    report.write()
    return report


def sync_bucket(client: Any, bucket: str, prefix: str, out: Path) -> SyncReport:
    """Copy s3://bucket/prefix... into `out` (checked file by file)."""
    files = {}
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            files[item["Key"][len(prefix) :]] = item["Key"]
    log(f"ledger: {len(files)} files under s3://{bucket}/{prefix}")
    return _sync(files, lambda key: client.get_object(Bucket=bucket, Key=key)["Body"].read(), out)


def sync_folder(source: Path, out: Path) -> SyncReport:
    """Copy a local ledger folder into `out` (checked file by file)."""
    source, out = source.resolve(), out.resolve()
    files = {
        p.relative_to(source).as_posix(): p
        for p in source.rglob("*")
        if p.is_file() and p.name != REPORT_FILE
    }
    if source == out:
        raise UserError(f"--from {source} is the destination itself")
    return _sync(files, Path.read_bytes, out)


@locked("ledger build")
def build_ledger_models(paths: ProjectPaths) -> None:
    """dbt build of the ledger's models (tag ledger: prediction_outcomes and its
    aggregates) and their tests."""
    from apy_runway.warehouse.dbt import run_dbt

    run_dbt(paths, "build", select="tag:ledger", quiet=True)
