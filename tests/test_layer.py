"""createlayer.sh builds a numpy + orjson layer that holds everything the handler needs.

The layer is built for the local interpreter (the venv is Python 3.12 = the Lambda
runtime) from inference/requirements.lock (pip --require-hashes --no-deps) and cached
under build/layer-cache/<hash of createlayer.sh, the lock and serverless.yml>; a fresh
clone builds it once (~10 s, numpy's wheel from the package index). Then a clean
`python -I -S -B` process (no .pyc written, as on the read-only /opt) whose sys.path
holds only the stdlib, the layer, a copy of inference/ and a test-only boto3 folder
(boto3 is in the Lambda runtime, so the layer does not ship it) imports the handler
and scores events against the local moto S3 server, with unpickling made to raise.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata as importlib_metadata
from pathlib import Path

import pytest
from fixtures.tiny_model import EVENTS

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "build" / "layer-cache"
LAMBDA_LIMIT = 250 * 1024 * 1024
OUR_LIMIT = 50 * 1024 * 1024  # the goal for our layer (the scikit-learn one: 179 MiB)
LOCK = REPO / "inference" / "requirements.lock"


def locked() -> dict[str, str]:
    """name -> version of inference/requirements.lock."""
    return dict(
        line.split()[0].split("==")
        for line in LOCK.read_text().splitlines()
        if line[:1].isalpha() and "==" in line
    )


def locked_numpy() -> str:
    return locked()["numpy"]


def _digest(*paths: Path) -> str:
    h = hashlib.sha256(sys.version.encode())
    for path in paths:
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="module")
def built_layer() -> dict:
    key = _digest(
        REPO / "createlayer.sh", REPO / "inference" / "requirements.lock", REPO / "serverless.yml"
    )
    folder = CACHE / key
    report = folder / "build-output.txt"
    if not report.exists():
        staging = CACHE / f"{key}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        result = subprocess.run(
            [str(REPO / "createlayer.sh"), version, "--out-dir", str(staging)],
            env={**os.environ, "PYTHON": sys.executable},
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        (staging / "build-output.txt").write_text(result.stdout)
        for old in CACHE.iterdir():  # layers of earlier script/requirement versions
            if old.is_dir() and not old.name.startswith(("boto3-", key)):
                shutil.rmtree(old, ignore_errors=True)
        staging.rename(folder)
    output = report.read_text()
    sizes = {k: int(v) for k, v in re.findall(r"^(unzipped|zipped): (\d+) bytes", output, re.M)}
    return {
        "folder": folder,
        "python": folder / "python",
        "zip": folder / "layer.zip",
        "sizes": sizes,
    }


@pytest.fixture(scope="module")
def boto3_only(built_layer) -> Path:
    """boto3 and its dependencies alone (the Lambda runtime provides them)."""
    version = importlib_metadata.version("boto3")
    target = CACHE / f"boto3-{version}"
    if not (target / "boto3").is_dir():
        staging = CACHE / f"boto3-{version}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-compile",
                "--disable-pip-version-check",
                "--target",
                str(staging),
                f"boto3=={version}",
            ],
            check=True,
            capture_output=True,
            timeout=600,
        )
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    return target


def test_layer_is_numpy_alone_within_the_limits(built_layer):
    sizes = built_layer["sizes"]
    on_disk = sum(p.stat().st_size for p in built_layer["python"].rglob("*") if p.is_file())
    assert 0 < sizes["zipped"] < sizes["unzipped"] <= LAMBDA_LIMIT
    assert sizes["unzipped"] <= OUR_LIMIT  # du -sb python/, .pyc included
    assert abs(on_disk - sizes["unzipped"]) < 0.05 * sizes["unzipped"]
    assert built_layer["zip"].stat().st_size == sizes["zipped"]
    top = sorted(p.name for p in built_layer["python"].iterdir())
    expected = {"numpy.libs"} | {
        name
        for package, version in locked().items()
        for name in (package, f"{package}-{version}.dist-info")
    }
    assert top == sorted(expected)
    assert not list(built_layer["python"].rglob("tests"))
    assert not list(built_layer["python"].rglob("*.pyi"))


def test_the_lock_pins_the_training_versions_with_both_architectures_hashes():
    pyproject = (REPO / "pyproject.toml").read_text()
    assert set(locked()) == {"numpy", "orjson"}
    for package, version in locked().items():
        assert f'"{package}=={version}"' in pyproject, package
    hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", LOCK.read_text())
    # cp312 manylinux x86_64 and aarch64, per package
    assert len(hashes) == len(set(hashes)) == 2 * len(locked())


def test_layer_ships_unchecked_hash_bytecode(built_layer):
    """/opt is read-only on Lambda: without .pyc every cold start recompiles."""
    tag = sys.implementation.cache_tag
    pyc = built_layer["python"] / "numpy" / "__pycache__" / f"__init__.{tag}.pyc"
    header = pyc.read_bytes()[:8]
    assert header[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(header[4:8], "little") == 0b01  # hash-based, source not checked
    sources = list(built_layer["python"].glob("numpy/**/*.py"))
    compiled = list(built_layer["python"].glob(f"numpy/**/__pycache__/*.{tag}.pyc"))
    assert len(compiled) == len(sources)
    with zipfile.ZipFile(built_layer["zip"]) as archive:
        assert all(name.startswith("python/") for name in archive.namelist())


def test_only_shared_objects_outside_libs_are_stripped(built_layer):
    """The layer's *.libs files are byte-identical to the installed wheel's (the venv
    has the same manylinux wheels); the package extension modules were stripped."""
    site = Path(importlib_metadata.distribution("numpy").locate_file(""))
    libs = sorted(built_layer["python"].glob("numpy.libs/*.so*"))
    assert libs, "expected vendored shared objects under numpy.libs"
    for lib in libs:
        assert lib.read_bytes() == (site / "numpy.libs" / lib.name).read_bytes(), lib.name
    extension = next(built_layer["python"].glob("numpy/_core/_multiarray_umath*.so"))
    original = site / "numpy" / "_core" / extension.name
    assert extension.stat().st_size < original.stat().st_size


def test_runtime_version_is_read_from_serverless_yml(tmp_path):
    result = subprocess.run(
        [str(REPO / "createlayer.sh"), "3.11", "--out-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "serverless.yml" in result.stderr and "python3.12" in result.stderr
    assert not (tmp_path / "python").exists()


CLEAN_SCRIPT = r"""
import json, sys, time
layer, code, boto = sys.argv[1:4]
sys.path[:0] = [layer, code, boto]
import pickle

def refuse(*args, **kwargs):
    raise RuntimeError("something tried to unpickle")

pickle.load = pickle.loads = refuse
pickle.Unpickler = refuse
started = time.perf_counter()
from inference import handler
import_seconds = time.perf_counter() - started
rows = json.load(open(sys.argv[4]))
scheduled = json.load(open(sys.argv[5]))
response = handler.http(rows, None)
summary = handler.scheduled(scheduled, None)
import numpy, boto3
missing = []
for name in ("sklearn", "scipy", "joblib", "pandas", "pyarrow"):
    try:
        __import__(name)
    except ModuleNotFoundError:
        missing.append(name)
print(json.dumps({
    "status": response["statusCode"], "body": json.loads(response["body"]),
    "summary": summary, "import_seconds": import_seconds,
    "files": {m.__name__: m.__file__ for m in (numpy, boto3)},
    "not_importable": missing,
    "path": sys.path,
}))
"""


def test_handler_imports_and_scores_from_the_layer_alone(
    built_layer, boto3_only, lambda_env, tmp_path, moto_endpoint
):
    code = tmp_path / "code"
    shutil.copytree(
        REPO / "inference",
        code / "inference",
        ignore=shutil.ignore_patterns("__pycache__", "requirements.lock"),
    )
    env = {
        name: value
        for name, value in os.environ.items()
        if name.startswith(("AWS_", "APY_RUNWAY_"))
    }
    env["PATH"] = os.environ.get("PATH", "")
    result = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-B",
            "-c",
            CLEAN_SCRIPT,
            str(built_layer["python"]),
            str(code),
            str(boto3_only),
            str(EVENTS / "http_rows.json"),
            str(EVENTS / "scheduled.json"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["status"] == 200 and len(out["body"]["predictions"]) == 3
    assert out["summary"]["scored"] > 0 and out["summary"]["hourly_key"]
    assert out["files"]["numpy"].startswith(str(built_layer["python"])), out["files"]
    assert out["files"]["boto3"].startswith(str(boto3_only))
    assert out["not_importable"] == ["sklearn", "scipy", "joblib", "pandas", "pyarrow"]
    assert not any("site-packages" in entry for entry in out["path"]), out["path"]


def createlayer(tmp_path, *argv: str, repo: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(repo / "createlayer.sh"), *argv, "--out-dir", str(tmp_path / "out")],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=300,
    )


def metadata_file(tmp_path, **versions) -> str:
    path = tmp_path / "metadata.json"
    base = {"numpy": locked_numpy(), "scipy": "1.18.1", "scikit-learn": "1.9.1", "joblib": "1.6.0"}
    path.write_text(json.dumps({"library_versions": {**base, **versions}}))
    return str(path)


@pytest.mark.parametrize(
    "argv, versions, message",
    [
        ((), {"numpy": "2.4.0"}, "trained with numpy 2.4.0"),
        (
            (),
            {"numpy": "2.5.5\n--extra-index-url http://127.0.0.1:9/simple"},
            "not a plain version",
        ),
        ((), {"numpy": "2.5.5; python_version > '3'"}, "not a plain version"),
        (("--sklearn",), {"scikit-learn": "1.9.1 --index-url http://127.0.0.1:9"}, "not a plain"),
        (("--sklearn",), {"joblib": None}, "not a plain version"),
    ],
)
def test_metadata_versions_are_checked_before_pip_runs(tmp_path, argv, versions, message):
    result = createlayer(tmp_path, *argv, "--metadata", metadata_file(tmp_path, **versions))
    assert result.returncode != 0
    assert message in result.stderr
    assert "pins:" not in result.stderr  # refused before pip was called
    assert not (tmp_path / "out" / "layer.zip").exists()


def test_sklearn_baseline_pins_come_from_the_metadata(tmp_path):
    result = createlayer(
        tmp_path, "--sklearn", "--metadata", metadata_file(tmp_path, **{"scikit-learn": "0.0.1"})
    )
    assert result.returncode != 0  # no scikit-learn 0.0.1 wheel exists: pip refuses
    [pins_line] = [line for line in result.stderr.splitlines() if "pins:" in line]
    pins = pins_line.split("pins:")[1].split()
    assert "scikit-learn==0.0.1" in pins and f"numpy=={locked_numpy()}" in pins
    assert "threadpoolctl==3.8.0" in pins  # the rest from benchmarks/sklearn-layer.txt
    assert not (tmp_path / "out" / "layer.zip").exists()


def test_a_wheel_that_does_not_match_the_locked_hashes_is_refused(tmp_path):
    repo = tmp_path / "repo"
    (repo / "inference").mkdir(parents=True)
    for name in ("createlayer.sh", "serverless.yml"):
        shutil.copy2(REPO / name, repo / name)
    lock = re.sub(r"sha256:[0-9a-f]{64}", "sha256:" + "0" * 64, LOCK.read_text())
    (repo / "inference" / "requirements.lock").write_text(lock)
    result = createlayer(tmp_path, repo=repo)
    assert result.returncode != 0
    assert "DO NOT MATCH THE HASHES" in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "out" / "layer.zip").exists()
