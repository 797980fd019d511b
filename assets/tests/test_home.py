"""Unit tests for hermes_aws.home (settings parsing and HERMES_HOME rendering)."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from hermes_aws import home as home_mod
from hermes_aws.home import (
    SETTINGS_ENV,
    SETTINGS_S3_ENV,
    PreparedHome,
    Settings,
    main,
    prepare_home,
)

SECRET = "sk-live-very-secret-value-42"


def doc(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "version": 1,
        "config": {"model": {"provider": "custom", "api_key": "${MODEL_API_KEY}"}},
        "soul": "You are Zed.",
        "projectContext": "Always answer in haiku.",
        "secretEnv": ["MODEL_API_KEY"],
    }
    base.update(overrides)
    return base


def settings(**overrides: Any) -> Settings:
    return Settings.from_dict(doc(**overrides))


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


# --------------------------------------------------------------------------- parsing


def test_from_json_full_document() -> None:
    s = Settings.from_json(json.dumps(doc(secretEnv=["A", "B", "A"])))
    assert s.version == 1
    assert s.config == {"model": {"provider": "custom", "api_key": "${MODEL_API_KEY}"}}
    assert s.soul == "You are Zed."
    assert s.project_context == "Always answer in haiku."
    assert s.secret_env == ("A", "B")  # de-duplicated, order kept


def test_from_json_minimal_document_defaults() -> None:
    s = Settings.from_json('{"version": 1, "config": {}}')
    assert (s.config, s.soul, s.project_context, s.secret_env) == ({}, None, None, ())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", f"{SETTINGS_ENV} is not valid JSON: "),
        ("", f"{SETTINGS_ENV} is not valid JSON: "),
        ("[1, 2]", f"{SETTINGS_ENV} must be a JSON object, got array"),
        ('"x"', f"{SETTINGS_ENV} must be a JSON object, got string"),
        ('{"config": {}}', f"{SETTINGS_ENV} is missing 'version' (expected 1)"),
        ('{"version": 2, "config": {}}', f"{SETTINGS_ENV} has unsupported version 2 (expected 1)"),
        ('{"version": "1", "config": {}}', f"{SETTINGS_ENV} has unsupported version '1' (expected 1)"),
        ('{"version": true, "config": {}}', f"{SETTINGS_ENV} has unsupported version True (expected 1)"),
        ('{"version": 1}', f"{SETTINGS_ENV}: 'config' must be an object, got null"),
        ('{"version": 1, "config": []}', f"{SETTINGS_ENV}: 'config' must be an object, got array"),
        ('{"version": 1, "config": {}, "soul": 3}', f"{SETTINGS_ENV}: 'soul' must be a string or null, got number"),
        ('{"version": 1, "config": {}, "projectContext": {}}',
         f"{SETTINGS_ENV}: 'projectContext' must be a string or null, got object"),
        ('{"version": 1, "config": {}, "secretEnv": "A"}', f"{SETTINGS_ENV}: 'secretEnv' must be a list of strings"),
        ('{"version": 1, "config": {}, "secretEnv": [1]}', f"{SETTINGS_ENV}: 'secretEnv' must be a list of strings"),
        ('{"version": 1, "config": {}, "secretEnv": ["OK", "1BAD", "a-b"]}',
         f"{SETTINGS_ENV}: 'secretEnv' has invalid env var name(s): 1BAD, a-b"),
        ('{"version": 1, "config": {}, "souls": "x", "extra": 1}', f"{SETTINGS_ENV} has unknown key(s): extra, souls"),
    ],
)
def test_from_json_rejects_invalid_documents(text: str, message: str) -> None:
    with pytest.raises(ValueError) as exc:
        Settings.from_json(text)
    assert str(exc.value).startswith(message)


def test_from_json_uses_source_in_messages() -> None:
    with pytest.raises(ValueError, match=r"^s3://b/k has unsupported version 9"):
        Settings.from_json('{"version": 9, "config": {}}', source="s3://b/k")


# --------------------------------------------------------------------------- from_env


def test_from_env_requires_a_source() -> None:
    with pytest.raises(ValueError, match=f"^neither {SETTINGS_ENV} nor {SETTINGS_S3_ENV} is set$"):
        Settings.from_env({"HERMES_AWS_SETTINGS": "  "})


def test_from_env_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SETTINGS_ENV, json.dumps(doc()))
    monkeypatch.delenv(SETTINGS_S3_ENV, raising=False)
    assert Settings.from_env().soul == "You are Zed."  # defaults to os.environ


def test_from_env_inline_wins_over_s3() -> None:
    class ExplodingS3:
        def get_object(self, **kw: Any) -> Any:
            raise AssertionError("S3 must not be read when inline settings are set")

    env = {SETTINGS_ENV: json.dumps(doc(soul="inline")), SETTINGS_S3_ENV: "s3://b/k"}
    assert Settings.from_env(env, s3_client=ExplodingS3()).soul == "inline"


@pytest.mark.parametrize("uri", ["s3://bucket", "s3://bucket/", "https://bucket/key", "bucket/key"])
def test_from_env_rejects_bad_s3_uri(uri: str) -> None:
    with pytest.raises(ValueError, match=f"^{SETTINGS_S3_ENV} must look like s3://bucket/key, got"):
        Settings.from_env({SETTINGS_S3_ENV: uri})


def test_from_env_reads_s3_via_moto(aws_env: str) -> None:
    s3 = boto3.client("s3")
    assert s3.meta.endpoint_url == aws_env  # AWS_ENDPOINT_URL honoured
    s3.create_bucket(Bucket="settings")
    s3.put_object(Bucket="settings", Key="agents/a.json", Body=json.dumps(doc(soul="from s3")).encode())
    s = Settings.from_env({SETTINGS_S3_ENV: "s3://settings/agents/a.json"})
    assert s.soul == "from s3"
    assert s.secret_env == ("MODEL_API_KEY",)


def test_from_env_s3_missing_object(aws_env: str) -> None:
    boto3.client("s3").create_bucket(Bucket="settings")
    with pytest.raises(ValueError, match=rf"^{SETTINGS_S3_ENV}: cannot read s3://settings/nope.json: NoSuchKey$"):
        Settings.from_env({SETTINGS_S3_ENV: "s3://settings/nope.json"})


def test_from_env_s3_invalid_content(aws_env: str) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="settings")
    s3.put_object(Bucket="settings", Key="bad.json", Body=b'{"version": 1, "config": 5}')
    s3.put_object(Bucket="settings", Key="latin1.json", Body=b"\xff\xfe")
    with pytest.raises(ValueError, match=r"^s3://settings/bad.json: 'config' must be an object, got number$"):
        Settings.from_env({SETTINGS_S3_ENV: "s3://settings/bad.json"})
    with pytest.raises(ValueError, match=r"is not UTF-8 text$"):
        Settings.from_env({SETTINGS_S3_ENV: "s3://settings/latin1.json"})


# --------------------------------------------------------------------------- prepare_home


def test_prepare_home_writes_files(tmp_path: Path) -> None:
    home = tmp_path / "hermes"
    config = {"model": {"provider": "custom", "api_key": "${K}"}, "agent": {"max_turns": 5}, "toolsets": ["todo"]}
    result = prepare_home(home, settings(config=config), environ={})

    assert isinstance(result, PreparedHome)
    assert result.home == home and result.context_dir == home
    assert (home / "memories").is_dir() and (home / "skills").is_dir()
    cfg_text = (home / "config.yaml").read_text()
    assert yaml.safe_load(cfg_text) == config
    assert cfg_text.index("model:") < cfg_text.index("agent:") < cfg_text.index("toolsets:")  # sort_keys=False
    assert (home / "SOUL.md").read_text() == "You are Zed."
    assert (home / ".hermes.md").read_text() == "Always answer in haiku."
    assert result.written == [home / "config.yaml", home / "SOUL.md", home / ".hermes.md"]
    assert result.unchanged == [] and result.removed == []
    for name in ("config.yaml", "SOUL.md", ".hermes.md"):
        assert mode(home / name) == 0o600
    assert not list(home.glob(".*.tmp"))  # no temp files left behind


def test_prepare_home_is_idempotent_and_keeps_mtime(tmp_path: Path) -> None:
    home = tmp_path / "hermes"
    s = settings()
    prepare_home(home, s, environ={})
    files = [home / "config.yaml", home / "SOUL.md", home / ".hermes.md"]
    for f in files:
        os.utime(f, ns=(1_000_000_000, 1_000_000_000))  # a marker a rewrite would change

    again = prepare_home(home, s, environ={})
    assert again.written == [] and again.removed == []
    assert again.unchanged == files
    assert [f.stat().st_mtime_ns for f in files] == [1_000_000_000] * 3

    changed = prepare_home(home, settings(soul="You are Ada."), environ={})
    assert changed.written == [home / "SOUL.md"]
    assert (home / "SOUL.md").read_text() == "You are Ada."
    assert (home / "SOUL.md").stat().st_mtime_ns != 1_000_000_000
    assert (home / "config.yaml").stat().st_mtime_ns == 1_000_000_000


def test_prepare_home_fixes_mode_of_unchanged_file(tmp_path: Path) -> None:
    home = tmp_path / "hermes"
    prepare_home(home, settings(), environ={})
    (home / "SOUL.md").chmod(0o644)
    os.utime(home / "SOUL.md", ns=(5, 5))
    result = prepare_home(home, settings(), environ={})
    assert home / "SOUL.md" in result.unchanged
    assert mode(home / "SOUL.md") == 0o600
    assert (home / "SOUL.md").stat().st_mtime_ns == 5


def test_prepare_home_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "hermes"
    prepare_home(home, settings(), environ={})

    def boom(src: Any, dst: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(home_mod.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        prepare_home(home, settings(soul="new soul"), environ={})
    assert (home / "SOUL.md").read_text() == "You are Zed."  # old content intact
    assert not list(home.glob(".*.tmp"))  # temp file cleaned up


def test_prepare_home_removes_dropped_files(tmp_path: Path) -> None:
    home = tmp_path / "hermes"
    prepare_home(home, settings(), environ={})
    result = prepare_home(home, settings(soul=None, projectContext=""), environ={})
    assert not (home / "SOUL.md").exists()
    assert not (home / ".hermes.md").exists()
    assert result.removed == [home / "SOUL.md", home / ".hermes.md"]
    assert (home / "config.yaml").exists()
    # Nothing left to remove the next time.
    assert prepare_home(home, settings(soul=None, projectContext=None), environ={}).removed == []


@pytest.mark.parametrize(
    ("cwd", "expected"),
    [
        (None, "."),
        (".", "."),
        ("auto", "."),
        ("cwd", "."),
        ("workspace/project", "workspace/project"),
        ("${WORKDIR}/x", "from-env/x"),
    ],
)
def test_context_file_location_follows_terminal_cwd(tmp_path: Path, cwd: str | None, expected: str) -> None:
    home = tmp_path / "hermes"
    config: dict[str, Any] = {"terminal": {"backend": "local"}}
    if cwd is not None:
        config["terminal"]["cwd"] = cwd
    result = prepare_home(home, settings(config=config), environ={"WORKDIR": "from-env"})
    target = (home / expected).resolve()
    assert result.context_dir.resolve() == target
    assert (target / ".hermes.md").read_text() == "Always answer in haiku."
    if target != home.resolve():
        assert not (home / ".hermes.md").exists()


def test_context_file_absolute_terminal_cwd(tmp_path: Path) -> None:
    work = tmp_path / "srv" / "work"
    result = prepare_home(tmp_path / "hermes", settings(config={"terminal": {"cwd": str(work)}}), environ={})
    assert result.context_dir == work
    assert (work / ".hermes.md").is_file()
    assert mode(work / ".hermes.md") == 0o600


def test_terminal_cwd_must_be_a_string(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^config.terminal.cwd must be a string, got number$"):
        prepare_home(tmp_path / "h", settings(config={"terminal": {"cwd": 7}}), environ={})


# --------------------------------------------------------------------------- secrets


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({"config": {"model": {"api_key": SECRET}}}, "config.model.api_key"),
        ({"config": {"model": {"api_key": f"Bearer {SECRET}"}}}, "config.model.api_key"),
        ({"config": {"mcp_servers": {"gh": {"args": ["--x", f"--token={SECRET}"]}}}},
         "config.mcp_servers.gh.args[1]"),
        ({"config": {"headers": {SECRET: "v"}}}, "config.headers (a key)"),
        ({"soul": f"remember {SECRET}"}, "soul"),
        ({"projectContext": f"token is {SECRET}"}, "projectContext"),
    ],
)
def test_refuses_literal_secret_values(tmp_path: Path, overrides: dict[str, Any], path: str) -> None:
    home = tmp_path / "hermes"
    env = {"MODEL_API_KEY": SECRET}
    with pytest.raises(ValueError) as exc:
        prepare_home(home, settings(**overrides), environ=env)
    assert str(exc.value) == (
        f"refusing to write settings: {path} contains the value of secret env var "
        "MODEL_API_KEY; reference it as ${MODEL_API_KEY} instead"
    )
    assert SECRET not in str(exc.value)
    assert not home.exists()  # refused before writing anything


def test_secret_check_ignores_unset_empty_and_unlisted_vars(tmp_path: Path) -> None:
    s = settings(config={"model": {"api_key": "${MODEL_API_KEY}", "base_url": "http://x"}}, soul="hello")
    prepare_home(tmp_path / "a", s, environ={})  # listed but unset
    prepare_home(tmp_path / "b", s, environ={"MODEL_API_KEY": ""})  # listed but empty
    prepare_home(tmp_path / "c", s, environ={"OTHER": "hello"})  # value present but not listed as secret
    prepare_home(tmp_path / "d", s, environ={"MODEL_API_KEY": SECRET})  # referenced, not inlined
    assert "${MODEL_API_KEY}" in (tmp_path / "d" / "config.yaml").read_text()
    assert SECRET not in (tmp_path / "d" / "config.yaml").read_text()


# --------------------------------------------------------------------------- .env


def test_removes_stale_dotenv_with_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    home = tmp_path / "hermes"
    home.mkdir()
    (home / ".env").write_text("OPENAI_API_KEY=stale\n")
    with caplog.at_level(logging.WARNING, logger="hermes_aws.home"):
        result = prepare_home(home, settings(), environ={})
    assert not (home / ".env").exists()
    assert home / ".env" in result.removed
    assert any("stale" in r.getMessage() and ".env" in r.getMessage() for r in caplog.records)

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hermes_aws.home"):
        assert home / ".env" not in prepare_home(home, settings(), environ={}).removed
    assert not caplog.records


# --------------------------------------------------------------------------- Hermes contract


def test_hermes_reads_what_we_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real hermes-agent package expands ${VAR}, finds SOUL.md and .hermes.md where we put them."""
    from agent import prompt_builder
    from hermes_cli.config import load_config

    home, work = tmp_path / "hermes", tmp_path / "work"
    monkeypatch.setenv("HERMES_HOME", str(home))
    monkeypatch.setenv("MODEL_API_KEY", SECRET)
    s = settings(config={"model": {"provider": "custom", "api_key": "${MODEL_API_KEY}"},
                         "terminal": {"cwd": str(work)}},
                 soul="You are Zed, keeper of SOULMARK.", projectContext="Rule CTXMARK applies.")
    prepared = prepare_home(home, s)

    assert load_config()["model"]["api_key"] == SECRET
    assert "SOULMARK" in (prompt_builder.load_soul_md() or "")
    ctx = prompt_builder.build_context_files_prompt(cwd=str(prepared.context_dir), skip_soul=True)
    assert "CTXMARK" in ctx
    # Not found from HERMES_HOME when terminal.cwd points elsewhere.
    assert "CTXMARK" not in prompt_builder.build_context_files_prompt(cwd=str(home), skip_soul=True)


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (SETTINGS_ENV, SETTINGS_S3_ENV, "HERMES_HOME"):
        monkeypatch.delenv(name, raising=False)


def test_cli_in_process_errors(cli_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--home", str(tmp_path / "h")]) == 2
    err = capsys.readouterr().err
    assert err == f"hermes_aws.home: error: neither {SETTINGS_ENV} nor {SETTINGS_S3_ENV} is set\n"

    monkeypatch.setenv(SETTINGS_ENV, json.dumps(doc()))
    assert main([]) == 2
    assert capsys.readouterr().err == "hermes_aws.home: error: no --home given and HERMES_HOME is not set\n"

    monkeypatch.setenv("HERMES_HOME", str(tmp_path / "from-env"))
    assert main([]) == 0
    assert (tmp_path / "from-env" / "SOUL.md").read_text() == "You are Zed."


def _run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hermes_aws.home", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_cli_exit_code_2_on_bad_settings(cli_env: None, tmp_path: Path) -> None:
    env = {**os.environ, SETTINGS_ENV: '{"version": 2, "config": {}}'}
    proc = _run_cli(["--home", str(tmp_path / "h")], env)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"hermes_aws.home: error: {SETTINGS_ENV} has unsupported version 2 (expected 1)"
    ]
    assert not (tmp_path / "h").exists()

    env = {**os.environ, SETTINGS_ENV: json.dumps(doc(soul=SECRET)), "MODEL_API_KEY": SECRET}
    proc = _run_cli(["--home", str(tmp_path / "h")], env)
    assert proc.returncode == 2
    assert len(proc.stderr.splitlines()) == 1 and SECRET not in proc.stderr


def test_cli_from_s3_settings(cli_env: None, aws_env: str, tmp_path: Path) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="cfg")
    s3.put_object(Bucket="cfg", Key="settings.json", Body=json.dumps(doc(soul="S3 soul")).encode())
    home = tmp_path / "hermes"
    home.mkdir()
    (home / ".env").write_text("X=1\n")
    env = {**os.environ, SETTINGS_S3_ENV: "s3://cfg/settings.json", "HERMES_HOME": str(home)}
    proc = _run_cli([], env)
    assert proc.returncode == 0, proc.stderr
    assert (home / "SOUL.md").read_text() == "S3 soul"
    assert not (home / ".env").exists()
    assert "removed stale" in proc.stderr and "wrote 3" in proc.stderr
