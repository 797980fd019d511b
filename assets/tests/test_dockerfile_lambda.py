"""Static checks of the Dockerfile's ``lambda`` target and lambda.txt (no Docker engine needed)."""

from __future__ import annotations

import json
import re
from importlib import metadata

import pytest

from test_dockerfile import (ASSETS, REQ, Instruction, assert_constrained, assert_copy_sources_shipped,
                             assert_extra_ca_is_optional, assert_hermes_extras, assert_no_secrets_in_env_or_args,
                             assert_nothing_downloaded, assert_pins_match_runtime, parse_dockerfile, pins, pip_installs,
                             stage, stages)


@pytest.fixture(scope="module")
def lambda_stage() -> list[Instruction]:
    return stage("lambda")


def test_built_from_the_aws_lambda_python_base_image(lambda_stage: list[Instruction]) -> None:
    text = (ASSETS / "Dockerfile").read_text()
    assert lambda_stage[0].args == "public.ecr.aws/lambda/python:${PYTHON_VERSION} AS lambda"
    version = re.search(r"^ARG PYTHON_VERSION=(3\.\d+)$", text, re.M)
    assert version and version.group(1) == "3.13"  # a Lambda runtime the hermes-agent pin supports
    # the gateway stage is untouched by the lambda target (separate base)
    gateway = stages(parse_dockerfile(text))["gateway"]
    assert not [i for i in gateway if "lambda" in i.args.lower()]


def test_cmd_is_the_worker_handler_and_the_base_entrypoint_stays(lambda_stage: list[Instruction]) -> None:
    (cmd,) = [i for i in lambda_stage if i.keyword == "CMD"][-1:]
    assert json.loads(cmd.args) == ["hermes_aws.lambda_worker.handler"]
    assert not [i for i in lambda_stage if i.keyword == "ENTRYPOINT"]  # /lambda-entrypoint.sh runs the RIC
    from hermes_aws import lambda_worker

    assert callable(lambda_worker.handler)


def test_environment(lambda_stage: list[Instruction]) -> None:
    env = " ".join(i.args for i in lambda_stage if i.keyword == "ENV")
    assert "HERMES_DISABLE_LAZY_INSTALLS=1" in env
    assert "HERMES_HOME=/tmp/hermes" in env  # only /tmp is writable in Lambda
    assert re.search(r"\bHOME=/tmp\b", env)
    from hermes_aws.lambda_worker import DEFAULT_HOME

    assert DEFAULT_HOME == "/tmp/hermes"


def test_pinned_wheel_only_installs(lambda_stage: list[Instruction]) -> None:
    installs = pip_installs(lambda_stage)
    assert installs
    for pip in installs:
        assert "--only-binary=:all:" in pip.args and "-c" in pip.args
        assert pip.targets and all(t.endswith(("requirements/lambda.txt", "requirements/constraints.txt"))
                                   for t in pip.targets), pip.command
    assert any("pip check" in i.args for i in lambda_stage if i.keyword == "RUN" and "pip install" in i.args)


def test_no_aws_cli_no_pipe_to_shell_no_secrets(lambda_stage: list[Instruction]) -> None:
    assert_nothing_downloaded(lambda_stage)
    assert_no_secrets_in_env_or_args(lambda_stage)


def test_copy_sources_exist_and_are_not_dockerignored(lambda_stage: list[Instruction]) -> None:
    copies = [i for i in lambda_stage if i.keyword in ("COPY", "ADD")]
    assert not [i for i in copies if i.args.startswith("--from=")]
    assert_copy_sources_shipped(copies)
    targets = " ".join(i.args for i in copies)
    assert "hermes_aws/ ${LAMBDA_TASK_ROOT}/hermes_aws/" in targets  # the handler's module path


def test_extra_ca_certificate_is_optional(lambda_stage: list[Instruction]) -> None:
    assert_extra_ca_is_optional(lambda_stage, "/etc/pki/tls/certs/ca-bundle.crt",
                                ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT", "AWS_CA_BUNDLE"))


# --------------------------------------------------------------------------- lambda.txt


def test_lambda_pins_are_constrained_and_match_runtime() -> None:
    assert_constrained("lambda.txt")
    assert_pins_match_runtime("lambda.txt")


def test_lambda_extras_exist_in_the_pinned_hermes() -> None:
    assert_hermes_extras("lambda.txt", {"bedrock", "anthropic"})
    # what the extras pull in is what the test venv runs against
    for pkg in ("anthropic", "boto3"):
        assert metadata.version(pkg) == pins(REQ / "constraints.txt")[pkg][0]


def test_dev_pins_are_constrained() -> None:
    assert_constrained("dev.txt")
