#!/usr/bin/env bash
# Build the inference Lambda layer without Docker: numpy and orjson alone, from
# inference/requirements.lock (sha256 of their manylinux wheels for x86_64 and
# aarch64), installed with pip --require-hashes --no-deps for the target Python and
# architecture into python/. Prunes tests/caches/docs/type stubs, strips shared
# objects (not those under *.libs: stripping those breaks numpy's imports),
# byte-compiles, zips, prints the sizes and fails if the unzipped layer passes
# Lambda's 250 MB.
#
# Usage: ./createlayer.sh [PYTHON_VERSION] [options]
#   PYTHON_VERSION         e.g. 3.12; must match serverless.yml's provider.runtime,
#                          the one place the runtime is set (default: read from there)
#   --metadata FILE        a training run's metadata.json (or model_spec.json): refuse
#                          it unless its numpy version is the lock's (with --sklearn:
#                          pin numpy/scipy/scikit-learn/joblib to its versions). Every
#                          version read must be a plain version (digits and dots)
#   --sklearn              build the scikit-learn layer instead (benchmarks/sklearn-layer.txt,
#                          no hashes): the benchmark's baseline, never deployed
#   --out-dir DIR          where python/ and layer.zip go (default: this folder)
#   --no-compile           ship no .pyc files. By default, when the Python running pip
#                          is PYTHON_VERSION, the pruned layer is byte-compiled afresh
#                          (unchecked-hash .pyc): /opt is read-only on Lambda, so without
#                          them every cold start compiles the imports again. Also
#                          byte-compiles inference/ (checked-hash .pyc, shipped in the
#                          function package: /var/task is read-only too)
#   --upload s3://B/KEY    upload layer.zip there afterwards (boto3; AWS_ENDPOINT_URL honoured)
# Environment: PYTHON (interpreter running pip, default python3).
# boto3 is not shipped: the Lambda runtime has it.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"
LIMIT_BYTES=$((250 * 1024 * 1024))

die() { echo "createlayer.sh: error: $*" >&2; exit 1; }

# The one runtime setting: provider.runtime / provider.architecture in serverless.yml.
RUNTIME_LINE="$(grep -E '^  runtime: python[0-9]+\.[0-9]+' "$HERE/serverless.yml" | head -n1 || true)"
[[ -n "$RUNTIME_LINE" ]] || die "no 'runtime: pythonX.Y' under provider in serverless.yml"
RUNTIME_VERSION="${RUNTIME_LINE##*python}"
RUNTIME_VERSION="${RUNTIME_VERSION%%[!0-9.]*}"
ARCH_LINE="$(grep -E '^  architecture: ' "$HERE/serverless.yml" | head -n1 || true)"
ARCH="${ARCH_LINE##*: }"
ARCH="${ARCH:-x86_64}"

VERSION=""
METADATA=""
OUT_DIR="$HERE"
UPLOAD=""
COMPILE=auto
SKLEARN=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --metadata) METADATA="${2:?--metadata needs a file}"; shift 2 ;;
        --out-dir) OUT_DIR="${2:?--out-dir needs a folder}"; shift 2 ;;
        --upload) UPLOAD="${2:?--upload needs s3://bucket/key}"; shift 2 ;;
        --no-compile) COMPILE=0; shift ;;
        --sklearn) SKLEARN=1; shift ;;
        -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
        -*) die "unknown option $1" ;;
        *) [[ -z "$VERSION" ]] || die "one PYTHON_VERSION only"; VERSION="$1"; shift ;;
    esac
done
VERSION="${VERSION:-$RUNTIME_VERSION}"
[[ "$VERSION" =~ ^3\.[0-9]+$ ]] || die "PYTHON_VERSION must look like 3.12, got '$VERSION'"
[[ "$VERSION" == "$RUNTIME_VERSION" ]] \
    || die "PYTHON_VERSION $VERSION differs from serverless.yml's python$RUNTIME_VERSION; change the runtime there (one place)"
case "$ARCH" in
    x86_64) PLATFORM_ARCH=x86_64 ;;
    arm64) PLATFORM_ARCH=aarch64 ;;
    *) die "unsupported architecture '$ARCH' in serverless.yml" ;;
esac
if [[ -n "$UPLOAD" && "$UPLOAD" != s3://*/* ]]; then
    die "--upload needs s3://bucket/key, got '$UPLOAD'"
fi

mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
LAYER="$OUT_DIR/python"
ZIP="$OUT_DIR/layer.zip"
REQUIREMENTS="$(mktemp)"
trap 'rm -f "$REQUIREMENTS"' EXIT

# The requirements pip gets: the hash-locked numpy (default) or the baseline's pins.
# Versions read from --metadata must be plain (digits and dots): anything else
# (e.g. "1.9.1\n--extra-index-url ...") would reach pip's requirements file.
"$PYTHON" - "$HERE/inference/requirements.lock" "$HERE/benchmarks/sklearn-layer.txt" \
    "$METADATA" "$REQUIREMENTS" "$SKLEARN" <<'PY'
import json, re, sys
lock, baseline, metadata, target, sklearn = sys.argv[1:6]
PLAIN = re.compile(r"[0-9]+(\.[0-9]+)*")
def fail(message):
    sys.exit(f"createlayer.sh: error: {message}")
def pinned(path):
    """name -> version of the `name==version` lines (continuations skipped)."""
    pins = {}
    for line in open(path):
        line = line.strip()
        if not line or line.startswith(("#", "--")):
            continue
        name, sep, version = line.rstrip("\\ ").partition("==")
        if not sep or not PLAIN.fullmatch(version.strip()):
            fail(f"{path}: {line!r} is not a plain name==version pin")
        pins[name.strip().lower()] = version.strip()
    return pins
versions = {}
if metadata:
    try:
        versions = json.load(open(metadata)).get("library_versions") or {}
    except (OSError, ValueError) as error:
        fail(f"cannot read {metadata}: {error}")
    for name, value in versions.items():
        if name in ("numpy", "scipy", "scikit-learn", "joblib") and (
            not isinstance(value, str) or not PLAIN.fullmatch(value)
        ):
            fail(f"{metadata}: library_versions[{name!r}] = {value!r} is not a plain version")
if sklearn == "1":
    pins = pinned(baseline)
    for name in ("numpy", "scipy", "scikit-learn", "joblib"):
        if metadata:
            if not versions.get(name):
                fail(f"{metadata} has no library_versions[{name!r}]")
            pins[name] = versions[name]
    open(target, "w").write("".join(f"{n}=={v}\n" for n, v in pins.items()))
else:
    locked = pinned(lock)
    if "numpy" not in locked or set(locked) - {"numpy", "orjson"}:
        fail(f"{lock} must pin numpy (and orjson) only, pins {sorted(locked)}")
    if metadata and versions.get("numpy") and versions["numpy"] != locked["numpy"]:
        fail(
            f"{metadata} was trained with numpy {versions['numpy']}, the layer's lock pins "
            f"{locked['numpy']}: update inference/requirements.lock (version and hashes) or retrain"
        )
    open(target, "w").write(open(lock).read())
PY
if [[ "$SKLEARN" == 1 ]]; then
    PIP_MODE=()
    echo "createlayer.sh: python$VERSION $ARCH, scikit-learn baseline layer, pins: $(tr '\n' ' ' < "$REQUIREMENTS")" >&2
else
    PIP_MODE=(--require-hashes --no-deps)
    echo "createlayer.sh: python$VERSION $ARCH, layer from inference/requirements.lock, pins: $(grep -E '^[a-z]' "$REQUIREMENTS" | tr -d '\\' | tr '\n' ' ')" >&2
fi

rm -rf "$LAYER" "$ZIP"
"$PYTHON" -m pip install --quiet --no-compile --disable-pip-version-check \
    "${PIP_MODE[@]}" \
    --target "$LAYER" \
    --platform "manylinux_2_28_$PLATFORM_ARCH" --platform "manylinux2014_$PLATFORM_ARCH" \
    --implementation cp --python-version "$VERSION" --only-binary=:all: \
    -r "$REQUIREMENTS" 2> >(grep -v "is neither a file nor a directory" >&2)

# Prune what a running Lambda never reads. dist-info stays: it records what was
# installed (the tests check the locked version).
find "$LAYER" -depth -type d \( -name tests -o -name test -o -name __pycache__ \
    -o -name doc -o -name docs -o -name benchmarks \) -exec rm -rf {} +
find "$LAYER" -type f \( -name '*.pyc' -o -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' \
    -o -name '*.c' -o -name '*.cpp' -o -name '*.h' -o -name '*.hpp' -o -name '*.f90' \
    -o -name '*.pyi' -o -name 'RECORD' \) -delete
rm -rf "$LAYER/bin" "$LAYER"/numpy/_core/include "$LAYER"/numpy/f2py/src "$LAYER"/numpy/_pyinstaller
if [[ "$SKLEARN" == 0 ]]; then
    rm -rf "$LAYER"/numpy/f2py  # Fortran wrapping: scipy's import needs it, ours never does
fi

# Strip shared objects, but never those vendored under <package>.libs.
if command -v strip >/dev/null; then
    find "$LAYER" -type f -name '*.so*' -not -path '*.libs/*' -exec strip --strip-unneeded {} +
else
    echo "createlayer.sh: warning: no strip on PATH; shared objects left unstripped" >&2
fi

if [[ "$COMPILE" == auto ]]; then
    HAVE="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    if [[ "$HAVE" == "$VERSION" ]]; then
        "$PYTHON" -m compileall -q -j 0 --invalidation-mode unchecked-hash "$LAYER" >/dev/null
        if [[ "$SKLEARN" == 0 && -d "$HERE/inference" ]]; then
            # the function package's .pyc (serverless.yml ships them): checked-hash, so
            # an edited source is never shadowed by its old bytecode, here or on Lambda
            "$PYTHON" -m compileall -q -j 0 --invalidation-mode checked-hash "$HERE/inference" \
                >/dev/null
        fi
    else
        echo "createlayer.sh: warning: $PYTHON is Python $HAVE, not $VERSION: no .pyc shipped" \
            "(slower cold starts); run with PYTHON=python$VERSION to include them" >&2
    fi
fi

UNZIPPED=$(du -sb "$LAYER" | cut -f1)
(cd "$OUT_DIR" && if command -v zip >/dev/null; then
    zip -q -r -9 -X "$ZIP" python
else
    "$PYTHON" -m zipfile -c "$ZIP" python
fi)
ZIPPED=$(stat -c %s "$ZIP")
echo "layer: $ZIP"
echo "unzipped: $UNZIPPED bytes ($((UNZIPPED / 1024 / 1024)) MiB)"
echo "zipped: $ZIPPED bytes ($((ZIPPED / 1024 / 1024)) MiB)"
if (( UNZIPPED > LIMIT_BYTES )); then
    die "unzipped layer is $UNZIPPED bytes, over Lambda's 250 MB ($LIMIT_BYTES bytes) for function + layers"
fi

if [[ -n "$UPLOAD" ]]; then
    "$PYTHON" - "$ZIP" "$UPLOAD" <<'PY'
import sys
import boto3
path, url = sys.argv[1:3]
bucket, _, key = url[len("s3://"):].partition("/")
boto3.client("s3").upload_file(path, bucket, key)
print(f"uploaded: {url}")
PY
fi
