"""2,000 mutated model specs (hypothesis, derandomized): random fields of the
spec replaced, removed or retyped, and arrays of the .npz changed in value,
dtype or shape, removed or added. Each goes the Lambda's way from bytes:
JSON parsed as the loader parses it, arrays read by read_npz, the portable
model loaded, then HTTP rows scored and answered, and an hour of features
scored with reasons, drift, ledger and documents encoded.

The oracle is the handler's own error mapping: a refusal must be one of
handler.SERVER_FAULTS (answered 503 model_unavailable); any other exception
would be a 500. A spec that loads must give probabilities in [0, 1] and
answers JSON can carry (tests/test_refusals.py runs the same refusals through
the real handler and S3; this test runs the mutations without S3, for speed).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math

import numpy as np
import orjson
import pytest
from fixtures.tiny_model import FEATURES, feature_file, tiny_reference, write_run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference import contracts, features, handler, service
from inference.model import artefact, portable
from inference.publication import score_hour_published
from inference.scoring import score_rows

HOUR = dt.datetime(2025, 6, 6, tzinfo=dt.UTC)
ROWS = [
    {"apy": 5.2, "tvl_usd": 1.2e6, "apy_rolling_7d_mean": 5.0, "apy_expanding_std": 0.8}
    | {"chain": "Ethereum", "project": "aave-v3"},
    dict.fromkeys(FEATURES),
]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A small valid spec with a drift reference (per-day quantiles in the
    arrays), its arrays, and an hour's features."""
    run_dir = tmp_path_factory.mktemp("fuzz") / "run"
    write_run(run_dir, drift_reference=tiny_reference(300, seed=3, days=5))
    spec = json.loads((run_dir / contracts.PORTABLE_SPEC_FILE).read_text())
    arrays = portable.read_arrays((run_dir / contracts.PORTABLE_ARRAYS_FILE).read_bytes())
    table = features.decode(feature_file(30))
    return Base(spec, {key: np.array(value) for key, value in arrays.items()}, table)


class Base:
    """The valid spec, its arrays (and the arrays as read back, reused while a
    mutation leaves them alone), the hour's features, the spec's paths."""

    def __init__(self, spec: dict, arrays: dict, table) -> None:
        self.spec, self.arrays, self.table = spec, arrays, table
        self.read_back = portable.read_arrays(artefact.npz_bytes(arrays))
        self.paths = paths(spec)[1:]


# --------------------------------------------------------------------------- mutations

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**18, max_value=10**30)
    | st.floats()
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)


def paths(value, prefix=()):
    """Every path to a value inside the JSON document (dict keys, list indices)."""
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out += paths(child, (*prefix, key))
    elif isinstance(value, list) and len(value) <= 12:
        for i, child in enumerate(value):
            out += paths(child, (*prefix, i))
    return out


def at(document, path):
    for step in path:
        document = document[step]
    return document


def mutate_field(draw, spec: dict, known: list) -> None:
    path = draw(st.sampled_from(known))
    try:
        parent, last = at(spec, path[:-1]), path[-1]
        _ = parent[last]  # an earlier mutation may have removed the path
    except (KeyError, IndexError, TypeError):
        return
    action = draw(st.sampled_from(["replace", "replace", "remove", "retype"]))
    if action == "remove" and isinstance(parent, dict):
        del parent[last]
    elif action == "retype":
        value = parent[last]
        parent[last] = draw(
            st.sampled_from(
                [str(value), [value], {"v": value}, None, -1, 0, 2**63, math.nan, math.inf, True]
            )
        )
    else:
        parent[last] = draw(json_values)


def mutate_array(draw, arrays: dict) -> None:
    key = draw(st.sampled_from(sorted(arrays)))
    array = arrays[key]
    action = draw(st.sampled_from(["values", "values", "dtype", "shape", "remove", "add", "empty"]))
    if action == "remove":
        del arrays[key]
    elif action == "add":
        arrays[f"extra_{key}"] = np.arange(3)
    elif action == "empty":
        arrays[key] = array[:0]
    elif action == "shape":
        arrays[key] = draw(
            st.sampled_from(
                [array.ravel(), array.ravel()[: max(1, array.size // 2)], np.tile(array, 2)]
            )
        )
    elif action == "dtype":
        target = draw(st.sampled_from(["int32", "float32", "U3", "bool"]))
        try:
            with np.errstate(invalid="ignore", over="ignore"):
                arrays[key] = array.astype(target)
        except ValueError:  # text that is no number
            arrays[key] = np.ones(array.shape, dtype=target)
    elif array.size and array.dtype.kind in "iuf":
        flat = array.astype(np.float64).ravel()
        where = draw(st.integers(min_value=0, max_value=flat.size - 1))
        flat[where] = draw(
            st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 5.0, 1e300, -(2**40), 2**40])
        )
        with np.errstate(invalid="ignore", over="ignore"):
            arrays[key] = flat.reshape(array.shape).astype(array.dtype)


@st.composite
def mutated(draw, base: Base):
    """(spec, arrays or None when the arrays were left alone)."""
    spec, arrays = json.loads(json.dumps(base.spec)), None
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        if draw(st.booleans()):
            mutate_field(draw, spec, base.paths)
        else:
            arrays = arrays if arrays is not None else dict(base.arrays)
            mutate_array(draw, arrays)
    return spec, arrays


# --------------------------------------------------------------------------- the Lambda's way


def serve(spec: dict, arrays: dict | None, base: Base) -> None:
    """What the handler does with the files (past their sha256 and HMAC, which
    an attacker who rewrites the chain passes): raises only what the handler
    answers 503 for, else answers."""
    table = base.table
    document = service._json(json.dumps(spec, allow_nan=True).encode(), "model_spec.json")
    read = base.read_back if arrays is None else portable.read_arrays(artefact.npz_bytes(arrays))
    model = portable.load(document, dict(read))
    answer = score_rows(model, ROWS)
    json.dumps(answer, allow_nan=False)  # what handler._response does
    assert all(0.0 <= p <= 1.0 for row in answer["predictions"] for p in row)
    hour = score_hour_published(model, table, HOUR, 48.0)
    orjson.dumps(hour.document)
    orjson.dumps(hour.monitoring)
    service.ledger_body(hour.ledger)
    keep = [r["p_keep"] for r in hour.document["predictions"] if r["p_keep"] is not None]
    assert all(0.0 <= p <= 1.0 for p in keep)


def test_the_unmutated_spec_is_served(base):
    serve(base.spec, base.arrays, base)


@settings(
    derandomize=True,
    deadline=None,
    max_examples=2000,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_no_mutated_spec_gets_a_500(base, data):
    spec, arrays = data.draw(mutated(base))
    with contextlib.suppress(*handler.SERVER_FAULTS):
        serve(spec, arrays, base)
