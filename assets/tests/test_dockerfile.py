"""Static checks of assets/Dockerfile and the requirement pins (no Docker engine needed)."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest

ASSETS = Path(__file__).resolve().parents[1]
REPO = ASSETS.parent
REQ = ASSETS / "requirements"


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    out: list[Instruction] = []
    buf: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue  # comment inside a continued instruction
        if not buf:
            start = number
        if stripped.endswith("\\"):
            buf.append(stripped[:-1].strip())
            continue
        buf.append(stripped)
        line = " ".join(part for part in buf if part)
        keyword, _, args = line.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip(), start))
        buf = []
    assert not buf, "dangling line continuation"
    return out


def stages(instructions: list[Instruction]) -> dict[str, list[Instruction]]:
    """Stage name -> its instructions, with the instructions of the stage it builds FROM first."""
    result: dict[str, list[Instruction]] = {}
    current: list[Instruction] | None = None
    for ins in instructions:
        if ins.keyword == "FROM":
            m = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", ins.args, re.IGNORECASE)
            assert m, ins
            image, name = m.group(1), m.group(2)
            current = list(result.get(image, [])) + [ins]
            result[name or f"stage{len(result)}"] = current
        elif current is not None:
            current.append(ins)
    return result


def dockerignore_patterns() -> list[str]:
    lines = (ASSETS / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def ignored(rel: str, patterns: list[str]) -> bool:
    """Docker's matching, simplified: last match wins, `**/` matches any depth, a dir hides its contents."""
    result = False
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        candidates = [pat] + ([pat[3:]] if pat.startswith("**/") else [])
        if any(fnmatch.fnmatchcase(p, c) for p in prefixes for c in candidates):
            result = not negate
    return result


def stage(name: str) -> list[Instruction]:
    """The instructions of the Dockerfile's target ``name`` (with those of the stages it builds on)."""
    all_stages = stages(parse_dockerfile((ASSETS / "Dockerfile").read_text()))
    assert name in all_stages, f"no `{name}` target in {sorted(all_stages)}"
    return all_stages[name]


# Checks every target's tests make (test_dockerfile_lambda.py, test_dockerfile_agentcore.py use them too).

@dataclass
class PipInstall:
    command: str
    args: list[str]
    targets: list[str]  # the words after ``install`` that are not options


def pip_installs(instructions: list[Instruction]) -> list[PipInstall]:
    """Every ``pip install`` command of the RUNs (the ``&&``-joined commands of a RUN apart)."""
    out: list[PipInstall] = []
    for ins in instructions:
        if ins.keyword != "RUN":
            continue
        for command in ins.args.split("&&"):
            if "pip install" in command:
                args = shlex.split(command)
                out.append(PipInstall(command, args,
                                      [a for a in args[args.index("install") + 1:] if not a.startswith("-")]))
    return out


SECRET_ASSIGNMENT = re.compile(r"(TOKEN|SECRET|PASSWORD|API_KEY|ACCESS_KEY)\w*=", re.IGNORECASE)


def assert_no_secrets_in_env_or_args(instructions: list[Instruction]) -> None:
    for ins in instructions:
        if ins.keyword in ("ENV", "ARG"):
            assert not SECRET_ASSIGNMENT.search(ins.args), ins


def assert_nothing_downloaded(instructions: list[Instruction]) -> None:
    """No curl/wget and no AWS CLI in any RUN (everything comes from pinned packages or the context)."""
    for ins in instructions:
        if ins.keyword == "RUN":
            assert not re.search(r"\b(curl|wget)\b", ins.args), ins
            assert not re.search(r"aws-?cli|\baws\s+s3\b", ins.args, re.IGNORECASE), ins


def assert_copy_sources_shipped(copies: list[Instruction]) -> None:
    """Every source of these COPYs exists in assets/ and is not (entirely) excluded by .dockerignore."""
    patterns = dockerignore_patterns()
    assert copies
    for ins in copies:
        assert ins.keyword == "COPY", f"use COPY, not ADD: {ins}"
        for source in [a for a in shlex.split(ins.args) if not a.startswith("--")][:-1]:
            path = ASSETS / source
            assert path.exists(), f"line {ins.line}: COPY source {source} does not exist in assets/"
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
            shipped = [f for f in files if not ignored(f.relative_to(ASSETS).as_posix(), patterns)]
            assert shipped, f"line {ins.line}: everything in {source} is excluded by .dockerignore"
            if path.is_file():
                assert shipped == [path], f"line {ins.line}: {source} is excluded by .dockerignore"


def assert_extra_ca_is_optional(instructions: list[Instruction], bundle: str, variables: tuple[str, ...]) -> None:
    assert 'EXTRA_CA_CERT_PEM=""' in [i.args for i in instructions if i.keyword == "ARG"]
    env = " ".join(i.args for i in instructions if i.keyword == "ENV")
    for var in variables:
        assert f"{var}={bundle}" in env


@pytest.fixture(scope="module")
def gateway_stage() -> list[Instruction]:
    return stage("gateway")


def test_parser_handles_continuations_and_comments() -> None:
    text = "FROM a AS b\n# c\nRUN x \\\n  # inside\n  && y\nUSER 1\n"
    assert [(i.keyword, i.args) for i in parse_dockerfile(text)] == [
        ("FROM", "a AS b"), ("RUN", "x && y"), ("USER", "1")]


def test_runs_as_uid_10000(gateway_stage: list[Instruction]) -> None:
    users = [i.args for i in gateway_stage if i.keyword == "USER"]
    assert users and users[-1].split(":")[0] == "10000"
    # the construct's EFS access point and task user rely on this uid
    assert "const HERMES_UID = '10000';" in (REPO / "src" / "fargate" / "gateway.ts").read_text()


def test_entrypoint_is_the_gateway_module(gateway_stage: list[Instruction]) -> None:
    (entrypoint,) = [i for i in gateway_stage if i.keyword == "ENTRYPOINT"][-1:]
    assert json.loads(entrypoint.args) == ["python", "-m", "hermes_aws.gateway"]
    assert (ASSETS / "hermes_aws" / "gateway.py").is_file()
    assert not [i for i in gateway_stage if i.keyword == "CMD"]


def test_health_check_module_exists_and_matches_the_construct() -> None:
    assert (ASSETS / "hermes_aws" / "health.py").is_file()
    ts = (REPO / "src" / "fargate" / "gateway.ts").read_text()
    assert "command: ['CMD', 'python', '-m', 'hermes_aws.health']" in ts


def test_environment(gateway_stage: list[Instruction]) -> None:
    env = " ".join(i.args for i in gateway_stage if i.keyword == "ENV")
    assert "HERMES_DISABLE_LAZY_INSTALLS=1" in env
    assert "HERMES_GATEWAY_NO_SUPERVISE=1" in env
    assert "HERMES_HOME=/data/hermes" in env
    assert "HOME=/home/hermes" in env


def test_no_aws_cli_no_pipe_to_shell_no_secrets(gateway_stage: list[Instruction]) -> None:
    text = (ASSETS / "Dockerfile").read_text()
    assert not re.search(r"aws-?cli|awscliv2|\baws\s+s3\b", text, re.IGNORECASE)
    for ins in gateway_stage:
        if ins.keyword == "RUN":
            assert not re.search(r"\b(curl|wget)\b[^|]*\|\s*(sudo\s+)?(ba|z|da)?sh\b", ins.args), ins
            assert "nodesource" not in ins.args
    assert_no_secrets_in_env_or_args(gateway_stage)


def test_node_is_a_supported_lts_from_the_official_image(gateway_stage: list[Instruction]) -> None:
    text = (ASSETS / "Dockerfile").read_text()
    version = re.search(r"^ARG NODE_VERSION=(\d+)\.\d+\.\d+$", text, re.M)
    assert version and int(version.group(1)) >= 20 and int(version.group(1)) % 2 == 0, "Node.js must be an LTS release >= 20"
    assert re.search(r"^FROM public\.ecr\.aws/docker/library/node:\$\{NODE_VERSION\}-bookworm-slim AS node$", text, re.M)
    copies = [i.args for i in gateway_stage if i.keyword == "COPY" and i.args.startswith("--from=node ")]
    assert "--from=node /usr/local/bin/node /usr/local/bin/node" in copies
    runs = " ".join(i.args for i in gateway_stage if i.keyword == "RUN")
    assert "npx-cli.js /usr/local/bin/npx" in runs
    assert not re.search(r"apt-get install[^&]*\bnodejs\b", runs), "Debian's nodejs is end-of-life"


def test_extra_ca_certificate_is_optional_and_trusted_everywhere(gateway_stage: list[Instruction]) -> None:
    assert_extra_ca_is_optional(gateway_stage, "/etc/ssl/certs/ca-certificates.crt", (
        "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT", "NODE_EXTRA_CA_CERTS", "AWS_CA_BUNDLE"))


def test_pinned_installs(gateway_stage: list[Instruction]) -> None:
    pip_runs = [i.args for i in gateway_stage if i.keyword == "RUN" and "pip install" in i.args]
    assert any("-r requirements/gateway.txt" in r and "-c requirements/constraints.txt" in r for r in pip_runs)
    assert any(re.search(r"pip install --no-deps \.(\s|$)", r) for r in pip_runs)
    for pip in pip_installs(gateway_stage):
        # every install is from the pinned files or the local package, never a bare name
        assert all(t in (".", "requirements/gateway.txt", "requirements/constraints.txt") for t in pip.targets), \
            pip.command


def test_copy_sources_exist_and_are_not_dockerignored(gateway_stage: list[Instruction]) -> None:
    # COPY --from=<stage> copies from another build stage, not from the context.
    assert_copy_sources_shipped([i for i in gateway_stage if i.keyword in ("COPY", "ADD")
                                 and not i.args.startswith("--from=")])
    # and what must stay out does
    for rel in ("tests/test_dockerfile.py", "requirements/dev.txt", "hermes_aws/__pycache__/x.pyc"):
        assert ignored(rel, dockerignore_patterns()), rel


def test_dockerignore_matcher() -> None:
    pats = ["tests/", "**/__pycache__/", "*.egg-info/", "requirements/dev.txt", "!keep.txt"]
    assert ignored("tests/a.py", pats)
    assert ignored("hermes_aws/__pycache__/m.pyc", pats)
    assert ignored("__pycache__/m.pyc", pats)
    assert ignored("x.egg-info/PKG-INFO", pats)
    assert not ignored("hermes_aws/gateway.py", pats)
    assert not ignored("requirements/gateway.txt", pats)
    assert not ignored("keep.txt", pats + ["*.txt", "!keep.txt"])


# --------------------------------------------------------------------------- requirement pins


def pins(path: Path) -> dict[str, tuple[str, str]]:
    """Normalised name -> (version, line) for every requirement line of a file."""
    out: dict[str, tuple[str, str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9._-]+)(\[[^\]]*\])?==([^;\s]+)(\s*;.*)?", line)
        assert m, f"{path.name}: not an exact pin: {raw!r}"
        out[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = (m.group(3), line)
    return out


def assert_constrained(name: str) -> None:
    """Every pin of requirements/``name`` is in constraints.txt, at the same version."""
    constraints = pins(REQ / "constraints.txt")
    for pkg, (version, line) in pins(REQ / name).items():
        assert pkg in constraints, f"{name}: {pkg} missing from constraints.txt"
        assert constraints[pkg][0] == version, f"{name}: {line} but constraints.txt has {constraints[pkg][1]}"


def assert_pins_match_runtime(name: str) -> None:
    """A target's requirements pin everything runtime.txt pins, at the same version."""
    target = pins(REQ / name)
    for pkg, (version, _) in pins(REQ / "runtime.txt").items():
        assert target.get(pkg, (None,))[0] == version, f"{name} must pin {pkg}=={version} like runtime.txt"


def assert_hermes_extras(name: str, expected: set[str]) -> None:
    """requirements/``name`` pins hermes-agent with exactly ``expected`` extras, all of the installed Hermes."""
    version, line = pins(REQ / name)["hermes-agent"]
    extras = set(re.search(r"\[([^\]]*)\]", line).group(1).split(","))  # type: ignore[union-attr]
    assert extras == expected
    dist = metadata.distribution("hermes-agent")
    assert dist.version == version
    assert extras <= set(dist.metadata.get_all("Provides-Extra") or [])


def test_every_requirement_is_pinned_and_constrained() -> None:
    for name in ("runtime.txt", "dev.txt", "gateway.txt"):
        assert_constrained(name)


def test_gateway_pins_match_runtime() -> None:
    assert_pins_match_runtime("gateway.txt")


def test_gateway_extras_exist_in_the_pinned_hermes() -> None:
    assert_hermes_extras("gateway.txt", {"slack", "bedrock", "anthropic", "mcp"})


def test_python_313_only_dependencies_are_pinned() -> None:
    # discord.py needs audioop-lts on Python >= 3.13 (the image); a 3.11 freeze cannot see it.
    text = (REQ / "constraints.txt").read_text()
    assert re.search(r'^audioop-lts==\S+; python_version >= "3\.13"$', text, re.MULTILINE)


# --------------------------------------------------------------------------- contract with the construct


def test_construct_contract_names() -> None:
    """Names this package reads or writes that src/fargate/gateway.ts must use too."""
    from hermes_aws import events, health, knowledge_sync

    ts = (REPO / "src" / "fargate" / "gateway.ts").read_text()
    for name in (knowledge_sync.BUCKET_ENV, knowledge_sync.INTERVAL_ENV, health.PLATFORMS_ENV, health.GRACE_ENV,
                 events.GATEWAY_ID_ENV, "API_SERVER_ENABLED", "API_SERVER_HOST", "API_SERVER_PORT", "API_SERVER_KEY",
                 "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "TELEGRAM_BOT_TOKEN", "DISCORD_BOT_TOKEN"):
        assert name in ts, f"{name} not in gateway.ts"
    assert "const HERMES_HOME = '/data/hermes';" in ts
    assert f"const API_SERVER_PORT = {health.DEFAULT_PORT};" in ts
    # the metric filters count exactly the lines we print
    assert '{ ($.event = "health") && ($.healthy IS FALSE) }' in ts
    assert '{ ($.event = "knowledge_sync") && ($.ok IS FALSE) }' in ts
    assert "dimensions: { Gateway: '$.gateway' }" in ts
