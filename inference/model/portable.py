"""The portable model: a JSON spec and an .npz of plain numeric arrays, validated
together and evaluated with numpy alone (imputers, encoders, scaler, trees,
coefficients, calibration, contributions).

Imports: numpy, the standard library and inference/ (floor 1); no scikit-learn,
no pickle, so the Lambda needs neither. Training writes the pair
(models_py/export.py) and checks it against scikit-learn's own predict_proba;
the Lambda loads the arrays only after their sizes and sha256 are checked
(inference/model/artefact.py).

The format (spec fields, preprocessing blocks, estimators, calibration, clip):
docs/serving.md#the-portable-models-format.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inference import contracts, monitoring
from inference.model.artefact import ArchiveError, ModelIntegrityError, ModelSpec, read_npz

FLOAT32_MAX = float(np.finfo(np.float32).max)
# a tree node's class fractions add up to 1 within this (scikit-learn's sums
# of float64 fractions are off by a few ulps at most)
FRACTION_SUM_TOLERANCE = 1e-9
# float64 values of per-tree path tables kept between calls (64 MB)
PATH_TABLES_MAX_VALUES = 8_000_000
# rows whose contributions are summed over all trees at a time (their sums
# stay in cache: 512 x 66 features is 270 kB)
CONTRIBUTION_ROWS = 512
# the tree walk checks every this many levels whether to drop finished rows
COMPACT_EVERY = 4

NUMERIC_STEP_KINDS = ("arcsinh", "standardize")
ENCODINGS = ("one_hot", "ordinal")
ESTIMATOR_KINDS = ("forest", "linear")
CALIBRATION_KINDS = ("isotonic", "sigmoid")


def _fail(part: str, problem: str) -> ModelIntegrityError:
    return ModelIntegrityError(f"portable model: {part}: {problem}")


class _Arrays:
    """The .npz's arrays, each fetched once with its expected dtype kind and
    dimensions checked; unknown and unused keys are reported."""

    def __init__(self, arrays: dict[str, np.ndarray], file_name: str) -> None:
        self._arrays = arrays
        self._used: set[str] = set()
        self.file_name = file_name

    def get(self, part: str, key: Any, kinds: str, ndim: int) -> np.ndarray:
        if not isinstance(key, str) or key not in self._arrays:
            raise _fail(part, f"names array {key!r}, which {self.file_name} does not hold")
        array = self._arrays[key]
        if array.dtype.kind not in kinds or array.ndim != ndim:
            raise _fail(
                part,
                f"array {key!r} in {self.file_name} is {array.dtype} with {array.ndim} "
                f"dimension(s), expected kind {kinds!r} with {ndim}",
            )
        self._used.add(key)
        return array

    def unused(self) -> list[str]:
        return sorted(set(self._arrays) - self._used)


def read_arrays(data: bytes, file_name: str = contracts.PORTABLE_ARRAYS_FILE) -> dict:
    """The .npz's arrays, each checked against its bytes before it exists
    (artefact.read_npz: no objects, no shape larger than the file)."""
    try:
        return read_npz(data)
    except ArchiveError as error:
        raise ModelIntegrityError(f"{file_name} is not a readable .npz: {error}") from None


def _names(part: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(part, f"expected a list of names, got {value!r}")
    return tuple(value)


# --------------------------------------------------------------------------- preprocessing


@dataclass(frozen=True)
class NumericBlock:
    features: tuple[str, ...]
    positions: np.ndarray  # columns of the model's numeric input matrix
    kept: np.ndarray
    fill: np.ndarray
    indicators: np.ndarray
    steps: tuple[tuple[str, np.ndarray | None, np.ndarray | None], ...]

    @property
    def width(self) -> int:
        return len(self.kept) + len(self.indicators)

    def sources(self) -> list[str]:
        return [self.features[k] for k in self.kept] + [self.features[k] for k in self.indicators]

    def transform(self, numeric: np.ndarray) -> np.ndarray:
        """(n, numeric features) -> the block's output, feature-major (width, n)."""
        x = numeric.T[self.positions]
        missing = np.isnan(x)
        out = np.where(missing[self.kept], self.fill[:, None], x[self.kept])
        if len(self.indicators):
            out = np.vstack([out, missing[self.indicators].astype(np.float64)])
        for kind, mean, scale in self.steps:
            if kind == "arcsinh":
                out = np.arcsinh(out)
            else:  # standardize, as StandardScaler.transform: subtract, then divide
                out = out - mean[:, None]
                out /= scale[:, None]
        return out

    @classmethod
    def from_spec(
        cls, part: str, block: dict, arrays: _Arrays, numeric_features: tuple[str, ...]
    ) -> NumericBlock:
        features = _names(f"{part}.features", block.get("features"))
        unknown = [f for f in features if f not in numeric_features]
        if unknown:
            raise _fail(f"{part}.features", f"{unknown} are not numeric features of the model")
        kept = arrays.get(f"{part}.kept_key", block.get("kept_key"), "iu", 1).astype(np.intp)
        fill = arrays.get(f"{part}.fill_key", block.get("fill_key"), "f", 1).astype(np.float64)
        indicators = arrays.get(
            f"{part}.indicators_key", block.get("indicators_key"), "iu", 1
        ).astype(np.intp)
        for name, index in (("kept", kept), ("indicators", indicators)):
            if len(index) and (index.min() < 0 or index.max() >= len(features)):
                raise _fail(
                    f"{part}.{name}_key",
                    f"indices must lie in 0..{len(features) - 1}, got {index.min()}..{index.max()}",
                )
        if len(fill) != len(kept):
            raise _fail(
                f"{part}.fill_key", f"{len(fill)} fill values for {len(kept)} kept features"
            )
        if not np.all(np.isfinite(fill)):
            raise _fail(f"{part}.fill_key", "fill values must be finite")
        width = len(kept) + len(indicators)
        steps = []
        raw_steps = block.get("steps") or []
        if not isinstance(raw_steps, list):
            raise _fail(f"{part}.steps", f"expected a list, got {raw_steps!r}")
        for i, step in enumerate(raw_steps):
            where = f"{part}.steps[{i}]"
            kind = step.get("kind") if isinstance(step, dict) else None
            if kind not in NUMERIC_STEP_KINDS:
                raise _fail(
                    f"{where}.kind", f"{kind!r} is unknown (known: {list(NUMERIC_STEP_KINDS)})"
                )
            if kind == "arcsinh":
                steps.append((kind, None, None))
                continue
            mean = arrays.get(f"{where}.mean_key", step.get("mean_key"), "f", 1)
            scale = arrays.get(f"{where}.scale_key", step.get("scale_key"), "f", 1)
            if len(mean) != width or len(scale) != width:
                raise _fail(
                    where,
                    f"mean has {len(mean)} and scale {len(scale)} values for a block "
                    f"{width} columns wide",
                )
            if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(scale)) and np.all(scale)):
                raise _fail(where, "mean and scale must be finite and the scale non-zero")
            steps.append((kind, mean.astype(np.float64), scale.astype(np.float64)))
        positions = np.array([numeric_features.index(f) for f in features], dtype=np.intp)
        return cls(features, positions, kept, fill, indicators, tuple(steps))


@dataclass(frozen=True)
class CategoricalColumn:
    feature: str
    vocabulary: tuple[str, ...]
    index: dict[str, int]
    table: np.ndarray  # (len(vocabulary) + 1, width); the last row is "unseen"
    missing_code: int  # the row a missing value takes

    @property
    def unseen_code(self) -> int:
        return len(self.vocabulary)

    def codes(self, values: list) -> np.ndarray:
        """Strings (None = missing) -> rows of the table."""
        index, unseen, missing = self.index, len(self.vocabulary), self.missing_code
        return np.fromiter(
            (missing if v is None else index.get(v, unseen) for v in values),
            dtype=np.intp,
            count=len(values),
        )

    def recode(self, vocabulary: list[str], codes: np.ndarray) -> np.ndarray:
        """Codes into another vocabulary (-1 = missing) -> rows of the table."""
        index, unseen = self.index, len(self.vocabulary)
        mapping = np.fromiter(
            (index.get(v, unseen) for v in vocabulary), dtype=np.intp, count=len(vocabulary)
        )
        mapping = np.append(mapping, self.missing_code)  # code -1 indexes the last entry
        return mapping[codes]


@dataclass(frozen=True)
class CategoricalBlock:
    encoding: str
    columns: tuple[CategoricalColumn, ...]

    @property
    def width(self) -> int:
        return sum(c.table.shape[1] for c in self.columns)

    def sources(self) -> list[str]:
        return [c.feature for c in self.columns for _ in range(c.table.shape[1])]

    def transform(self, codes: dict[str, np.ndarray]) -> np.ndarray:
        """Table rows by code -> the block's output, feature-major (width, n)."""
        return np.vstack(
            [np.take(column.table.T, codes[column.feature], axis=1) for column in self.columns]
        )

    @classmethod
    def from_spec(
        cls, part: str, block: dict, arrays: _Arrays, categorical_features: tuple[str, ...]
    ) -> CategoricalBlock:
        encoding = block.get("encoding")
        if encoding not in ENCODINGS:
            raise _fail(f"{part}.encoding", f"{encoding!r} is unknown (known: {list(ENCODINGS)})")
        missing = block.get("missing")
        if missing is not None and not isinstance(missing, str):
            raise _fail(f"{part}.missing", f"expected a string or null, got {missing!r}")
        raw_columns = block.get("columns")
        if not isinstance(raw_columns, list) or not raw_columns:
            raise _fail(f"{part}.columns", "expected a non-empty list")
        columns = []
        for i, column in enumerate(raw_columns):
            where = f"{part}.columns[{i}]"
            feature = column.get("feature") if isinstance(column, dict) else None
            if feature not in categorical_features:
                raise _fail(
                    f"{where}.feature", f"{feature!r} is not a categorical feature of the model"
                )
            vocabulary = tuple(
                arrays.get(f"{where}.vocabulary_key", column.get("vocabulary_key"), "U", 1).tolist()
            )
            table = arrays.get(f"{where}.table_key", column.get("table_key"), "f", 2)
            if table.shape[0] != len(vocabulary) + 1 or table.shape[1] < 1:
                raise _fail(
                    f"{where}.table_key",
                    f"table has shape {table.shape}, expected ({len(vocabulary) + 1}, >= 1): "
                    f"one row per vocabulary entry plus the unseen row",
                )
            if len(set(vocabulary)) != len(vocabulary):
                raise _fail(f"{where}.vocabulary_key", "the vocabulary repeats a value")
            if not np.all(np.isfinite(table)):
                raise _fail(f"{where}.table_key", "table values must be finite")
            index = {value: k for k, value in enumerate(vocabulary)}
            missing_code = index.get(missing, len(vocabulary)) if missing is not None else None
            columns.append(
                CategoricalColumn(
                    feature,
                    vocabulary,
                    index,
                    table.astype(np.float64),
                    len(vocabulary) if missing_code is None else missing_code,
                )
            )
        return cls(encoding, tuple(columns))


# --------------------------------------------------------------------------- estimators


def _float32_floor(threshold: np.ndarray) -> np.ndarray:
    """The largest float32 <= each float64 threshold: for a float32 x,
    ``x <= t64`` exactly when ``x <= floor32(t64)``, so the walk compares in
    float32 and still takes scikit-learn's float32-vs-float64 branch."""
    with np.errstate(over="ignore"):  # beyond float32: inf, stepped back to its max below
        t32 = threshold.astype(np.float32)
    over = t32.astype(np.float64) > threshold
    t32[over] = np.nextafter(t32[over], np.float32(-np.inf))
    return t32


def _check_tree_shape(
    part: str,
    left: np.ndarray,
    right: np.ndarray,
    feature: np.ndarray,
    roots: np.ndarray,
    width: int,
) -> None:
    """Every node a leaf (both children -1) or a split on one of the `width`
    columns with two children inside its own tree and after it (so no walk
    can cycle), and every node but a root the child of exactly one node (a
    shared child would make the walk and the path tables grow exponentially)."""
    n = len(left)
    leaf = left < 0
    if np.any(leaf != (right < 0)):
        raise _fail(part, "a node has exactly one child")
    ends = np.append(roots[1:], n)
    tree_end = ends[np.searchsorted(roots, np.arange(n), side="right") - 1]
    index = np.arange(n)
    inner = ~leaf
    for name, children in (("left", left), ("right", right)):
        bad = inner & ((children <= index) | (children >= tree_end))
        if bad.any():
            raise _fail(
                f"{part}.{name}_key",
                f"node {int(np.argmax(bad))}'s child lies outside its tree or before it",
            )
    if np.any(inner & ((feature < 0) | (feature >= width))):
        raise _fail(
            f"{part}.feature_key",
            f"a split uses a column outside the preprocessing's {width} columns",
        )
    children = np.concatenate([left[inner], right[inner]])
    if len(np.unique(children)) != len(children) or np.isin(roots, children).any():
        raise _fail(part, "a node is the child of two nodes, or a root is a child")


def _check_node_values(part: str, thresholds: np.ndarray, value: np.ndarray) -> None:
    """Finite split thresholds; class fractions in [0, 1] adding up to 1 at
    every node (a leaf's are the probabilities served)."""
    if not np.all(np.isfinite(thresholds)):
        raise _fail(f"{part}.threshold_key", "split thresholds must be finite")
    if not (np.all(value >= 0.0) and np.all(value <= 1.0)):  # NaN fails both
        raise _fail(f"{part}.value_key", "class fractions must lie in [0, 1]")
    if np.any(np.abs(value.sum(axis=1) - 1.0) > FRACTION_SUM_TOLERANCE):
        raise _fail(f"{part}.value_key", "each node's class fractions must add up to 1")


@dataclass(frozen=True)
class Forest:
    """All trees' nodes, laid out for a vectorised walk: node k's two children
    sit at 2k (left) and 2k + 1 (right) of `children` (as doubled indices), a
    leaf's children are itself, so a row at a leaf stays there while the
    others walk on (each tree is walked its depth times; rows already at a
    leaf are dropped when they are half of those still walked)."""

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    value: np.ndarray  # (nodes, 2): class fractions, as scikit-learn stores them
    roots: np.ndarray
    keep_column: int
    depths: tuple[int, ...]  # per tree
    children: np.ndarray  # (2 * nodes,) doubled child index by [2k + went_right]
    feature2: np.ndarray  # (2 * nodes,) split column, by doubled index
    threshold2: np.ndarray  # (2 * nodes,) float32 floor of the threshold
    missing_right2: np.ndarray  # (2 * nodes,) NaN goes right
    leaf2: np.ndarray  # (2 * nodes,) the node is a leaf

    @property
    def n_trees(self) -> int:
        return len(self.roots)

    def bias(self) -> float:
        """Mean root p_keep: what the Saabas contributions start from."""
        return float(np.mean(self.value[self.roots, self.keep_column]))

    def run(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, 2) mean of the trees' leaf values, and (trees, n) the leaf each
        row reaches in each tree (node index).

        X is cast to float32 as scikit-learn's trees do. It is walked
        transposed (one contiguous row per column): rows that share a node
        read one column in order.
        """
        with np.errstate(over="ignore"):  # as scikit-learn's cast: beyond float32 is inf
            columns = np.ascontiguousarray(X.T, dtype=np.float32)
        n = columns.shape[1]
        flat = columns.ravel()
        has_nan = bool(np.isnan(flat).any())
        rows = np.arange(n, dtype=np.intp)
        offsets = self.feature2 * n
        children, threshold2, missing_right2 = self.children, self.threshold2, self.missing_right2
        proba = np.zeros((n, self.value.shape[1]), dtype=np.float64)
        leaves = np.empty((self.n_trees, n), dtype=np.intp)
        leaf2 = self.leaf2
        for t, (root, depth) in enumerate(zip(self.roots.tolist(), self.depths, strict=True)):
            node = np.full(n, 2 * root, dtype=np.intp)
            active, reached = rows, None
            for level in range(depth):
                at = offsets[node]
                at += active
                x = flat[at]
                went_right = x > threshold2[node]
                if has_nan:
                    went_right |= np.isnan(x) & missing_right2[node]
                node += went_right
                node = children[node]
                # deep trees: every few levels, drop the rows already at a leaf
                # once they are half of those still walked (cheap to check)
                if level % COMPACT_EVERY == COMPACT_EVERY - 1 and level < depth - COMPACT_EVERY:
                    walking = ~leaf2[node]
                    if 2 * np.count_nonzero(walking) < len(node):
                        if reached is None:
                            reached = node.copy()
                        else:
                            reached[active] = node
                        active, node = active[walking], node[walking]
            if reached is not None:
                reached[active] = node
                node = reached
            node >>= 1
            leaves[t] = node
            proba += self.value[node]
        proba /= self.n_trees
        return proba, leaves

    def path_contributions(self, tree: int, sources: np.ndarray, n_features: int) -> np.ndarray:
        """(nodes of the tree, n_features): for every node of the tree, the
        Saabas contributions to p_keep of the path from the root to it, by
        source feature (one-hot and indicator columns folded), so a row's
        contributions in the tree are the table's row at its leaf."""
        start = int(self.roots[tree])
        end = int(self.roots[tree + 1]) if tree + 1 < self.n_trees else len(self.left)
        left, right = self.left[start:end] - start, self.right[start:end] - start
        source = np.asarray(sources, dtype=np.intp)[self.feature[start:end]]
        keep = self.value[start:end, self.keep_column]
        table = np.zeros((end - start, n_features), dtype=np.float64)
        frontier = np.zeros(1, dtype=np.intp)
        while len(frontier):
            frontier = frontier[left[frontier] >= 0]
            for child in (left[frontier], right[frontier]):
                table[child] = table[frontier]
                table[child, source[frontier]] += keep[child] - keep[frontier]
            frontier = np.concatenate([left[frontier], right[frontier]])
        return table

    @classmethod
    def from_spec(cls, part: str, spec: dict, arrays: _Arrays, width: int) -> Forest:
        def get(name: str, kinds: str, ndim: int) -> np.ndarray:
            return arrays.get(f"{part}.{name}_key", spec.get(f"{name}_key"), kinds, ndim)

        left = get("left", "i", 1).astype(np.intp)
        right = get("right", "i", 1).astype(np.intp)
        feature = get("feature", "i", 1).astype(np.intp)
        threshold = get("threshold", "f", 1).astype(np.float64)
        missing_left = get("missing_left", "bui", 1).astype(bool)
        value = get("value", "f", 2).astype(np.float64)
        roots = get("roots", "i", 1).astype(np.intp)
        n = len(left)
        if not n or any(len(a) != n for a in (right, feature, threshold, missing_left, value)):
            raise _fail(
                part,
                f"node arrays disagree in length: left {n}, right {len(right)}, feature "
                f"{len(feature)}, threshold {len(threshold)}, missing_left "
                f"{len(missing_left)}, value {len(value)}",
            )
        if value.shape[1] != 2:
            raise _fail(f"{part}.value_key", f"expected 2 classes per node, got {value.shape[1]}")
        if not len(roots) or roots[0] != 0 or np.any(np.diff(roots) <= 0) or roots[-1] >= n:
            raise _fail(f"{part}.roots_key", "roots must start at 0 and increase within the nodes")
        if spec.get("n_trees") != len(roots):
            raise _fail(
                f"{part}.n_trees", f"says {spec.get('n_trees')!r}, the arrays hold {len(roots)}"
            )
        leaf = left < 0
        _check_tree_shape(part, left, right, feature, roots, width)
        _check_node_values(part, threshold[~leaf], value)
        ends = np.append(roots[1:], n)
        keep_column = spec.get("keep_column")
        if keep_column not in (0, 1):
            raise _fail(f"{part}.keep_column", f"must be 0 or 1, got {keep_column!r}")
        # depth of every node, level by level (children always follow their parent)
        depth = np.zeros(n, dtype=np.intp)
        frontier = roots
        level = 0
        while len(frontier):
            frontier = frontier[~leaf[frontier]]
            frontier = np.concatenate([left[frontier], right[frontier]])
            level += 1
            depth[frontier] = level
        depths = tuple(int(depth[a:b].max()) for a, b in zip(roots, ends, strict=True))
        doubled = 2 * np.arange(n, dtype=np.intp)
        children = np.empty(2 * n, dtype=np.intp)
        children[0::2] = np.where(leaf, doubled, 2 * left)
        children[1::2] = np.where(leaf, doubled, 2 * right)
        return cls(
            left,
            right,
            feature,
            threshold,
            missing_left,
            value,
            roots,
            keep_column,
            depths,
            children,
            np.repeat(np.where(leaf, 0, feature), 2),
            np.repeat(np.where(leaf, np.float32(0), _float32_floor(threshold)), 2),
            np.repeat(~missing_left & ~leaf, 2),
            np.repeat(leaf, 2),
        )


@dataclass(frozen=True)
class Linear:
    coef: np.ndarray
    intercept: float

    def decision(self, X: np.ndarray) -> np.ndarray:
        return (X @ self.coef[:, None] + self.intercept).reshape(-1)

    @classmethod
    def from_spec(cls, part: str, spec: dict, arrays: _Arrays, width: int) -> Linear:
        coef = arrays.get(f"{part}.coef_key", spec.get("coef_key"), "f", 1).astype(np.float64)
        if len(coef) != width:
            raise _fail(
                f"{part}.coef_key",
                f"{len(coef)} coefficients for the preprocessing's {width} columns",
            )
        intercept = spec.get("intercept")
        if not isinstance(intercept, (int, float)) or not math.isfinite(intercept):
            raise _fail(f"{part}.intercept", f"expected a finite number, got {intercept!r}")
        if not np.all(np.isfinite(coef)):
            raise _fail(f"{part}.coef_key", "coefficients must be finite")
        return cls(coef, float(intercept))


def expit(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp(-x) = inf for x < -709: expit is 0, as it should be
        return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class Calibration:
    kind: str
    input: str  # "p_keep" (a forest's) or "decision" (a linear model's)
    x: np.ndarray | None = None
    y: np.ndarray | None = None
    a: float = 0.0
    b: float = 0.0

    def apply(self, score: np.ndarray) -> np.ndarray:
        if self.kind == "sigmoid":
            return expit(-(self.a * score + self.b))
        x, y = self.x, self.y
        if len(x) == 1:
            return np.repeat(y, len(score))
        # IsotonicRegression.predict: clip to the fitted range, then scipy's
        # interp1d linear interpolation (de Boor's form)
        t = np.clip(score, x[0], x[-1])
        hi = np.clip(np.searchsorted(x, t), 1, len(x) - 1)
        lo = hi - 1
        x_lo, x_hi, y_lo, y_hi = x[lo], x[hi], y[lo], y[hi]
        return (t - x_lo) / (x_hi - x_lo) * y_hi + (x_hi - t) / (x_hi - x_lo) * y_lo

    @classmethod
    def from_spec(cls, part: str, spec: Any, arrays: _Arrays, estimator: str) -> Calibration:
        if not isinstance(spec, dict):
            raise _fail(part, f"expected an object or null, got {spec!r}")
        kind, source = spec.get("kind"), spec.get("input")
        if kind not in CALIBRATION_KINDS:
            raise _fail(f"{part}.kind", f"{kind!r} is unknown (known: {list(CALIBRATION_KINDS)})")
        expected = "p_keep" if estimator == "forest" else "decision"
        if source != expected:
            raise _fail(
                f"{part}.input", f"a {estimator} is calibrated on {expected}, not {source!r}"
            )
        if kind == "sigmoid":
            a, b = spec.get("a"), spec.get("b")
            if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (a, b)):
                raise _fail(part, f"sigmoid needs finite a and b, got {a!r}, {b!r}")
            return cls(kind, source, a=float(a), b=float(b))
        x = arrays.get(f"{part}.x_key", spec.get("x_key"), "f", 1).astype(np.float64)
        y = arrays.get(f"{part}.y_key", spec.get("y_key"), "f", 1).astype(np.float64)
        if len(x) != len(y) or not len(x):
            raise _fail(part, f"isotonic x has {len(x)} values and y {len(y)}")
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))) or np.any(np.diff(x) <= 0):
            raise _fail(f"{part}.x_key", "isotonic x must be finite and strictly increasing")
        if not (np.all(y >= 0.0) and np.all(y <= 1.0)):
            raise _fail(f"{part}.y_key", "isotonic outputs must be probabilities, in [0, 1]")
        return cls(kind, source, x=x, y=y)


# --------------------------------------------------------------------------- the model


@dataclass
class Scores:
    """What one evaluation gives: probabilities (n, 2) = [p_down, p_keep], the
    uncalibrated score the contributions explain, and the contributions
    (n, features) with their bias (None when not asked for)."""

    proba: np.ndarray
    raw: np.ndarray
    contributions: np.ndarray | None = None
    bias: float | None = None


@dataclass(frozen=True)
class PortableModel:
    spec: ModelSpec
    document: dict
    numeric_features: tuple[str, ...]  # the numeric input matrix's columns, in order
    blocks: tuple[NumericBlock | CategoricalBlock, ...]
    width: int
    sources: np.ndarray  # output column -> index into spec.features
    estimator: Forest | Linear
    calibration: Calibration | None
    clip: tuple[float, float] | None
    categorical: dict[str, CategoricalColumn] = field(default_factory=dict)
    # per-tree path tables, kept while they fit in PATH_TABLES_MAX_VALUES (a
    # prototype-sized forest's would not: the rest are rebuilt per call)
    path_tables: dict = field(default_factory=dict, repr=False)
    # the spec's `monitoring` block, the drift reference's per-day quantiles
    # back in place (None without one)
    monitoring: dict | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        return "forest" if isinstance(self.estimator, Forest) else "linear"

    def explanation(self) -> dict[str, Any]:
        """What the contributions are, for the output documents."""
        if self.kind == "forest":
            method, units = "tree path contributions (Saabas), averaged over the trees", "p_keep"
            bias = self.estimator.bias()
        else:
            method, units = "coefficient x transformed value", "log-odds of p_keep"
            bias = self.estimator.intercept
        return {
            "method": method,
            "units": units,
            "bias": round(bias, 6),
            "explains": "the uncalibrated score" if self.calibration else "the score",
            "calibration": self.calibration.kind if self.calibration else None,
            "one_hot_and_missing_indicators": "folded into their source feature",
            "top": contracts.REASONS_PER_PREDICTION,
        }

    def encode(self, numeric: np.ndarray, codes: dict[str, np.ndarray]) -> np.ndarray:
        """The preprocessing's (n, width) output: what the fitted ColumnTransformer
        gives. Built feature-major (the returned array is the transpose of a
        C-contiguous (width, n) one), which is how the trees read it."""
        parts = [
            block.transform(numeric if isinstance(block, NumericBlock) else codes)
            for block in self.blocks
        ]
        return (parts[0] if len(parts) == 1 else np.vstack(parts)).T

    def _path_table(self, tree: int, n_features: int) -> np.ndarray | None:
        """Tree `tree`'s path table, kept while PATH_TABLES_MAX_VALUES allows;
        None for a table beyond that budget (built per call instead)."""
        tables, forest = self.path_tables, self.estimator
        if tree not in tables:
            end = int(forest.roots[tree + 1]) if tree + 1 < forest.n_trees else len(forest.left)
            size = (end - int(forest.roots[tree])) * n_features
            if tables.get("values", 0) + size > PATH_TABLES_MAX_VALUES:
                return None
            tables[tree] = forest.path_contributions(tree, self.sources, n_features)
            tables["values"] = tables.get("values", 0) + size
        return tables[tree]

    def forest_contributions(self, leaves: np.ndarray) -> np.ndarray:
        """(n, features) Saabas contributions averaged over the trees, from the
        leaf each row reached in each tree: each tree's path table gathered at
        the rows' leaves and added, tree by tree. With every table kept, rows
        go CONTRIBUTION_ROWS at a time through all the trees (their sums stay
        in cache); else tree by tree, each table built once."""
        forest = self.estimator
        n, n_features = leaves.shape[1], len(self.spec.features)
        local = leaves - forest.roots[:, None]
        tables = [self._path_table(tree, n_features) for tree in range(forest.n_trees)]
        total = np.zeros((n, n_features), dtype=np.float64)
        step = CONTRIBUTION_ROWS if all(t is not None for t in tables) else max(n, 1)
        gathered = np.empty((min(step, n), n_features), dtype=np.float64)
        for start in range(0, n, step):
            rows = slice(start, start + step)
            part = total[rows]
            into = gathered[: len(part)]
            for tree, table in enumerate(tables):
                if table is None:
                    table = forest.path_contributions(tree, self.sources, n_features)
                np.take(table, local[tree, rows], axis=0, out=into)
                part += into
        total /= forest.n_trees
        return total

    def fold(self, by_column: np.ndarray) -> np.ndarray:
        """(width, n) contributions by preprocessed column -> (n, features):
        one-hot and missing-indicator columns added into their source feature."""
        folded = np.zeros((len(self.spec.features), by_column.shape[1]), dtype=np.float64)
        for column, source in enumerate(self.sources.tolist()):
            folded[source] += by_column[column]
        return folded.T

    def score(self, X: np.ndarray, explain: bool = False) -> Scores:
        if isinstance(self.estimator, Forest):
            mean, leaves = self.estimator.run(X)
            contributions = self.forest_contributions(leaves) if explain else None
            keep = self.estimator.keep_column
            raw = mean[:, keep]
            proba = np.empty_like(mean)
            proba[:, 1], proba[:, 0] = mean[:, keep], mean[:, 1 - keep]
            bias = self.estimator.bias() if explain else None
        else:
            raw = self.estimator.decision(X)
            p_keep = expit(raw)
            proba = np.column_stack([1.0 - p_keep, p_keep])
            contributions = bias = None
            if explain:
                contributions = self.fold((X * self.estimator.coef).T)
                bias = self.estimator.intercept
        if self.calibration is not None:
            p_keep = self.calibration.apply(raw)
            proba = np.column_stack([1.0 - p_keep, p_keep])
            proba[(proba > 1.0) & (proba <= 1.0 + 1e-5)] = 1.0
        if self.clip is not None:
            p_keep = np.clip(proba[:, 1], *self.clip)
            proba = np.column_stack([1.0 - p_keep, p_keep])
        if not (np.all(proba >= 0.0) and np.all(proba <= 1.0)):  # NaN fails both
            # the loader's checks make this unreachable; no value is served if not
            raise ModelIntegrityError("the model gave a probability outside [0, 1]")
        return Scores(proba, raw, contributions, bias)

    def out_of_range(self, numeric: np.ndarray) -> np.ndarray:
        """(n, numeric features) True where a value is beyond float32's range or
        +-inf (NaN is missing, which the model imputes)."""
        with np.errstate(invalid="ignore"):
            return ~(np.abs(numeric) <= FLOAT32_MAX) & ~np.isnan(numeric)


def _monitoring(document: dict, store: _Arrays) -> dict | None:
    """The spec's `monitoring` block with the drift reference's per-day
    quantiles put back from the arrays file (each named by its key, a
    matrix of one row of contracts.DRIFT_QUANTILE_LEVELS per listed day)."""
    block = document.get("monitoring")
    if block is None:
        return None
    if not isinstance(block, dict):
        raise _fail("monitoring", f"expected an object or null, got {type(block).__name__}")
    reference = block.get("reference")
    if not isinstance(reference, dict) or not isinstance(reference.get("features"), dict):
        raise _fail("monitoring.reference", "expected an object with a features object")
    features = {}
    for name, ref in reference["features"].items():
        daily = ref.get("daily") if isinstance(ref, dict) else None
        if isinstance(daily, dict) and isinstance(daily.get("quantiles"), str):
            part = f"monitoring.reference.features[{name!r}].daily"
            matrix = store.get(part, daily["quantiles"], "f", 2)
            days, rows = daily.get("days"), daily.get("rows")
            listed = len(days) if isinstance(days, list) else -1
            expected = (listed, contracts.DRIFT_QUANTILE_LEVELS)
            if (
                matrix.shape != expected
                or not isinstance(rows, list)
                or len(rows) != len(days)
                or not all(isinstance(n, int) and n > 0 for n in rows)
            ):
                raise _fail(
                    part,
                    f"array {daily['quantiles']!r} is {matrix.shape}, expected one row of "
                    f"{contracts.DRIFT_QUANTILE_LEVELS} per listed day and a positive row "
                    "count per day",
                )
            ref = {**ref, "daily": {**daily, "quantiles": matrix}}
        features[name] = ref
    block = {**block, "reference": {**reference, "features": features}}
    problem = monitoring.reference_problem(block)
    if problem:
        raise _fail("monitoring", problem)
    return block


def _spec(document: Any) -> ModelSpec:
    if not isinstance(document, dict):
        raise _fail("spec", "is not a JSON object")
    if document.get("format") != contracts.PORTABLE_SPEC_FORMAT:
        raise _fail(
            "format",
            f"{document.get('format')!r} is not {contracts.PORTABLE_SPEC_FORMAT!r}; "
            "retrain, or deploy the code that wrote it",
        )
    spec = ModelSpec.from_metadata(document)
    if document.get("classes") != [contracts.LABEL_DOWN, contracts.LABEL_KEEP]:
        raise _fail(
            "classes",
            f"expected [{contracts.LABEL_DOWN}, {contracts.LABEL_KEEP}], "
            f"got {document.get('classes')!r}",
        )
    return spec


def _blocks(
    document: dict, store: _Arrays, spec: ModelSpec
) -> tuple[list[NumericBlock | CategoricalBlock], int]:
    """The preprocessing's blocks and their total width."""
    numeric_features = tuple(f for f in spec.features if f in spec.numeric_features)
    categorical_features = tuple(f for f in spec.features if f in spec.categorical_features)
    preprocess = document.get("preprocess")
    if not isinstance(preprocess, dict) or not isinstance(preprocess.get("blocks"), list):
        raise _fail("preprocess", "expected an object with a list of blocks")
    blocks: list[NumericBlock | CategoricalBlock] = []
    for i, block in enumerate(preprocess["blocks"]):
        part = f"preprocess.blocks[{i}]"
        kind = block.get("kind") if isinstance(block, dict) else None
        if kind == "numeric":
            blocks.append(NumericBlock.from_spec(part, block, store, numeric_features))
        elif kind == "categorical":
            blocks.append(CategoricalBlock.from_spec(part, block, store, categorical_features))
        else:
            raise _fail(f"{part}.kind", f"{kind!r} is unknown (known: ['numeric', 'categorical'])")
    if not blocks:
        raise _fail("preprocess.blocks", "is empty")
    width = sum(block.width for block in blocks)
    if preprocess.get("width") != width:
        raise _fail(
            "preprocess.width", f"says {preprocess.get('width')!r}, the blocks give {width} columns"
        )
    return blocks, width


def _estimator(
    document: dict, store: _Arrays, width: int
) -> tuple[Forest | Linear, Calibration | None]:
    estimator_spec = document.get("estimator")
    kind = estimator_spec.get("kind") if isinstance(estimator_spec, dict) else None
    if kind == "forest":
        estimator: Forest | Linear = Forest.from_spec("estimator", estimator_spec, store, width)
    elif kind == "linear":
        estimator = Linear.from_spec("estimator", estimator_spec, store, width)
    else:
        raise _fail("estimator.kind", f"{kind!r} is unknown (known: {list(ESTIMATOR_KINDS)})")
    calibration = None
    if document.get("calibration") is not None:
        calibration = Calibration.from_spec("calibration", document["calibration"], store, kind)
    return estimator, calibration


def _clip(value: Any) -> tuple[float, float] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        or not 0.0 <= value[0] < value[1] <= 1.0
    ):
        raise _fail("clip", f"expected null or [low, high] with 0 <= low < high <= 1: {value!r}")
    return float(value[0]), float(value[1])


def load(document: dict, arrays: dict[str, np.ndarray]) -> PortableModel:
    """Validate the spec against the arrays and build the evaluator. Any
    disagreement (shapes, feature count, unknown kinds, values that cannot be
    probabilities) raises one ModelIntegrityError naming the part; a trial
    scoring (with reasons and drift) must then succeed."""
    spec = _spec(document)
    listed = document.get("arrays")
    file_name = listed.get("file") if isinstance(listed, dict) else None
    store = _Arrays(arrays, str(file_name or contracts.PORTABLE_ARRAYS_FILE))
    blocks, width = _blocks(document, store, spec)
    position = {name: j for j, name in enumerate(spec.features)}
    sources = np.array(
        [position[name] for block in blocks for name in block.sources()], dtype=np.intp
    )
    estimator, calibration = _estimator(document, store, width)
    clip = _clip(document.get("clip"))
    monitoring = _monitoring(document, store)
    unused = store.unused()
    if unused:
        raise _fail("arrays", f"{store.file_name} holds arrays the spec never names: {unused}")
    categorical = {
        column.feature: column
        for block in blocks
        if isinstance(block, CategoricalBlock)
        for column in block.columns
    }
    model = PortableModel(
        spec=spec,
        document=document,
        numeric_features=tuple(f for f in spec.features if f in spec.numeric_features),
        blocks=tuple(blocks),
        width=width,
        sources=sources,
        estimator=estimator,
        calibration=calibration,
        clip=clip,
        categorical=categorical,
        monitoring=monitoring,
    )
    _trial(model)
    return model


# what a spec's values can still raise in scoring or drift after the checks
# above: the trial turns it into the refusal at load, not a failed hourly run
TRIAL_ERRORS = (ArithmeticError, LookupError, TypeError, ValueError, AttributeError)


def _trial(model: PortableModel) -> None:
    """Score one row of missing values with its reasons, and compare it with
    the drift reference, as the hourly run does."""
    numeric = np.full((1, len(model.numeric_features)), np.nan)
    codes = {name: np.array([c.missing_code]) for name, c in model.categorical.items()}
    try:
        model.score(model.encode(numeric, codes), explain=True)
        model.explanation()
        if model.monitoring is not None:
            missing = np.array([-1], dtype=np.intp)
            monitoring.drift_columns(
                model.monitoring["reference"],
                model.numeric_features,
                numeric.T,
                dict.fromkeys(model.categorical, ((), missing)),
            )
            monitoring.important_features(model.monitoring.get("importance"))
    except ModelIntegrityError:
        raise
    except TRIAL_ERRORS as error:
        raise _fail("trial scoring", f"{type(error).__name__}: {error}") from error
