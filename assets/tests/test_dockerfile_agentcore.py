"""Static checks of the Dockerfile's ``agentcore`` target and agentcore.txt (no Docker engine needed)."""

from __future__ import annotations

import json
import re
import shlex
from importlib import metadata

import pytest

from test_dockerfile import ASSETS, REPO, REQ, Instruction, dockerignore_patterns, ignored, parse_dockerfile, pins, stages


@pytest.fixture(scope="module")
def agentcore_stage() -> list[Instruction]:
    all_stages = stages(parse_dockerfile((ASSETS / "Dockerfile").read_text()))
    assert "agentcore" in all_stages, f"no `agentcore` target in {sorted(all_stages)}"
    return all_stages["agentcore"]


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
    runs = [i.args for i in agentcore_stage if i.keyword == "RUN"]
    installs = [c for r in runs for c in r.split("&&") if "pip install" in c]
    assert installs
    for command in installs:
        args = shlex.split(command)
        if "--no-deps" in args:  # hermes_aws itself, pinned build backend
            assert "PIP_CONSTRAINT=/opt/hermes-aws/requirements/constraints.txt" in command
            continue
        assert "--only-binary=:all:" in args and "-c" in args
        targets = [a for a in args[args.index("install") + 1:] if not a.startswith("-")]
        assert targets and all(t.endswith(("requirements/agentcore.txt", "requirements/constraints.txt"))
                               for t in targets), command
    assert any("pip check" in r for r in runs)
    assert any("import hermes_aws.agentcore_app" in r and "bedrock_agentcore" in r for r in runs)


def test_no_aws_cli_no_pipe_to_shell_no_secrets(agentcore_stage: list[Instruction]) -> None:
    for ins in agentcore_stage:
        if ins.keyword == "RUN":
            assert not re.search(r"\b(curl|wget)\b", ins.args), ins
            assert not re.search(r"aws-?cli|\baws\s+s3\b", ins.args, re.IGNORECASE), ins
        if ins.keyword in ("ENV", "ARG"):
            assert not re.search(r"(TOKEN|SECRET|PASSWORD|API_KEY|ACCESS_KEY)\w*=", ins.args, re.IGNORECASE), ins


def test_copy_sources_exist_and_are_not_dockerignored(agentcore_stage: list[Instruction]) -> None:
    patterns = dockerignore_patterns()
    copies = [i for i in agentcore_stage if i.keyword in ("COPY", "ADD")]
    assert copies
    for ins in copies:
        assert ins.keyword == "COPY" and not ins.args.startswith("--from=")
        for source in [a for a in shlex.split(ins.args) if not a.startswith("--")][:-1]:
            path = ASSETS / source
            assert path.exists(), f"line {ins.line}: COPY source {source} does not exist"
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
            assert [f for f in files if not ignored(f.relative_to(ASSETS).as_posix(), patterns)], source


# --------------------------------------------------------------------------- agentcore.txt


def test_agentcore_pins_are_constrained_and_match_runtime() -> None:
    constraints, runtime, ac = pins(REQ / "constraints.txt"), pins(REQ / "runtime.txt"), pins(REQ / "agentcore.txt")
    for pkg, (version, line) in ac.items():
        assert pkg in constraints, f"agentcore.txt: {pkg} missing from constraints.txt"
        assert constraints[pkg][0] == version, f"agentcore.txt: {line} but constraints.txt has {constraints[pkg][1]}"
    for pkg, (version, _) in runtime.items():
        assert ac.get(pkg, (None,))[0] == version, f"agentcore.txt must pin {pkg}=={version} like runtime.txt"


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
    line = pins(REQ / "agentcore.txt")["hermes-agent"][1]
    extras = set(re.search(r"\[([^\]]*)\]", line).group(1).split(","))  # type: ignore[union-attr]
    assert extras == {"bedrock", "anthropic"}
    assert extras <= set(metadata.distribution("hermes-agent").metadata.get_all("Provides-Extra") or [])


def test_the_construct_builds_this_target() -> None:
    ts = (REPO / "src" / "private" / "runtime-assets.ts").read_text()
    assert "AGENTCORE = 'agentcore'" in ts
