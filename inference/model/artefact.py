"""The model artefact as the Lambda receives it, checked before a byte of it is
parsed: metadata.json (the run's pointer, written last) gives the spec's
size, sha256 and, signed, its HMAC-SHA256; the spec gives the arrays' size
and sha256; the arrays are read by read_npz (each .npy header checked against
its bytes before anything is allocated, no pickles). ModelSpec holds the
serving facts, model_version among them; rollback.json (`promote --run`'s
mark, rollback_mark / rollback_problem) lets a version below the highest
served be served on purpose. model.joblib is never read here.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import math
import struct
import zipfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inference import contracts

# A signing key shorter than this is refused: HMAC-SHA256 with a short key
# is guessable.
MIN_SIGNING_KEY_BYTES = 16


class ModelIntegrityError(RuntimeError):
    """The model artefact is missing, does not match its metadata, or is malformed."""


def _number(value: object, field: str) -> float:
    """A finite JSON number (not a boolean), else ModelIntegrityError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ModelIntegrityError(f"model spec: {field} must be a finite number, got {value!r}")
    return float(value)


def json_scalar(value: object) -> bool:
    """A JSON scalar the output documents may repeat: no NaN or infinity, and
    no integer orjson cannot write (beyond 64 bits)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return -(2**63) <= value < 2**64
    return value is None or isinstance(value, (str, bool))


def _optional_objects(metadata: dict, names: tuple[str, ...]) -> list[dict | None]:
    """The spec's optional object fields (None when absent), refused when not objects."""
    values = [metadata.get(name) for name in names]
    for name, value in zip(names, values, strict=True):
        if value is not None and not isinstance(value, dict):
            raise ModelIntegrityError(f"model spec: {name} must be an object, got {value!r}")
    return values


@dataclass(frozen=True)
class ModelSpec:
    """The serving facts of a model (from its portable spec), validated once."""

    model_id: str
    features: tuple[str, ...]
    numeric_features: frozenset[str]
    categorical_features: frozenset[str]
    cutpoints: tuple[float, float]
    min_apy_exclusive: float
    min_observed_days: int
    label: dict = field(default_factory=dict)  # horizon, threshold, statistic answered
    # only increases from one trained spec to the next (0: a spec written before
    # versions); the Lambda refuses one below the highest it has served
    model_version: int = 0
    # where the training data came from (metadata.json's data_provenance: generated
    # with a seed, real files, collected hours); the served document repeats it
    data_provenance: dict | None = None
    # the confidence words in use ({"words", "reason"}: fewer than three when the
    # held-out block gave no three separating bins); the served document repeats it
    confidence: dict | None = None

    @property
    def levels(self) -> tuple[float, float] | None:
        """The confidence levels an hour's cut-points are taken at (None: the
        stored cut-points serve every hour)."""
        levels = (self.confidence or {}).get("levels")
        return None if levels is None else (float(levels[0]), float(levels[1]))

    def hour_cutpoints(self, shown: Any) -> tuple[float, float]:
        """The cut-points of one hour's (or request's) shown probabilities."""
        return contracts.hour_cutpoints(shown, self.levels, self.cutpoints)

    @classmethod
    def from_metadata(cls, metadata: dict) -> ModelSpec:
        if not isinstance(metadata, dict):
            raise ModelIntegrityError("model spec is not a JSON object")
        try:
            features = tuple(metadata["features"])
            numeric = frozenset(metadata["numeric_features"])
            categorical = frozenset(metadata["categorical_features"])
            cutpoints = tuple(float(x) for x in metadata["confidence_cutpoints"])
            model_id = str(metadata["model_id"])
        except (KeyError, TypeError, ValueError) as error:
            raise ModelIntegrityError(f"model spec is missing or malformed: {error!r}") from error
        if not features or not all(isinstance(f, str) for f in features):
            raise ModelIntegrityError("model spec lists no features (or a non-text one)")
        if len(set(features)) != len(features):
            raise ModelIntegrityError("model spec lists a feature twice")
        if set(features) != numeric | categorical or numeric & categorical:
            raise ModelIntegrityError(
                "model spec: features must be exactly numeric_features + categorical_features"
            )
        if len(cutpoints) != 2 or not (50.0 <= cutpoints[0] <= cutpoints[1] <= 100.0):
            raise ModelIntegrityError(
                f"model spec: confidence_cutpoints must be [q1, q2] within 50..100, "
                f"got {metadata.get('confidence_cutpoints')!r}"
            )
        eligibility = metadata.get("eligibility") or {}
        label = metadata.get("label") or {}
        if not isinstance(eligibility, dict) or not isinstance(label, dict):
            raise ModelIntegrityError("model spec: eligibility and label must be objects")
        min_days = _number(
            eligibility.get("min_observed_days", contracts.MIN_OBSERVED_DAYS),
            "eligibility.min_observed_days",
        )
        if not min_days.is_integer() or min_days < 0:
            raise ModelIntegrityError(
                f"model spec: eligibility.min_observed_days must be a whole number >= 0, "
                f"got {min_days!r}"
            )
        answered = {key: label[key] for key in contracts.ANSWER_LABEL_SETTINGS if key in label}
        if not all(json_scalar(value) for value in answered.values()):
            raise ModelIntegrityError(
                f"model spec: label settings must be JSON scalars, got {answered!r}"
            )
        version = metadata.get("model_version", 0)
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise ModelIntegrityError(
                f"model spec: model_version must be a whole number >= 0, got {version!r}"
            )
        provenance, confidence = _optional_objects(metadata, ("data_provenance", "confidence"))
        _check_levels((confidence or {}).get("levels"))
        return cls(
            model_id=model_id,
            features=features,
            numeric_features=numeric,
            categorical_features=categorical,
            cutpoints=(cutpoints[0], cutpoints[1]),
            min_apy_exclusive=_number(
                eligibility.get("min_apy_exclusive", contracts.MIN_APY_EXCLUSIVE),
                "eligibility.min_apy_exclusive",
            ),
            min_observed_days=int(min_days),
            label={key: answered[key] for key in label if key in answered},
            model_version=version,
            data_provenance=provenance,
            confidence=confidence,
        )


def _check_levels(levels: Any) -> None:
    """The spec's confidence levels: absent (null) or two ascending quantile
    levels within 0..1 (contracts.hour_cutpoints)."""
    if levels is None:
        return
    if (
        not isinstance(levels, list)
        or len(levels) != 2
        or not all(isinstance(q, (int, float)) and not isinstance(q, bool) for q in levels)
        or not (0.0 <= levels[0] <= levels[1] <= 1.0)
    ):
        raise ModelIntegrityError(
            f"model spec: confidence.levels must be null or [q1, q2] with 0 <= q1 <= q2 <= 1, "
            f"got {levels!r}"
        )


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An uncompressed .npz (what np.savez writes, np.load reads) with fixed
    timestamps and key order, so the same arrays give the same bytes and sha256."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w", force_zip64=True) as handle:
                np.lib.format.write_array(handle, np.asarray(arrays[key]), allow_pickle=False)
    return buffer.getvalue()


class ArchiveError(ValueError):
    """An .npz whose members are not what their headers declare."""


# a .npy header is a few hundred bytes; numpy's own reader refuses over 10,000
NPY_HEADER_MAX_BYTES = 10_000
# the dtype kinds an archive may hold: numbers, booleans, text, dates
NPY_KINDS = "biufcUSMm"
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # zip's local file header (30 bytes)


def read_npz(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of an uncompressed .npz (what npz_bytes writes), each checked
    before anything is allocated for it: stored (no compression), a plain
    dtype (no objects, no records), and exactly the bytes its header declares
    (shape x item size) present in `data`. np.load allocates the declared
    shape first, so a small file could ask for gigabytes. The arrays are
    read-only views of `data`. Raises ArchiveError naming the member."""
    try:
        infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as error:
        raise ArchiveError(f"not a readable .npz: {error}") from None
    view = memoryview(data)
    arrays: dict[str, np.ndarray] = {}
    for info in infos:
        name = info.filename
        if not name.endswith(".npy") or name[:-4] in arrays:
            raise ArchiveError(f"member {name!r} is not one .npy array")
        if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
            raise ArchiveError(f"member {name!r} is compressed; arrays are stored plain")
        start = _member_start(data, info)
        if start + info.file_size > len(data):
            raise ArchiveError(
                f"member {name!r} declares {info.file_size} bytes past the end of the file"
            )
        arrays[name[:-4]] = _npy(view[start : start + info.file_size], name)
    return arrays


def _member_start(data: bytes, info: zipfile.ZipInfo) -> int:
    at = info.header_offset
    if at < 0 or at + _LOCAL_HEADER.size > len(data):
        raise ArchiveError(f"member {info.filename!r} starts outside the file")
    fields = _LOCAL_HEADER.unpack_from(data, at)
    if fields[0] != b"PK\x03\x04":
        raise ArchiveError(f"member {info.filename!r} has no local header")
    return at + _LOCAL_HEADER.size + fields[-2] + fields[-1]


def _npy(member: memoryview, name: str) -> np.ndarray:
    """One .npy member: its header read and checked against its bytes first."""
    head = io.BytesIO(bytes(member[: NPY_HEADER_MAX_BYTES + 16]))
    try:
        version = np.lib.format.read_magic(head)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(head)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(head)
        else:
            raise ValueError(f".npy version {version} is not 1.0 or 2.0")
    except (ValueError, TypeError, SyntaxError, EOFError, OverflowError) as error:
        raise ArchiveError(f"member {name!r} has no readable .npy header: {error}") from None
    if dtype.hasobject:
        raise ArchiveError(
            f"member {name!r} holds {dtype}: objects are pickles, never loaded "
            "(as np.load with allow_pickle=False)"
        )
    if dtype.names is not None or dtype.kind not in NPY_KINDS:
        raise ArchiveError(f"member {name!r} holds {dtype}, not plain numbers, text or dates")
    if not dtype.itemsize:
        raise ArchiveError(f"member {name!r} holds {dtype}, an empty type")
    count = math.prod(shape)
    offset = head.tell()
    declared = count * dtype.itemsize
    if declared != len(member) - offset:
        raise ArchiveError(
            f"member {name!r} declares shape {shape} of {dtype} ({declared:,} bytes) "
            f"but holds {len(member) - offset:,} bytes"
        )
    flat = np.frombuffer(member, dtype=dtype, count=count, offset=offset)
    return flat.reshape(shape, order="F" if fortran else "C")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hmac_hex(key: bytes, data: bytes) -> str:
    """HMAC-SHA256 of the spec's bytes: what training writes and the Lambda checks."""
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def check_signing_key(key: bytes, source: str) -> bytes:
    if len(key) < MIN_SIGNING_KEY_BYTES:
        raise ModelIntegrityError(
            f"the signing key from {source} is {len(key)} bytes; use at least "
            f"{MIN_SIGNING_KEY_BYTES} (e.g. `openssl rand -hex 32`)"
        )
    return key


def plain_file_name(value: object, field: str) -> str:
    """A file named by a document: a plain file name, never a path."""
    if (
        not isinstance(value, str)
        or not value
        or "/" in value
        or "\\" in value
        or value.startswith(".")
    ):
        raise ModelIntegrityError(f"{field} {value!r} is not a plain file name")
    return value


@dataclass(frozen=True)
class Pointer:
    """metadata.json's `portable` block: where the spec is and what it must be."""

    spec_file: str
    spec_sha256: str
    spec_size_bytes: int
    spec_hmac_sha256: str | None

    @classmethod
    def from_metadata(cls, metadata: object) -> Pointer:
        block = metadata.get("portable") if isinstance(metadata, dict) else None
        if not isinstance(block, dict):
            raise ModelIntegrityError(
                f"{contracts.MODEL_METADATA_FILE} has no `portable` block: the run was "
                "trained before the portable format; retrain it (apy-runway train)"
            )
        spec_file = plain_file_name(block.get("spec_file"), "metadata.json portable.spec_file")
        sha, size = block.get("spec_sha256"), block.get("spec_size_bytes")
        if not isinstance(sha, str) or len(sha) != 64:
            raise ModelIntegrityError(f"metadata.json portable.spec_sha256 is malformed: {sha!r}")
        if not isinstance(size, int) or size <= 0:
            raise ModelIntegrityError(
                f"metadata.json portable.spec_size_bytes is malformed: {size!r}"
            )
        signature = block.get("spec_hmac_sha256")
        if signature is not None and not isinstance(signature, str):
            raise ModelIntegrityError("metadata.json portable.spec_hmac_sha256 is not text")
        return cls(spec_file, sha, size, signature)


def verify_bytes(data: bytes, name: str, sha256: object, size: object, source: str) -> None:
    """Refuse bytes whose size or sha256 differ from what `source` says (before parsing)."""
    if not isinstance(sha256, str) or not sha256:
        raise ModelIntegrityError(f"{source} gives no sha256 for {name}: refusing to load it")
    if size is not None and size != len(data):
        raise ModelIntegrityError(
            f"{name} size mismatch: {source} says {size} bytes, got {len(data)}; "
            "refusing to load it"
        )
    actual = sha256_hex(data)
    if actual != sha256:
        raise ModelIntegrityError(
            f"{name} sha256 mismatch: {source} says {sha256}, the file is {actual}; "
            "refusing to load it"
        )


def verify_signature(data: bytes, pointer: Pointer, key: bytes | None) -> None:
    """With a signing key configured, the spec must carry a matching HMAC-SHA256."""
    if key is None:
        return
    if not pointer.spec_hmac_sha256:
        raise ModelIntegrityError(
            f"a signing key is configured but {pointer.spec_file} is unsigned "
            "(metadata.json portable.spec_hmac_sha256 is empty): refusing to load it; "
            "train with APY_RUNWAY_SIGNING_KEY set"
        )
    if not hmac.compare_digest(hmac_hex(key, data), pointer.spec_hmac_sha256):
        raise ModelIntegrityError(
            f"{pointer.spec_file} HMAC-SHA256 mismatch: the spec was not signed with the "
            "configured key (tampered, or signed with another key); refusing to load it"
        )


# --------------------------------------------------------------------------- rollback


def _mark_bytes(mark: dict) -> bytes:
    """The bytes a rollback mark's HMAC covers: every field but the HMAC, as
    sorted compact JSON."""
    fields = {k: v for k, v in mark.items() if k != "hmac_sha256"}
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def rollback_mark(
    spec_sha256: str,
    model_id: str,
    model_version: int,
    served_max: int,
    promoted_at: str,
    key: bytes | None,
) -> dict:
    """What `apy-runway promote --run` writes beside a model whose version is
    below the highest served (`served_max`): this spec, and no later one, may
    be served below it, while nothing above `served_max` has been served.
    HMAC-signed with the spec's key when there is one."""
    mark = {
        "format": contracts.ROLLBACK_FORMAT,
        "model_id": model_id,
        "model_version": model_version,
        "spec_sha256": spec_sha256,
        "served_model_version_max": served_max,
        "promoted_at": promoted_at,
    }
    mark["hmac_sha256"] = hmac_hex(key, _mark_bytes(mark)) if key else None
    return mark


def rollback_problem(
    mark: object, spec_sha256: str, model_version: int, served_max: int, key: bytes | None
) -> str | None:
    """Why `mark` (rollback.json, None when absent) does not allow serving the
    spec `spec_sha256` of `model_version` after `served_max` was served; None
    when it does. With a signing key the mark must carry its HMAC."""
    if mark is None:
        return f"there is no {contracts.ROLLBACK_FILE}"
    if not isinstance(mark, dict) or mark.get("format") != contracts.ROLLBACK_FORMAT:
        return f"{contracts.ROLLBACK_FILE} is not a rollback mark"
    if mark.get("spec_sha256") != spec_sha256 or mark.get("model_version") != model_version:
        return f"{contracts.ROLLBACK_FILE} marks another spec"
    marked_max = mark.get("served_model_version_max")
    if isinstance(marked_max, bool) or not isinstance(marked_max, int) or served_max > marked_max:
        return (
            f"{contracts.ROLLBACK_FILE} was written when {marked_max!r} was the highest served; "
            f"{served_max} has been served since"
        )
    if key is not None:
        signature = mark.get("hmac_sha256")
        if not isinstance(signature, str) or not hmac.compare_digest(
            hmac_hex(key, _mark_bytes(mark)), signature
        ):
            return f"{contracts.ROLLBACK_FILE} is not signed with the configured key"
    return None
