"""serverless.yml packaged offline with osls (npm, pinned in package-lock.json) and
the generated CloudFormation template linted with cfn-lint.

osls asks CloudFormation whether the stack exists while packaging, so it runs with
dummy credentials and AWS_ENDPOINT_URL pointed at the local moto server.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from inference import contracts

REPO = Path(__file__).resolve().parents[1]
OSLS = REPO / "node_modules" / ".bin" / "osls"
CFN_LINT = Path(sys.executable).with_name("cfn-lint")
BUCKET = "apy-runway-test-artifacts"


def package(project: Path, moto_endpoint: str, *params: str, config: str | None = None):
    """`osls package` of serverless.yml (or `config`) in a fresh copy of the
    project; --param bucket=... plus `params` ("name=value")."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed: osls cannot run (make setup installs it via npm ci)")
    assert OSLS.exists(), "osls missing: run `make setup` (npm ci) first"
    project.mkdir(parents=True)
    (project / "serverless.yml").write_text(config or (REPO / "serverless.yml").read_text())
    shutil.copytree(
        REPO / "inference", project / "inference", ignore=shutil.ignore_patterns("__pycache__")
    )
    # the .pyc createlayer.sh compiles for the function package
    subprocess.run(
        [
            sys.executable,
            "-m",
            "compileall",
            "-q",
            "--invalidation-mode",
            "checked-hash",
            str(project / "inference"),
        ],
        check=True,
    )
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
    command = [str(OSLS), "package", "--stage", "test", "--param", f"bucket={BUCKET}"]
    for param in params:
        command += ["--param", param]
    return subprocess.run(
        [*command, "--package", str(project / ".serverless")],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def packaged_ok(project: Path, moto_endpoint: str, *params: str, config: str | None = None):
    result = package(project, moto_endpoint, *params, config=config)
    assert result.returncode == 0, result.stdout + result.stderr
    return project / ".serverless"


@pytest.fixture(scope="module")
def packaged(moto_endpoint, tmp_path_factory) -> Path:
    """serverless.yml with its defaults (IAM authorizer, default throttling)."""
    return packaged_ok(tmp_path_factory.mktemp("sls") / "default", moto_endpoint)


@pytest.fixture(scope="module")
def packaged_jwt(moto_endpoint, tmp_path_factory) -> Path:
    """The JWT authorizer and every other endpoint parameter changed."""
    return packaged_ok(
        tmp_path_factory.mktemp("sls") / "jwt",
        moto_endpoint,
        "authorizer=jwt",
        "jwtIssuerUrl=https://issuer.example.com/",
        "jwtAudience=apy-runway-clients",
        "throttlingRateLimit=50",
        "throttlingBurstLimit=100",
        "scoreReservedConcurrency=2",
        "signingKeyParameter=/apy-runway/test/custom-key",
    )


@pytest.fixture(scope="module")
def packaged_public(moto_endpoint, tmp_path_factory) -> Path:
    """A public endpoint serving unsigned models: both stated."""
    return packaged_ok(
        tmp_path_factory.mktemp("sls") / "public",
        moto_endpoint,
        "authorizer=public",
        "unsigned=true",
    )


def template(packaged: Path) -> dict:
    return json.loads((packaged / "cloudformation-template-update-stack.json").read_text())


def resources(packaged: Path, kind: str) -> dict:
    return {name: r for name, r in template(packaged)["Resources"].items() if r["Type"] == kind}


def test_cfn_lint_passes_on_the_generated_templates(packaged, packaged_jwt, packaged_public):
    templates = [
        str(packaged / "cloudformation-template-create-stack.json"),
        *(
            str(folder / "cloudformation-template-update-stack.json")
            for folder in (packaged, packaged_jwt, packaged_public)
        ),
    ]
    result = subprocess.run(
        [str(CFN_LINT), "--config-file", str(REPO / ".cfnlintrc"), *templates],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_config_ignores_only_the_known_dependency_warning(packaged):
    result = subprocess.run(
        [str(CFN_LINT), str(packaged / "cloudformation-template-update-stack.json")],
        capture_output=True,
        text=True,
    )
    codes = set(re.findall(r"^([EWI]\d{4}) ", result.stdout, flags=re.M))
    assert codes <= {"W3005"}, result.stdout


def test_package_ships_only_the_inference_code_and_its_bytecode(packaged):
    with zipfile.ZipFile(packaged / "apy-runway.zip") as archive:
        names = sorted(archive.namelist())
        bytecode = {name: archive.read(name) for name in names if name.endswith(".pyc")}
        sources = {name: archive.read(name) for name in names if name.endswith(".py")}
    shipped = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "inference").rglob("*.py"))
    assert "inference/contracts.py" in shipped and "inference/model/portable.py" in shipped
    assert sorted(sources) == shipped
    # one .pyc per source for this interpreter (/var/task is read-only: without
    # them each cold start compiles inference/), checked against the source's
    # hash, so a stale one is recompiled, never run
    expected = {
        importlib.util.cache_from_source(name).replace(os.sep, "/"): name for name in shipped
    }
    assert sorted(bytecode) == sorted(expected)
    for name, data in bytecode.items():
        flags = int.from_bytes(data[4:8], "little")
        assert data[:4] == importlib.util.MAGIC_NUMBER and flags == 0b11, name
        assert data[8:16] == importlib.util.source_hash(sources[expected[name]]), name


def our_functions(packaged: Path) -> dict:
    """The project's functions (not the custom resource osls adds to configure
    an existing bucket's notifications)."""
    return {
        name: f
        for name, f in resources(packaged, "AWS::Lambda::Function").items()
        if f["Properties"]["Handler"].startswith("inference/")
    }


def test_functions_use_the_runtime_layer_and_environment(packaged):
    functions = our_functions(packaged)
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
        # signed by default: the key is the stage's SSM parameter
        assert (
            props["Environment"]["Variables"]["APY_RUNWAY_SIGNING_KEY_PARAMETER"]
            == "/apy-runway/test/model-signing-key"
        )
    assert set(handlers) == {"inference/handler.http", "inference/handler.scheduled"}
    [rule] = resources(packaged, "AWS::Events::Rule").values()
    # the safety net runs at minute 50, after the hour's refresh should have published
    assert rule["Properties"]["ScheduleExpression"] == contracts.SAFETY_NET_SCHEDULE
    [route] = resources(packaged, "AWS::ApiGatewayV2::Route").values()
    assert route["Properties"]["RouteKey"] == "POST /predictions"


def test_scoring_follows_the_features_key_and_the_hour(packaged):
    """The scorer runs on the S3 ObjectCreated event of the features key it
    reads (inference/contracts.py FEATURES_KEY), and hourly as a safety net."""
    [notification] = resources(packaged, "Custom::S3").values()
    props = notification["Properties"]
    assert props["FunctionName"].endswith("-scoreHourly")
    assert props["BucketName"] == BUCKET
    assert props["BucketConfigs"] == [
        {"Event": "s3:ObjectCreated:*", "Rules": [{"Prefix": contracts.FEATURES_KEY}]}
    ]
    [rule] = resources(packaged, "AWS::Events::Rule").values()
    assert rule["Properties"]["Targets"][0]["Arn"] == {
        "Fn::GetAtt": ["ScoreHourlyLambdaFunction", "Arn"]
    }


# --------------------------------------------------------------------------- roles


def _resource_text(value) -> str:
    """An ARN as text: Fn::Sub kept with its ${...}, Fn::Join joined (Refs as
    ${name}), Fn::GetAtt as GetAtt:Name.Attribute."""
    if isinstance(value, str):
        return value
    if "Fn::Sub" in value:
        return value["Fn::Sub"]
    if "Fn::GetAtt" in value:
        return "GetAtt:" + ".".join(value["Fn::GetAtt"])
    if "Ref" in value:
        return "${" + value["Ref"] + "}"
    separator, parts = value["Fn::Join"]
    return separator.join(_resource_text(part) for part in parts)


def statements(role: dict) -> dict[tuple[str, ...], list[str]]:
    """{sorted actions: sorted resources} of every statement of a role's policies
    (each statement must Allow)."""
    found: dict[tuple[str, ...], list[str]] = {}
    for policy in role["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow" and "Condition" not in statement
            actions = statement["Action"]
            actions = tuple(sorted([actions] if isinstance(actions, str) else actions))
            listed = statement["Resource"]
            listed = [listed] if isinstance(listed, (str, dict)) else listed
            assert actions not in found, f"{actions} in two statements"
            found[actions] = sorted(_resource_text(r) for r in listed)
    return found


LOG_GROUP = "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
SIGNING_KEY = (
    "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/apy-runway/test/*"
)
OBJECT = f"arn:aws:s3:::{BUCKET}/"


def _assumed_by_lambda_only(role: dict) -> None:
    [trust] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    services = trust["Principal"]["Service"]
    assert trust["Effect"] == "Allow" and trust["Action"] in ("sts:AssumeRole", ["sts:AssumeRole"])
    assert services in ("lambda.amazonaws.com", ["lambda.amazonaws.com"])


def test_each_function_has_its_own_role(packaged):
    functions = resources(packaged, "AWS::Lambda::Function")
    roles = resources(packaged, "AWS::IAM::Role")
    # no shared IamRoleLambdaExecution; osls's custom resource (the S3 trigger on
    # the existing bucket) has its own role, tested below
    assert set(roles) == {"PredictRole", "ScoreHourlyRole", "IamRoleCustomResourcesLambdaExecution"}
    assert functions["PredictLambdaFunction"]["Properties"]["Role"] == {
        "Fn::GetAtt": ["PredictRole", "Arn"]
    }
    assert functions["ScoreHourlyLambdaFunction"]["Properties"]["Role"] == {
        "Fn::GetAtt": ["ScoreHourlyRole", "Arn"]
    }
    for role in roles.values():
        _assumed_by_lambda_only(role)


def test_the_http_function_may_only_read_the_model_and_latest_json(packaged):
    role = resources(packaged, "AWS::IAM::Role")["PredictRole"]
    log_group = resources(packaged, "AWS::Logs::LogGroup")["PredictLogGroup"]
    assert statements(role) == {
        ("logs:CreateLogStream", "logs:PutLogEvents"): [
            f"{LOG_GROUP}{log_group['Properties']['LogGroupName']}:*"
        ],
        ("s3:GetObject",): [f"{OBJECT}models/latest/*", f"{OBJECT}predictions/latest.json"],
        ("ssm:GetParameter",): [SIGNING_KEY],
    }


def test_the_scheduled_function_writes_only_its_hour_and_latest_and_may_not_list(packaged):
    """No s3:ListBucket: a GET/HEAD of a missing latest.json answers 403, which the
    scorer reads as absent (inference/service.py: safe behind its conditional PUT;
    tests/test_s3_without_list.py runs it against such answers)."""
    role = resources(packaged, "AWS::IAM::Role")["ScoreHourlyRole"]
    log_group = resources(packaged, "AWS::Logs::LogGroup")["ScoreHourlyLogGroup"]
    assert statements(role) == {
        ("logs:CreateLogStream", "logs:PutLogEvents"): [
            f"{LOG_GROUP}{log_group['Properties']['LogGroupName']}:*"
        ],
        ("s3:GetObject",): sorted(
            [
                f"{OBJECT}models/latest/*",
                f"{OBJECT}features/latest_features.bin",
                f"{OBJECT}predictions/latest.json",
                f"{OBJECT}watch/watchlist.json",
                f"{OBJECT}watch/state.json",
            ]
        ),
        # the hour's predictions, latest.json, the hour's monitoring document and ledger
        # file, the watch state (the watchlist is the operator's: read only)
        ("s3:PutObject",): sorted(
            [
                f"{OBJECT}predictions/hourly/*",
                f"{OBJECT}predictions/latest.json",
                f"{OBJECT}monitoring/*",
                f"{OBJECT}ledger/*",
                f"{OBJECT}watch/state.json",
            ]
        ),
        # the signing key and the webhook URL's parameter, both under /apy-runway/<stage>/
        ("ssm:GetParameter",): [SIGNING_KEY],
        ("sqs:SendMessage",): ["GetAtt:ScoreFailuresQueue.Arn"],
    }


def test_the_s3_triggers_custom_resource_role_is_only_what_osls_needs(packaged):
    """osls configures the notification of an existing bucket with a custom
    resource (a Node.js function CloudFormation invokes at deploy time) under its
    own role: bucket notifications of our bucket, and adding/removing the invoke
    permission of a function (osls writes function:*: any function of the account
    and region, not only the scorer)."""
    roles = resources(packaged, "AWS::IAM::Role")
    custom = roles.pop("IamRoleCustomResourcesLambdaExecution")
    _assumed_by_lambda_only(custom)
    assert statements(custom) == {
        ("s3:GetBucketNotification", "s3:PutBucketNotification"): [
            f"arn:${{AWS::Partition}}:s3:::{BUCKET}"
        ],
        ("lambda:AddPermission", "lambda:RemovePermission"): [
            "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:*"
        ],
    }
    function = resources(packaged, "AWS::Lambda::Function")[
        "CustomDashresourceDashexistingDashs3LambdaFunction"
    ]
    assert function["Properties"]["Role"] == {
        "Fn::GetAtt": ["IamRoleCustomResourcesLambdaExecution", "Arn"]
    }


# --------------------------------------------------------------------------- the endpoint


def _route(folder: Path) -> dict:
    [route] = resources(folder, "AWS::ApiGatewayV2::Route").values()
    assert route["Properties"]["RouteKey"] == "POST /predictions"
    return route["Properties"]


def _number(value):
    """A --param value reaches the template as text ("50"), a default as a number;
    CloudFormation (and cfn-lint) read both as the number."""
    return None if value is None else float(value)


def _throttling(folder: Path) -> dict:
    [stage] = resources(folder, "AWS::ApiGatewayV2::Stage").values()
    return {k: _number(v) for k, v in stage["Properties"]["DefaultRouteSettings"].items()}


def _reserved(folder: Path) -> dict:
    functions = resources(folder, "AWS::Lambda::Function")
    return {
        name: _number(function["Properties"].get("ReservedConcurrentExecutions"))
        for name, function in functions.items()
        if not name.startswith("CustomDash")  # osls's deploy-time custom resource
    }


def test_by_default_the_route_needs_iam_and_the_stage_is_throttled(packaged):
    assert _route(packaged)["AuthorizationType"] == "AWS_IAM"
    assert "AuthorizerId" not in _route(packaged)
    assert not resources(packaged, "AWS::ApiGatewayV2::Authorizer")
    assert _throttling(packaged) == {"ThrottlingRateLimit": 10, "ThrottlingBurstLimit": 20}
    assert _reserved(packaged) == {"PredictLambdaFunction": None, "ScoreHourlyLambdaFunction": 1}


def test_parameters_switch_to_a_jwt_authorizer_and_change_the_limits(packaged_jwt):
    [(name, authorizer)] = resources(packaged_jwt, "AWS::ApiGatewayV2::Authorizer").items()
    assert authorizer["Properties"]["AuthorizerType"] == "JWT"
    assert authorizer["Properties"]["IdentitySource"] == ["$request.header.Authorization"]
    assert authorizer["Properties"]["JwtConfiguration"] == {
        "Issuer": "https://issuer.example.com/",
        "Audience": ["apy-runway-clients"],
    }
    assert _route(packaged_jwt)["AuthorizationType"] == "JWT"
    assert _route(packaged_jwt)["AuthorizerId"] == {"Ref": name}
    assert _throttling(packaged_jwt) == {"ThrottlingRateLimit": 50, "ThrottlingBurstLimit": 100}
    assert _reserved(packaged_jwt)["ScoreHourlyLambdaFunction"] == 2


def test_the_public_setting_removes_the_authorizer_and_keeps_the_throttling(packaged_public):
    assert "AuthorizationType" not in _route(packaged_public)
    assert not resources(packaged_public, "AWS::ApiGatewayV2::Authorizer")
    assert _throttling(packaged_public) == {"ThrottlingRateLimit": 10, "ThrottlingBurstLimit": 20}


def test_unsigned_models_are_served_only_when_the_deploy_says_so(packaged_jwt, packaged_public):
    """Signed by default (a custom parameter name is kept); unsigned=true is the
    only way to an empty key parameter, for both functions."""
    for folder, expected in (
        (packaged_jwt, "/apy-runway/test/custom-key"),
        (packaged_public, ""),
    ):
        names = {
            f["Properties"]["Environment"]["Variables"]["APY_RUNWAY_SIGNING_KEY_PARAMETER"]
            for f in our_functions(folder).values()
        }
        assert names == {expected}


@pytest.mark.parametrize(
    "params, message",
    [
        (["authorizer=IAM"], 'Value not found at "self" source'),
        (["authorizer=jwt"], "provider.httpApi.authorizers.jwt.issuerUrl"),
        (["authorizer=jwt", "jwtIssuerUrl=https://issuer.example.com/"], "audience"),
        (["unsigned=yes"], 'Value not found at "self" source'),
    ],
    ids=["unknown_authorizer", "jwt_without_issuer", "jwt_without_audience", "unsigned_yes"],
)
def test_an_unknown_or_incomplete_setting_fails_packaging(moto_endpoint, tmp_path, params, message):
    result = package(tmp_path / "project", moto_endpoint, *params)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr


def test_a_failed_scheduled_run_lands_in_the_dead_letter_queue(packaged):
    queue = resources(packaged, "AWS::SQS::Queue")["ScoreFailuresQueue"]["Properties"]
    assert queue["QueueName"] == "apy-runway-test-score-failures"
    assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600
    configs = resources(packaged, "AWS::Lambda::EventInvokeConfig")
    [config] = configs.values()
    assert config["Properties"]["FunctionName"] == {"Ref": "ScoreHourlyLambdaFunction"}
    assert config["Properties"]["DestinationConfig"] == {
        "OnFailure": {"Destination": {"Fn::GetAtt": ["ScoreFailuresQueue", "Arn"]}}
    }
