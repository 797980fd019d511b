"""Static checks of the Dockerfile's ``agentcore`` target and agentcore.txt (no Docker engine needed)."""

from __future__ import annotations

import json
from importlib import metadata

import pytest

from test_dockerfile import (ASSETS, REPO, REQ, Instruction, assert_constrained, assert_copy_sources_shipped,
                             assert_hermes_extras, assert_no_secrets_in_env_or_args, assert_nothing_downloaded,
                             assert_pins_match_runtime, parse_dockerfile, pins, pip_installs, stage, stages)


@pytest.fixture(scope="module")
def agentcore_stage() -> list[Instruction]:
    return stage("agentcore")


def test_built_on_the_shared_python_base_and_other_targets_untouched(agentcore_stage: list[Instruction]) -> None:
    # stages() lists the instructions of the stage built FROM first
    assert [i.args for i in agentcore_stage if i.keyword == "FROM"][-1] == "base AS agentcore"
    all_stages = stages(parse_dockerfile((ASSETS / "Dockerfile").read_text()))
    assert {"base", "gateway", "lambda", "agentcore"} <= set(all_stages)
    for other in ("gateway", "lambda"):
        assert not [i for i in all_stages[other] if "agentcore" in i.args.lower()], other


def test_entrypoint_serves_the_agentcore_app_on_8080(agentcore_stage: list[Instruction]) -> None:
    (entry,) = [i for i in agentcore_stage if i.keyword == "ENTRYPOINT"][-1:]
    assert json.loads(entry.args) == ["python", "-m", "hermes_aws.agentcore_app"]
    assert [i.args for i in agentcore_stage if i.keyword == "EXPOSE"] == ["8080"]
    from hermes_aws import agentcore_app

    assert agentcore_app.DEFAULT_PORT == 8080 and agentcore_app.DEFAULT_HOST == "0.0.0.0"
    assert callable(agentcore_app.main)


def test_runs_as_a_non_root_user_with_a_writable_home(agentcore_stage: list[Instruction]) -> None:
    users = [i.args for i in agentcore_stage if i.keyword == "USER"]
    assert users == ["10000:10000"]
    env = " ".join(i.args for i in agentcore_stage if i.keyword == "ENV")
    assert "HERMES_HOME=/tmp/hermes" in env and "HOME=/home/hermes" in env
    # the base stage keeps lazy installs off in every target built on it
    base = " ".join(i.args for i in stages(parse_dockerfile((ASSETS / "Dockerfile").read_text()))["base"]
                    if i.keyword == "ENV")
    assert "HERMES_DISABLE_LAZY_INSTALLS=1" in base


def test_pinned_wheel_only_installs_and_an_import_check(agentcore_stage: list[Instruction]) -> None:
    installs = pip_installs(agentcore_stage)
    assert installs
    for pip in installs:
        if "--no-deps" in pip.args:  # hermes_aws itself, pinned build backend
            assert "PIP_CONSTRAINT=/opt/hermes-aws/requirements/constraints.txt" in pip.command
            continue
        assert "--only-binary=:all:" in pip.args and "-c" in pip.args
        assert pip.targets and all(t.endswith(("requirements/agentcore.txt", "requirements/constraints.txt"))
                                   for t in pip.targets), pip.command
    runs = [i.args for i in agentcore_stage if i.keyword == "RUN"]
    assert any("pip check" in r for r in runs)
    assert any("import hermes_aws.agentcore_app" in r and "bedrock_agentcore" in r for r in runs)


def test_no_aws_cli_no_pipe_to_shell_no_secrets(agentcore_stage: list[Instruction]) -> None:
    assert_nothing_downloaded(agentcore_stage)
    assert_no_secrets_in_env_or_args(agentcore_stage)


def test_copy_sources_exist_and_are_not_dockerignored(agentcore_stage: list[Instruction]) -> None:
    copies = [i for i in agentcore_stage if i.keyword in ("COPY", "ADD")]
    assert not [i for i in copies if i.args.startswith("--from=")]
    assert_copy_sources_shipped(copies)


# --------------------------------------------------------------------------- agentcore.txt


def test_agentcore_pins_are_constrained_and_match_runtime() -> None:
    assert_constrained("agentcore.txt")
    assert_pins_match_runtime("agentcore.txt")


def test_the_sdk_pin_fits_hermes_boto3_and_is_what_the_tests_run() -> None:
    sdk = pins(REQ / "agentcore.txt")["bedrock-agentcore"][0]
    assert metadata.version("bedrock-agentcore") == sdk
    assert pins(REQ / "dev.txt")["bedrock-agentcore"][0] == sdk
    # hermes-agent[bedrock] pins boto3 exactly; the SDK's floor must admit that pin
    from packaging.requirements import Requirement
    from packaging.version import Version

    boto3_pin = Version(pins(REQ / "constraints.txt")["boto3"][0])
    for requirement in metadata.requires("bedrock-agentcore") or []:
        req = Requirement(requirement)
        if req.marker is None and req.name in ("boto3", "botocore"):
            pinned = Version(pins(REQ / "constraints.txt")[req.name][0])
            assert pinned in req.specifier, f"{req} does not admit {pinned}"
    assert boto3_pin == Version(metadata.version("boto3"))


def test_agentcore_extras_exist_in_the_pinned_hermes() -> None:
    assert_hermes_extras("agentcore.txt", {"bedrock", "anthropic"})


def test_the_construct_builds_this_target() -> None:
    ts = (REPO / "src" / "private" / "runtime-assets.ts").read_text()
    assert "AGENTCORE = 'agentcore'" in ts
