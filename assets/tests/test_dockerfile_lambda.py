"""Static checks of the Dockerfile's ``lambda`` target and lambda.txt (no Docker engine needed)."""

from __future__ import annotations

import json
import re
import shlex
from importlib import metadata

import pytest

from test_dockerfile import ASSETS, REQ, Instruction, dockerignore_patterns, ignored, parse_dockerfile, pins, stages


@pytest.fixture(scope="module")
def lambda_stage() -> list[Instruction]:
    all_stages = stages(parse_dockerfile((ASSETS / "Dockerfile").read_text()))
    assert "lambda" in all_stages, f"no `lambda` target in {sorted(all_stages)}"
    return all_stages["lambda"]


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
    pip_runs = [i.args for i in lambda_stage if i.keyword == "RUN" and "pip install" in i.args]
    assert pip_runs
    for run in pip_runs:
        for command in run.split("&&"):
            if "pip install" not in command:
                continue
            args = shlex.split(command)
            assert "--only-binary=:all:" in args
            targets = [a for a in args[args.index("install") + 1:] if not a.startswith("-")]
            assert targets and all(t.endswith(("requirements/lambda.txt", "requirements/constraints.txt"))
                                   for t in targets), command
            assert "-c" in args
    assert any("pip check" in r for r in pip_runs)


def test_no_aws_cli_no_pipe_to_shell_no_secrets(lambda_stage: list[Instruction]) -> None:
    for ins in lambda_stage:
        if ins.keyword == "RUN":
            assert not re.search(r"\b(curl|wget)\b", ins.args), ins
            assert not re.search(r"aws-?cli|\baws\s+s3\b", ins.args, re.IGNORECASE), ins
        if ins.keyword in ("ENV", "ARG"):
            assert not re.search(r"(TOKEN|SECRET|PASSWORD|API_KEY|ACCESS_KEY)\w*=", ins.args, re.IGNORECASE), ins


def test_copy_sources_exist_and_are_not_dockerignored(lambda_stage: list[Instruction]) -> None:
    patterns = dockerignore_patterns()
    copies = [i for i in lambda_stage if i.keyword in ("COPY", "ADD")]
    assert copies
    for ins in copies:
        assert ins.keyword == "COPY" and not ins.args.startswith("--from=")
        for source in [a for a in shlex.split(ins.args) if not a.startswith("--")][:-1]:
            path = ASSETS / source
            assert path.exists(), f"line {ins.line}: COPY source {source} does not exist"
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
            assert [f for f in files if not ignored(f.relative_to(ASSETS).as_posix(), patterns)], source
    targets = " ".join(i.args for i in copies)
    assert "hermes_aws/ ${LAMBDA_TASK_ROOT}/hermes_aws/" in targets  # the handler's module path


def test_extra_ca_certificate_is_optional(lambda_stage: list[Instruction]) -> None:
    assert 'EXTRA_CA_CERT_PEM=""' in [i.args for i in lambda_stage if i.keyword == "ARG"]
    env = " ".join(i.args for i in lambda_stage if i.keyword == "ENV")
    for var in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT", "AWS_CA_BUNDLE"):
        assert f"{var}=/etc/pki/tls/certs/ca-bundle.crt" in env


# --------------------------------------------------------------------------- lambda.txt


def test_lambda_pins_are_constrained_and_match_runtime() -> None:
    constraints, runtime, lam = pins(REQ / "constraints.txt"), pins(REQ / "runtime.txt"), pins(REQ / "lambda.txt")
    for pkg, (version, line) in lam.items():
        assert pkg in constraints, f"lambda.txt: {pkg} missing from constraints.txt"
        assert constraints[pkg][0] == version, f"lambda.txt: {line} but constraints.txt has {constraints[pkg][1]}"
    for pkg, (version, _) in runtime.items():
        assert lam.get(pkg, (None,))[0] == version, f"lambda.txt must pin {pkg}=={version} like runtime.txt"


def test_lambda_extras_exist_in_the_pinned_hermes() -> None:
    line = pins(REQ / "lambda.txt")["hermes-agent"][1]
    extras = set(re.search(r"\[([^\]]*)\]", line).group(1).split(","))  # type: ignore[union-attr]
    assert extras == {"bedrock", "anthropic"}
    dist = metadata.distribution("hermes-agent")
    assert dist.version == pins(REQ / "lambda.txt")["hermes-agent"][0]
    assert extras <= set(dist.metadata.get_all("Provides-Extra") or [])
    # what the extras pull in is what the test venv runs against
    for pkg in ("anthropic", "boto3"):
        assert metadata.version(pkg) == pins(REQ / "constraints.txt")[pkg][0]


def test_dev_pins_are_constrained() -> None:
    constraints = pins(REQ / "constraints.txt")
    for pkg, (version, _) in pins(REQ / "dev.txt").items():
        assert constraints.get(pkg, (None,))[0] == version, pkg
