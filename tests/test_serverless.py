"""serverless.yml packaged offline with osls (npm, pinned in package-lock.json) and
the generated CloudFormation template linted with cfn-lint.

osls asks CloudFormation whether the stack exists while packaging, so it runs with
dummy credentials and AWS_ENDPOINT_URL pointed at the local moto server.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OSLS = REPO / "node_modules" / ".bin" / "osls"
CFN_LINT = Path(sys.executable).with_name("cfn-lint")
BUCKET = "apy-runway-test-artifacts"


@pytest.fixture(scope="module")
def packaged(moto_endpoint, tmp_path_factory) -> Path:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: osls cannot run (make setup installs it via npm ci)")
    assert OSLS.exists(), "osls missing: run `make setup` (npm ci) first"
    project = tmp_path_factory.mktemp("sls")
    shutil.copy(REPO / "serverless.yml", project)
    shutil.copytree(REPO / "inference", project / "inference")
    (project / "inference" / "__pycache__").mkdir(exist_ok=True)
    (project / "inference" / "__pycache__" / "stale.pyc").write_bytes(b"not shipped")
    # a stand-in for the layer createlayer.sh builds (test_layer.py builds the real one)
    with zipfile.ZipFile(project / "layer.zip", "w") as layer:
        layer.writestr("python/placeholder.txt", "layer")
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_endpoint,
        "SLS_TELEMETRY_DISABLED": "1",
        "SLS_NOTIFICATIONS_MODE": "off",
    }
    env.pop("AWS_PROFILE", None)
    result = subprocess.run(
        [
            str(OSLS),
            "package",
            "--stage",
            "test",
            "--param",
            f"bucket={BUCKET}",
            "--package",
            str(project / ".serverless"),
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return project / ".serverless"


def template(packaged: Path) -> dict:
    return json.loads((packaged / "cloudformation-template-update-stack.json").read_text())


def resources(packaged: Path, kind: str) -> dict:
    return {name: r for name, r in template(packaged)["Resources"].items() if r["Type"] == kind}


def test_cfn_lint_passes_on_the_generated_templates(packaged):
    for name in (
        "cloudformation-template-create-stack.json",
        "cloudformation-template-update-stack.json",
    ):
        result = subprocess.run(
            [str(CFN_LINT), "--config-file", str(REPO / ".cfnlintrc"), str(packaged / name)],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_config_ignores_only_the_known_route_warning(packaged):
    result = subprocess.run(
        [str(CFN_LINT), str(packaged / "cloudformation-template-update-stack.json")],
        capture_output=True,
        text=True,
    )
    codes = set(re.findall(r"^([EWI]\d{4}) ", result.stdout, flags=re.M))
    assert codes <= {"W3005"}, result.stdout


def test_package_ships_only_the_inference_code(packaged):
    with zipfile.ZipFile(packaged / "apy-runway.zip") as archive:
        names = sorted(archive.namelist())
    shipped = sorted(f"inference/{p.name}" for p in (REPO / "inference").glob("*.py"))
    assert "inference/contracts.py" in shipped and "inference/handler.py" in shipped
    assert names == shipped


def test_functions_use_the_runtime_layer_and_environment(packaged):
    functions = resources(packaged, "AWS::Lambda::Function")
    layer = next(iter(resources(packaged, "AWS::Lambda::LayerVersion").values()))
    runtime = re.search(
        r"^  runtime: (python\S+)", (REPO / "serverless.yml").read_text(), flags=re.M
    ).group(1)
    assert runtime == "python3.12"
    assert layer["Properties"]["CompatibleRuntimes"] == [runtime]
    handlers = {}
    for function in functions.values():
        props = function["Properties"]
        handlers[props["Handler"]] = props
        assert props["Runtime"] == runtime
        assert props["Layers"] == [{"Ref": "NumpyLambdaLayer"}]
        assert props["Environment"]["Variables"]["APY_RUNWAY_BUCKET"] == BUCKET
        assert {
            "APY_RUNWAY_MODEL_PREFIX",
            "APY_RUNWAY_FEATURES_KEY",
            "APY_RUNWAY_PREDICTIONS_PREFIX",
        } <= set(props["Environment"]["Variables"])
        # no signing parameter unless the deploy names one
        assert props["Environment"]["Variables"]["APY_RUNWAY_SIGNING_KEY_PARAMETER"] == ""
    assert set(handlers) == {"inference/handler.http", "inference/handler.scheduled"}
    [rule] = resources(packaged, "AWS::Events::Rule").values()
    assert rule["Properties"]["ScheduleExpression"] == "rate(1 hour)"
    [route] = resources(packaged, "AWS::ApiGatewayV2::Route").values()
    assert route["Properties"]["RouteKey"] == "POST /predictions"


def test_iam_is_least_privilege_on_the_bucket(packaged):
    [role] = resources(packaged, "AWS::IAM::Role").values()
    statements = [
        s
        for policy in role["Properties"]["Policies"]
        for s in policy["PolicyDocument"]["Statement"]
    ]
    s3 = [s for s in statements if any(str(a).startswith("s3:") for a in s["Action"])]

    def arns(statement):
        listed = statement["Resource"]
        listed = [listed] if isinstance(listed, (str, dict)) else listed
        return sorted(
            "".join(part if isinstance(part, str) else "<partition>" for part in r["Fn::Join"][1])
            if isinstance(r, dict)
            else r
            for r in listed
        )

    by_action = {tuple(s["Action"]): arns(s) for s in s3}
    assert by_action == {
        ("s3:GetObject",): sorted(
            [
                f"arn:aws:s3:::{BUCKET}/models/latest/*",
                f"arn:aws:s3:::{BUCKET}/features/latest_features.bin",
                f"arn:aws:s3:::{BUCKET}/predictions/latest.json",
                f"arn:aws:s3:::{BUCKET}/predictions/hourly/*",
            ]
        ),
        ("s3:PutObject",): [f"arn:aws:s3:::{BUCKET}/predictions/*"],
    }
    ssm = [s for s in statements if any(str(a).startswith("ssm:") for a in s["Action"])]
    assert [s["Action"] for s in ssm] == [["ssm:GetParameter"]]
    [resource] = ssm[0]["Resource"]
    joined = "".join(
        p if isinstance(p, str) else "<" + p["Ref"] + ">" for p in resource["Fn::Join"][1]
    )
    assert joined == "arn:aws:ssm:<AWS::Region>:<AWS::AccountId>:parameter/apy-runway/test/*"
    others = [s for s in statements if s not in s3 and s not in ssm]
    assert all(str(a).startswith("logs:") for s in others for a in s["Action"])
