"""The append-only raw store under data/raw/ and its quarantine: landing a
validated unit (one file per landed unit and UTC day, never rewritten), the
superseded rows, the manifest (written last: the commit point), compaction of
completed days, and the clean-up of an interrupted ingest on open.

Imports: DuckDB, the standard library, apy_runway/foundation and inference/
(floor 4, landing). Per (pool, UTC hour) the most recently landed row wins, and
a landed row is never dropped silently: a replaced one moves to the quarantine
(`superseded`), so rows in = rows staged + rows quarantined holds per file.

The files, the landing order, the accounting and crash safety:
docs/data.md#the-raw-store.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from apy_runway.foundation.console import UserError, log
from apy_runway.foundation.lock import writer_lock
from apy_runway.foundation.paths import ProjectPaths, exact_path
from inference.contracts import (
    RAW_COMPACT_MAX_FILES,
    RAW_COMPACT_SMALL_SHARE,
    RAW_CONTRACT,
    RAW_LANDING_ORDER_COLUMN,
    RAW_PARTITION_COLUMN,
)

PARTITION_PREFIX = f"{RAW_PARTITION_COLUMN}="
_LANDED = re.compile(r"^(\d{8})\.parquet$")
_COMPACTED = re.compile(r"^c(\d{8})\.parquet$")
_QUARANTINED = re.compile(r"^(\d{8})(-superseded)?\.parquet$")
SUPERSEDED_COLUMNS = (
    f"{RAW_PARTITION_COLUMN} date, pool varchar, snapshot_hour timestamptz, "
    f"{RAW_LANDING_ORDER_COLUMN} bigint, superseded_by bigint"
)
# The raw files' schema: the raw contract + the landing order (the UTC day is
# the folder, a hive partition).
STORED_COLUMNS = (*(name for name, _ in RAW_CONTRACT), RAW_LANDING_ORDER_COLUMN)


def file_id(order: int) -> str:
    return f"{order:08d}"


def sql_str(value: str | Path) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def sql_list(paths: list[Path]) -> str:
    """A list literal of files for read_parquet: each the file itself, never a
    pattern (foundation.paths.exact_path)."""
    return "[" + ", ".join(sql_str(exact_path(p)) for p in paths) + "]"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomically(path: Path, data: str | bytes) -> None:
    """Write text or bytes to `path` (its folder created) through a fsynced
    temporary file renamed over it: a reader sees the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w" if isinstance(data, str) else "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass
class LandedFile:
    """One manifest line."""

    landing_order: int
    name: str  # relative to the project home when inside it, else absolute
    kind: str  # csv | parquet | chart | pools
    size: int
    sha256: str
    mtime_ns: int
    landed_at: str
    rows_in: int = 0
    rows_staged: int = 0
    rows_quarantined: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    raw_file: str | None = None  # the landing id naming its raw files
    snapshot_date_min: str | None = None  # UTC days of its staged rows
    snapshot_date_max: str | None = None
    replaces: int | None = None  # landing order of the earlier version
    # landed | refused (no row to stage: nothing of it was appended, and it is
    # not counted in the store's totals; the same file is refused again when
    # ingested again)
    status: str = "landed"

    @property
    def is_landed(self) -> bool:
        return self.status == "landed"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> LandedFile:
        fields = {f.name for f in dataclasses.fields(cls)}
        data = json.loads(line)
        return cls(**{k: v for k, v in data.items() if k in fields})

    def supersede(self, rows: int) -> None:
        """`rows` of its staged rows lost to a later landed file."""
        self.rows_staged -= rows
        self.rows_quarantined += rows
        self.by_reason["superseded"] = self.by_reason.get("superseded", 0) + rows


def manifest_name(paths: ProjectPaths, path: Path) -> str:
    """How the manifest names a file: relative to the home when inside it, so a
    moved home still recognises its landed files."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(paths.home))
    except ValueError:
        return str(path)


@dataclass
class Totals:
    files: int
    rows_in: int
    rows_staged: int
    rows_quarantined: int
    by_reason: dict[str, int]


def read_manifest(paths: ProjectPaths) -> list[LandedFile]:
    """The manifest's entries (no recovery: for readers such as `build`)."""
    if not paths.manifest.exists():
        return []
    entries = []
    for number, line in enumerate(paths.manifest.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entries.append(LandedFile.from_json(line))
        except (json.JSONDecodeError, TypeError) as error:
            raise UserError(
                f"{paths.manifest}: line {number} is not a manifest entry ({error})"
            ) from None
    return entries


def has_rows(paths: ProjectPaths) -> bool:
    """Whether the raw store holds at least one file of rows."""
    return paths.raw_store.is_dir() and next(paths.raw_store.glob("*/*.parquet"), None) is not None


class RawStore:
    """The manifest in memory plus the operations on the files it describes."""

    def __init__(self, paths: ProjectPaths, entries: list[LandedFile]):
        self.paths = paths
        self.entries: dict[int, LandedFile] = {e.landing_order: e for e in entries}

    # ------------------------------------------------------------------ open

    @classmethod
    def open(cls, paths: ProjectPaths, con: duckdb.DuckDBPyConnection) -> RawStore:
        """Load the manifest, create an empty store if there is none, and
        remove what an interrupted ingest or compaction left behind (only
        under the writer lock: never another writer's part in flight)."""
        paths.raw_store.mkdir(parents=True, exist_ok=True)
        paths.quarantine_store.mkdir(parents=True, exist_ok=True)
        store = cls(paths, read_manifest(paths))
        with writer_lock(paths.writer_lock, "the raw store's recovery"):
            if not paths.superseded_rows.exists():
                store.write_superseded(con, "select * from superseded_rows where false")
            store.recover(con)
        return store

    @property
    def committed(self) -> int:
        """The highest landing order the manifest records (0: empty store)."""
        return max(self.entries, default=0)

    def partitions(self) -> list[Path]:
        if not self.paths.raw_store.exists():
            return []
        return sorted(
            p
            for p in self.paths.raw_store.iterdir()
            if p.is_dir() and p.name.startswith(PARTITION_PREFIX)
        )

    @staticmethod
    def partition_date(partition: Path) -> date:
        return date.fromisoformat(partition.name[len(PARTITION_PREFIX) :])

    @staticmethod
    def data_files(partition: Path) -> list[tuple[int, bool, Path]]:
        """(landing id, is compacted, path) of a partition's raw files."""
        found = []
        for path in partition.iterdir():
            landed, compacted = _LANDED.match(path.name), _COMPACTED.match(path.name)
            if landed or compacted:
                found.append((int((landed or compacted).group(1)), bool(compacted), path))
        return sorted(found)

    def raw_files(self) -> list[Path]:
        return [path for part in self.partitions() for _, _, path in self.data_files(part)]

    def recover(self, con: duckdb.DuckDBPyConnection) -> None:
        committed = self.committed
        removed = 0
        for part in self.partitions():
            for path in part.iterdir():
                if path.name.endswith(".tmp"):
                    path.unlink()
                    removed += 1
            files = self.data_files(part)
            compacted = [order for order, is_compacted, _ in files if is_compacted]
            newest_compaction = max(compacted, default=None)
            for order, is_compacted, path in files:
                orphan = order > committed
                # a compaction's inputs (and older compactions) are left-overs
                # once the compacted file is in place
                left_over = (
                    newest_compaction is not None
                    and order <= newest_compaction
                    and not (is_compacted and order == newest_compaction)
                )
                if orphan or left_over:
                    path.unlink()
                    removed += 1
            if not any(part.iterdir()):
                part.rmdir()
        for path in self.paths.quarantine_store.iterdir():
            match = _QUARANTINED.match(path.name)
            if path.name.endswith(".tmp") or (match and int(match.group(1)) > committed):
                path.unlink()
                removed += 1
        stale = con.execute(
            f"select count(*) from read_parquet({sql_str(self.paths.superseded_rows)}) "
            f"where superseded_by > {committed}"
        ).fetchone()[0]
        if stale:
            self.write_superseded(
                con,
                f"select * from read_parquet({sql_str(self.paths.superseded_rows)}) "
                f"where superseded_by <= {committed}",
            )
        if removed or stale:
            log(
                f"raw store: removed {removed} file(s) and {stale} superseded entries left by "
                "an interrupted ingest or compaction"
            )

    # ------------------------------------------------------------------ what to land

    def latest_by_name(self) -> dict[str, LandedFile]:
        latest: dict[str, LandedFile] = {}
        for entry in self.entries.values():
            if entry.is_landed:
                latest[entry.name] = entry
        return latest

    def changed_files(self, files: list[Path]) -> list[tuple[Path, dict]]:
        """The files to land, with their facts (size, mtime, sha256, replaces):
        never seen, or seen with another sha256. A file whose size and mtime
        equal the manifest's is not hashed again."""
        latest = self.latest_by_name()
        todo = []
        for path in files:
            stat = path.stat()
            name = manifest_name(self.paths, path)
            known = latest.get(name)
            if known and known.size == stat.st_size and known.mtime_ns == stat.st_mtime_ns:
                continue
            digest = sha256_of(path)
            if known and known.sha256 == digest:
                known.mtime_ns = stat.st_mtime_ns  # touched, not changed
                continue
            todo.append(
                (
                    path,
                    {
                        "name": name,
                        "size": stat.st_size,
                        "mtime_ns": stat.st_mtime_ns,
                        "sha256": digest,
                        "replaces": known.landing_order if known else None,
                    },
                )
            )
        return todo

    # ------------------------------------------------------------------ landing a unit

    def stored_files_in(self, days: list[str]) -> list[Path]:
        files = []
        for day in days:
            part = self.paths.raw_store / f"{PARTITION_PREFIX}{day}"
            if part.is_dir():
                files += [path for _, _, path in self.data_files(part)]
        return files

    def write_superseded(self, con: duckdb.DuckDBPyConnection, select_sql: str) -> None:
        """Replace the superseded list with `select_sql` (its columns, in order)."""
        con.execute(f"create or replace temp table superseded_rows ({SUPERSEDED_COLUMNS})")
        con.execute(f"insert into superseded_rows {select_sql}")
        tmp = self.paths.superseded_rows.with_name(f".{self.paths.superseded_rows.name}.tmp")
        con.execute(
            f"copy (select * from superseded_rows order by all) to {sql_str(tmp)} (format parquet)"
        )
        os.replace(tmp, self.paths.superseded_rows)

    def commit_unit(
        self,
        con: duckdb.DuckDBPyConnection,
        entries: list[LandedFile],
        staged_dir: Path,
        quarantine_files: dict[str, Path],
        losers_by_file: dict[int, int],
        has_losers: bool,
    ) -> None:
        """Move a validated unit into the store, then commit the manifest.

        staged_dir holds <snapshot_date=...>/ folders with one parquet file
        each (the unit's staged rows); quarantine_files maps a target name to a
        written parquet file; losers_by_file counts, per earlier landing order,
        the rows this unit superseded (the `losers` table holds them)."""
        unit_id = file_id(max(e.landing_order for e in entries))
        for part in sorted(staged_dir.iterdir()) if staged_dir.exists() else []:
            parts = sorted(part.glob("*.parquet"))
            if not parts:
                continue
            target = self.paths.raw_store / part.name
            target.mkdir(parents=True, exist_ok=True)
            if len(parts) == 1:
                os.replace(parts[0], target / f"{unit_id}.parquet")
            else:  # DuckDB split a big day: merge, keeping one file per unit and day
                merged = target / f"{unit_id}.parquet.tmp"
                con.execute(
                    f"copy (select * from read_parquet({sql_list(parts)})) to "
                    f"{sql_str(merged)} (format parquet, compression zstd)"
                )
                os.replace(merged, target / f"{unit_id}.parquet")
        for name, path in quarantine_files.items():
            os.replace(path, self.paths.quarantine_store / name)
        if has_losers:
            superseded_by = max(e.landing_order for e in entries)
            self.write_superseded(
                con,
                f"select * from read_parquet({sql_str(self.paths.superseded_rows)}) "
                f"union all select {RAW_PARTITION_COLUMN}, pool, snapshot_hour, "
                f"{RAW_LANDING_ORDER_COLUMN}, {superseded_by} from losers",
            )
        for entry in entries:
            self.entries[entry.landing_order] = entry
        for order, rows in losers_by_file.items():
            self.entries[order].supersede(rows)
        self.save()

    def save(self) -> None:
        write_atomically(
            self.paths.manifest,
            "".join(entry.to_json() + "\n" for entry in sorted(self.entries.values(), key=_order)),
        )

    # ------------------------------------------------------------------ reading

    def totals(self, orders: set[int] | None = None) -> Totals:
        chosen = [
            e
            for e in self.entries.values()
            if e.is_landed and (orders is None or e.landing_order in orders)
        ]
        by_reason: dict[str, int] = {}
        for entry in chosen:
            for reason, count in entry.by_reason.items():
                by_reason[reason] = by_reason.get(reason, 0) + count
        return Totals(
            files=len(chosen),
            rows_in=sum(e.rows_in for e in chosen),
            rows_staged=sum(e.rows_staged for e in chosen),
            rows_quarantined=sum(e.rows_quarantined for e in chosen),
            by_reason=by_reason,
        )

    def earliest_date_since(self, landing_order: int) -> str | None:
        """The earliest UTC day of the rows landed after `landing_order`: where
        an incremental build must start (None: nothing new)."""
        days = [
            e.snapshot_date_min
            for e in self.entries.values()
            if e.landing_order > landing_order and e.snapshot_date_min
        ]
        return min(days, default=None)

    def write_changed_pools(self, landing_order: int, target: Path) -> int:
        """Write (pool_id, from_date) to `target` (parquet): each pool with rows
        landed after `landing_order` and the earliest UTC day among them (where
        an incremental build rebuilds that pool from). Returns the pool count."""
        since = self.earliest_date_since(landing_order)
        files = [
            path
            for part in self.partitions()
            if since is not None and self.partition_date(part) >= date.fromisoformat(since)
            for order, _, path in self.data_files(part)
            if order > landing_order
        ]
        tmp = target.with_name(f".{target.name}.tmp")
        con = duckdb.connect()
        try:
            rows = (
                f"select pool as pool_id, min({RAW_PARTITION_COLUMN}) as from_date "
                f"from read_parquet({sql_list(files)}, hive_partitioning = true, "
                f"hive_types_autocast = true) "
                f"where {RAW_LANDING_ORDER_COLUMN} > {int(landing_order)} group by pool"
                if files
                else "select ''::varchar as pool_id, date '2000-01-01' as from_date where false"
            )
            con.execute(f"copy ({rows} order by pool_id) to {sql_str(tmp)} (format parquet)")
            (count,) = con.execute(f"select count(*) from read_parquet({sql_str(tmp)})").fetchone()
        finally:
            con.close()
        os.replace(tmp, target)
        return count

    # ------------------------------------------------------------------ compaction

    @staticmethod
    def row_counts(con: duckdb.DuckDBPyConnection, files: list[Path]) -> dict[str, int]:
        """Each parquet file's row count (by its path as given), from the footers."""
        if not files:
            return {}
        return dict(
            con.execute(
                f"select file_name, num_rows from parquet_file_metadata({sql_list(files)})"
            ).fetchall()
        )

    @staticmethod
    def compaction_due(files: list[tuple[int, bool, Path]], rows: dict[str, int]) -> bool:
        """Whether a completed day's files are worth rewriting as one: the rows
        of its smaller files make RAW_COMPACT_SMALL_SHARE of its largest's, or
        it holds RAW_COMPACT_MAX_FILES files (inference/contracts.py). `rows`:
        row_counts of its files."""
        if len(files) < 2:
            return False
        if len(files) >= RAW_COMPACT_MAX_FILES:
            return True
        counts = sorted(rows[str(path)] for _, _, path in files)
        return sum(counts[:-1]) >= RAW_COMPACT_SMALL_SHARE * counts[-1]

    def compact(self, con: duckdb.DuckDBPyConnection, before: date) -> list[str]:
        """Compact every day before `before` whose files are due
        (compaction_due) into one file of its winning rows (named after its
        highest landing id). The manifest's accounting does not change: staged
        rows stay staged (in another file), superseded rows are already listed
        in the quarantine. Returns the compacted days."""
        compacted = []
        superseded = sql_str(self.paths.superseded_rows)
        days = [
            (part, files)
            for part in self.partitions()
            if self.partition_date(part) < before and len(files := self.data_files(part)) > 1
        ]
        rows = self.row_counts(con, [path for _, files in days for _, _, path in files])
        for part, files in days:
            if not self.compaction_due(files, rows):
                continue
            newest = max(order for order, _, _ in files)
            tmp = part / f"c{file_id(newest)}.parquet.tmp"
            columns = ", ".join(f'stored."{c}"' for c in STORED_COLUMNS)
            con.execute(f"""
                copy (
                    select {columns}
                    from read_parquet({sql_list([p for _, _, p in files])}) as stored
                    anti join read_parquet({superseded}) as superseded
                        on stored.pool = superseded.pool
                        and date_trunc('hour', stored."timestamp") = superseded.snapshot_hour
                        and stored.{RAW_LANDING_ORDER_COLUMN}
                            = superseded.{RAW_LANDING_ORDER_COLUMN}
                    order by stored.pool, stored."timestamp"
                ) to {sql_str(tmp)} (format parquet, compression zstd)""")
            os.replace(tmp, part / f"c{file_id(newest)}.parquet")
            for _, _, path in files:
                path.unlink()
            compacted.append(part.name[len(PARTITION_PREFIX) :])
        if compacted:
            days = ", ".join(f"date '{day}'" for day in compacted)
            self.write_superseded(
                con,
                f"select * from read_parquet({superseded}) "
                f"where {RAW_PARTITION_COLUMN} not in ({days})",
            )
        return compacted


def _order(entry: LandedFile) -> int:
    return entry.landing_order


def replace_store(paths: ProjectPaths) -> Path | None:
    """`ingest --replace`: move the raw store and its quarantine aside (under
    data/replaced/<UTC time>/) and forget what the builds took in."""
    moved = [p for p in (paths.raw, paths.quarantine) if p.exists() and any(p.iterdir())]
    if not moved:
        return None
    folder = paths.data / "replaced" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    folder.mkdir(parents=True)
    for path in moved:
        shutil.move(str(path), str(folder / path.name))
    paths.build_state.unlink(missing_ok=True)
    paths.ensure()
    log(f"ingest --replace: moved the old raw store and quarantine to {folder}")
    return folder
