"""Render a Hermes ``HERMES_HOME`` from the settings document the CDK constructs pass in.

Contract with the TypeScript constructs
---------------------------------------
The constructs put a JSON *settings document* in ``HERMES_AWS_SETTINGS`` (or an
``s3://bucket/key`` holding the same JSON in ``HERMES_AWS_SETTINGS_S3``; inline
wins when both are set)::

    {"version": 1,
     "config": {...},           # rendered verbatim to $HERMES_HOME/config.yaml
     "soul": "..." | null,      # $HERMES_HOME/SOUL.md
     "projectContext": "..." | null,   # .hermes.md in the agent's working dir
     "secretEnv": ["NAME", ...]}        # env vars that carry secrets

Facts about Hermes Agent 0.19.0 this module relies on (checked in its source)
-----------------------------------------------------------------------------
* Secrets: ``hermes_cli.config._expand_env_vars`` replaces ``${NAME}`` in every
  *string value* of config.yaml (not keys) with ``os.environ[NAME]`` when
  ``load_config()`` runs (and in the gateway's config->env bridge); an unset
  variable is left verbatim. There is no ``${NAME:-default}`` syntax. So
  secrets stay in the task environment and config.yaml only references them.
* ``$HERMES_HOME/.env`` is loaded by ``hermes_cli.env_loader.load_hermes_dotenv``
  with ``override=True``: a stale file would silently beat the real (freshly
  injected) environment, so it is deleted here.
* ``SOUL.md`` is read from ``$HERMES_HOME`` only (``prompt_builder.load_soul_md``).
  Note ``ensure_hermes_home()`` (run by ``load_config()``) seeds a *default*
  SOUL.md when none exists, so "no soul" means Hermes's default persona.
* Project context (``prompt_builder.build_context_files_prompt``): the first of
  ``.hermes.md``/``HERMES.md`` found walking up from the working directory to
  the git root wins; with no git root *only the working directory itself* is
  checked. Otherwise ``AGENTS.md``, ``CLAUDE.md``, ``.cursorrules`` (cwd only).
* Which working directory: ``agent.runtime_cwd.resolve_context_cwd`` uses a
  per-session override, else ``$TERMINAL_CWD`` (if it is an existing dir), else
  ``os.getcwd()``. ``AIAgent`` never reads ``terminal.cwd`` itself; the gateway
  (``gateway/run.py``) bridges config ``terminal.cwd`` to ``TERMINAL_CWD`` at
  import (``~`` expanded, relative paths left relative to the *process* cwd) and
  maps an unset/placeholder cwd (``.``, ``auto``, ``cwd``) on the local backend
  to ``$MESSAGING_CWD`` or ``$HOME``.
  Hence we write ``.hermes.md`` into ``terminal.cwd`` (relative paths resolved
  against HERMES_HOME, placeholders meaning HERMES_HOME) and report that
  directory as :attr:`PreparedHome.context_dir`: entrypoints must make it
  Hermes's working directory (export ``TERMINAL_CWD`` to it, or chdir) and
  the constructs should render ``terminal.cwd`` as an absolute path.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hermes_aws.fsutil import atomic_write

logger = logging.getLogger(__name__)

SETTINGS_ENV = "HERMES_AWS_SETTINGS"
SETTINGS_S3_ENV = "HERMES_AWS_SETTINGS_S3"
SETTINGS_VERSION = 1

CONFIG_FILE = "config.yaml"
SOUL_FILE = "SOUL.md"
CONTEXT_FILE = ".hermes.md"
DOTENV_FILE = ".env"
FILE_MODE = 0o600

# terminal.cwd values Hermes treats as "no explicit directory" (gateway/cwd_placeholder.py).
_CWD_PLACEHOLDERS = frozenset({"", ".", "auto", "cwd"})
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENV_REF = re.compile(r"\$\{([^}]+)\}")  # same pattern as hermes_cli.config._expand_env_vars
_KNOWN_KEYS = frozenset({"version", "config", "soul", "projectContext", "secretEnv"})


@dataclass(frozen=True)
class Settings:
    """The validated settings document."""

    config: dict[str, Any]
    soul: str | None = None
    project_context: str | None = None
    secret_env: tuple[str, ...] = ()
    version: int = SETTINGS_VERSION

    @classmethod
    def from_json(cls, text: str, *, source: str = SETTINGS_ENV) -> Settings:
        """Parse and validate a settings document; ``source`` prefixes error messages."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{source} is not valid JSON: {exc}") from None
        return cls.from_dict(data, source=source)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = SETTINGS_ENV) -> Settings:
        if not isinstance(data, dict):
            raise ValueError(f"{source} must be a JSON object, got {_json_type(data)}")
        unknown = sorted(set(data) - _KNOWN_KEYS)
        if unknown:
            raise ValueError(f"{source} has unknown key(s): {', '.join(unknown)}")
        if "version" not in data:
            raise ValueError(f"{source} is missing 'version' (expected {SETTINGS_VERSION})")
        version = data["version"]
        if type(version) is not int or version != SETTINGS_VERSION:
            raise ValueError(
                f"{source} has unsupported version {version!r} (expected {SETTINGS_VERSION})"
            )
        config = data.get("config")
        if not isinstance(config, dict):
            raise ValueError(f"{source}: 'config' must be an object, got {_json_type(config)}")
        soul = _optional_str(data, "soul", source)
        context = _optional_str(data, "projectContext", source)
        secret_env = data.get("secretEnv", [])
        if not isinstance(secret_env, list) or not all(isinstance(n, str) for n in secret_env):
            raise ValueError(f"{source}: 'secretEnv' must be a list of strings")
        bad = [n for n in secret_env if not _ENV_NAME.match(n)]
        if bad:
            raise ValueError(f"{source}: 'secretEnv' has invalid env var name(s): {', '.join(bad)}")
        return cls(
            config=config,
            soul=soul,
            project_context=context,
            secret_env=tuple(dict.fromkeys(secret_env)),
            version=version,
        )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, s3_client: Any = None
    ) -> Settings:
        """Load settings from ``HERMES_AWS_SETTINGS`` or, failing that, ``HERMES_AWS_SETTINGS_S3``.

        The S3 object is read with boto3's default client, so ``AWS_ENDPOINT_URL``
        / ``AWS_ENDPOINT_URL_S3`` and the usual credential chain apply.
        """
        env = os.environ if environ is None else environ
        inline = env.get(SETTINGS_ENV, "")
        if inline.strip():
            return cls.from_json(inline, source=SETTINGS_ENV)
        uri = env.get(SETTINGS_S3_ENV, "").strip()
        if not uri:
            raise ValueError(f"neither {SETTINGS_ENV} nor {SETTINGS_S3_ENV} is set")
        bucket, key = parse_s3_uri(uri)
        if s3_client is None:
            import boto3  # deferred: only the S3 path needs it

            s3_client = boto3.client("s3")
        from botocore.exceptions import ClientError

        try:
            body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise ValueError(f"{SETTINGS_S3_ENV}: cannot read {uri}: {code}") from exc
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{SETTINGS_S3_ENV}: {uri} is not UTF-8 text") from None
        return cls.from_json(text, source=uri)


@dataclass
class PreparedHome:
    """What :func:`prepare_home` did."""

    home: Path
    context_dir: Path  # make this Hermes's working dir (TERMINAL_CWD) so .hermes.md is found
    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)


def parse_s3_uri(uri: str) -> tuple[str, str]:
    m = re.fullmatch(r"s3://([^/]+)/(.+)", uri)
    if not m:
        raise ValueError(f"{SETTINGS_S3_ENV} must look like s3://bucket/key, got {uri!r}")
    return m.group(1), m.group(2)


def prepare_home(
    home: Path, settings: Settings, environ: Mapping[str, str] = os.environ
) -> PreparedHome:
    """Write config.yaml, SOUL.md and .hermes.md; drop stale files. Idempotent.

    Refuses (ValueError naming the offending path) when any value would put the
    literal value of a ``secretEnv`` variable on disk. A ``.hermes.md`` left in a
    *previous* ``terminal.cwd`` is not tracked and stays where it is.
    """
    check_no_secrets(settings, environ)
    home = Path(home).absolute()
    context_dir = resolve_context_dir(home, settings.config, environ)
    result = PreparedHome(home=home, context_dir=context_dir)

    for d in (home, home / "memories", home / "skills", context_dir):
        d.mkdir(mode=0o700, parents=True, exist_ok=True)

    config_text = yaml.safe_dump(
        settings.config, sort_keys=False, allow_unicode=True, default_flow_style=False
    )
    _sync_file(home / CONFIG_FILE, config_text, result)
    _sync_file(home / SOUL_FILE, settings.soul, result)
    _sync_file(context_dir / CONTEXT_FILE, settings.project_context, result)

    dotenv = home / DOTENV_FILE
    if dotenv.exists() or dotenv.is_symlink():
        dotenv.unlink()
        result.removed.append(dotenv)
        logger.warning(
            "removed stale %s: Hermes loads it with override=True, which would "
            "shadow the environment the deployment injects",
            dotenv,
        )
    return result


def resolve_context_dir(home: Path, config: Mapping[str, Any], environ: Mapping[str, str]) -> Path:
    """Directory for .hermes.md: ``terminal.cwd`` (relative to ``home``) or ``home``."""
    terminal = config.get("terminal")
    raw = terminal.get("cwd") if isinstance(terminal, Mapping) else None
    if raw is None:
        return home
    if not isinstance(raw, str):
        raise ValueError(f"config.terminal.cwd must be a string, got {_json_type(raw)}")
    # Expand ${VAR} like Hermes does, then ~ (against this process's HOME).
    cwd = _ENV_REF.sub(lambda m: environ.get(m.group(1), m.group(0)), raw).strip()
    if cwd in _CWD_PLACEHOLDERS:
        return home
    return home / Path(cwd).expanduser()  # an absolute path replaces home


def check_no_secrets(settings: Settings, environ: Mapping[str, str]) -> None:
    """Raise ValueError if a secret env var's value appears anywhere in the settings."""
    secrets = {n: environ[n] for n in settings.secret_env if environ.get(n)}
    if not secrets:
        return
    texts: list[tuple[str, str]] = list(_walk_strings(settings.config, "config"))
    if settings.soul:
        texts.append(("soul", settings.soul))
    if settings.project_context:
        texts.append(("projectContext", settings.project_context))
    for path, text in texts:
        for name, value in secrets.items():
            if value in text:
                # Never echo the secret itself.
                raise ValueError(
                    f"refusing to write settings: {path} contains the value of secret "
                    f"env var {name}; reference it as ${{{name}}} instead"
                )


def _walk_strings(obj: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(obj, str):
        yield path, obj
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            if isinstance(k, str):
                yield f"{path} (a key)", k  # name the parent: the key itself may be the secret
            yield from _walk_strings(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk_strings(v, f"{path}[{i}]")


def _sync_file(path: Path, content: str | None, result: PreparedHome) -> None:
    """Make ``path`` hold ``content`` (mode 0600), or not exist when content is falsy."""
    if not content:
        if path.exists() or path.is_symlink():
            path.unlink()
            result.removed.append(path)
        return
    data = content.encode("utf-8")
    try:
        if path.read_bytes() == data:
            if path.stat().st_mode & 0o777 != FILE_MODE:
                path.chmod(FILE_MODE)  # metadata only; mtime is kept
            result.unchanged.append(path)
            return
    except FileNotFoundError:
        pass
    atomic_write(path, data, mode=FILE_MODE)
    result.written.append(path)


def _optional_str(data: Mapping[str, Any], key: str, source: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{source}: '{key}' must be a string or null, got {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    return {
        dict: "object", list: "array", str: "string", bool: "boolean",
        int: "number", float: "number", type(None): "null",
    }.get(type(value), type(value).__name__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hermes_aws.home",
        description=f"Write HERMES_HOME from {SETTINGS_ENV} / {SETTINGS_S3_ENV}.",
    )
    parser.add_argument("--home", type=Path, help="target directory (default: $HERMES_HOME)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    home = args.home or (Path(os.environ["HERMES_HOME"]) if os.environ.get("HERMES_HOME") else None)
    try:
        if home is None:
            raise ValueError("no --home given and HERMES_HOME is not set")
        prepared = prepare_home(home, Settings.from_env())
    except ValueError as exc:
        print(f"hermes_aws.home: error: {exc}", file=sys.stderr)
        return 2
    logger.info(
        "prepared %s (context dir %s): wrote %d, unchanged %d, removed %d",
        prepared.home, prepared.context_dir,
        len(prepared.written), len(prepared.unchanged), len(prepared.removed),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
